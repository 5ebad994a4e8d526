#!/usr/bin/env python3
"""Write each engine's platform limits into docs/platform-limits.md, between the markers

    <!-- engine-limits:start -->
    <!-- engine-limits:end -->

from the engine registry (levelflow.backends: each Engine's `limits`, with their sources).
`--check` changes nothing and exits 1 when the page is out of date (tests/test_engine_registry.py
runs it in CI).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "platform-limits.md"
START = "<!-- engine-limits:start -->"
END = "<!-- engine-limits:end -->"
sys.path.insert(0, str(ROOT / "src"))
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


def updated(text: str) -> str:
    if text.count(START) != 1 or text.count(END) != 1:
        raise SystemExit(f"{PAGE}: needs exactly one {START} and one {END}")
    head, rest = text.split(START)
    _old, tail = rest.split(END)
    return f"{head}{START}\n{limits_tables()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date; write nothing")
    args = parser.parse_args()
    text = PAGE.read_text(encoding="utf-8")
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/engine_docs.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        PAGE.write_text(new, encoding="utf-8")
        print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
