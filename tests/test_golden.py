"""Generated output for the examples equals the reviewed golden files in tests/golden/, byte for
byte. After a deliberate change: `.venv/bin/python scripts/golden.py`, then review the diff."""
import difflib
import importlib.util

from conftest import ROOT

REFRESH = ".venv/bin/python scripts/golden.py"


def _golden_module():
    spec = importlib.util.spec_from_file_location("golden", ROOT / "scripts" / "golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_output_equals_the_golden_files(monkeypatch):
    monkeypatch.chdir(ROOT)  # sources are named relative to the repository, as users run it
    golden = _golden_module()
    now = golden.golden_files()
    kept = {str(p.relative_to(golden.GOLDEN)): p.read_text(encoding="utf-8") for p in golden.GOLDEN.rglob("*") if p.is_file()}
    assert sorted(now) == sorted(kept), f"golden files added or gone; refresh with: {REFRESH}"
    for name, text in now.items():
        if text != kept[name]:
            diff = "".join(difflib.unified_diff(kept[name].splitlines(True), text.splitlines(True), f"golden/{name}", "now", n=2))
            raise AssertionError(f"{name} changed; review, then refresh with: {REFRESH}\n{diff[:4000]}")
