"""The golden files: what levelflow generates for `examples/`, kept in tests/golden/ so that
every change to generated code shows as a reviewable diff (tests/test_golden.py compares them
byte for byte).

    .venv/bin/python scripts/golden.py          # refresh tests/golden/ after a reviewed change

Outputs: Cloud Workflows YAML of each cloud_workflows example, the Composer DAG of each
example in each step mode of its engine, the SVG picture and the `levelflow plan --format json`
report of every example.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(ROOT / "src"))

from levelflow import load_params, load_plan  # noqa: E402
from levelflow.backends import GenerateOptions, engine_for  # noqa: E402
from levelflow.graph import render  # noqa: E402
from levelflow.errors import LevelflowError  # noqa: E402
from levelflow.report import build_report  # noqa: E402


def golden_files() -> dict[str, str]:
    """Relative path under tests/golden/ -> the text levelflow generates now."""
    params = load_params(ROOT / "examples" / "platform-parameters-dev.json")
    files: dict[str, str] = {}
    for definition in sorted((ROOT / "examples").glob("*.json")):
        if definition.name.startswith("platform-parameters"):
            continue
        source = definition.relative_to(ROOT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = load_plan(source, params)
            engine = engine_for(plan.engine)
            for mode in engine.step_modes:
                folder = f"{plan.engine}-{mode}"
                try:
                    generated = engine.generate(plan, GenerateOptions(step_mode=mode))
                except LevelflowError as exc:  # what a mode refuses is kept too: the messages, one per line
                    generated = {f"{plan.name}.refused.txt": "".join(f"{problem}\n" for problem in exc.problems)}
                for name, text in generated.items():
                    files[f"{folder}/{name}"] = text
            files[f"graph/{plan.name}.svg"] = render(plan, "svg")
            files[f"plan/{plan.name}.json"] = json.dumps(build_report(plan), indent=2, sort_keys=True) + "\n"
    return files


def main() -> None:
    import shutil

    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    for name, text in golden_files().items():
        path = GOLDEN / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
