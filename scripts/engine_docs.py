#!/usr/bin/env python3
"""Write each engine's platform limits into docs/platform-limits.md, between the markers

    <!-- engine-limits:start -->
    <!-- engine-limits:end -->

from the engine registry (levelflow.backends: each Engine's `limits`, with their sources), and
the keys each engine and mode reads into docs/definition.md, between

    <!-- keys-read:start -->
    <!-- keys-read:end -->

from the catalogue of unread keys (levelflow.keys). `--check` changes nothing and exits 1 when
a page is out of date (tests/test_engine_registry.py runs it in CI).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from levelflow import keys  # noqa: E402
from levelflow.backends import engines  # noqa: E402


def _value(value: int, unit: str) -> str:
    return f"{value:,} {unit}".strip()


def limits_tables() -> str:
    parts = []
    for engine in engines().values():
        rows = [f"### {engine.title} (`{engine.name}`; step modes: {', '.join(engine.step_modes)})", "",
                "| limit | value | how levelflow respects it | source |", "| --- | --- | --- | --- |"]
        rows += [f"| {limit.name} | {_value(limit.value, limit.unit)} | {limit.respected} | <{limit.source}> |"
                 for limit in engine.limits]
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def keys_tables() -> str:
    return keys.table() + "\n\nWhere a key means nothing, and how `validate` and `generate` report it:\n\n" + keys.entries_table()


# page -> (its markers, what goes between them)
PAGES = {
    ROOT / "docs" / "platform-limits.md": ("engine-limits", limits_tables),
    ROOT / "docs" / "definition.md": ("keys-read", keys_tables),
}


def updated(page: Path, text: str) -> str:
    marker, content = PAGES[page]
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"{page}: needs exactly one {start} and one {end}")
    head, rest = text.split(start)
    _old, tail = rest.split(end)
    return f"{head}{start}\n{content()}\n{end}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is out of date; write nothing")
    args = parser.parse_args()
    stale = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new = updated(page, text)
        if new == text:
            continue
        if args.check:
            print(f"{page.relative_to(ROOT)} is out of date: run python scripts/engine_docs.py", file=sys.stderr)
            stale += 1
        else:
            page.write_text(new, encoding="utf-8")
            print(f"wrote {page.relative_to(ROOT)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
