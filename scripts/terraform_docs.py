#!/usr/bin/env python3
"""Write the Terraform module's variables table into README.md and terraform/README.md, between
the markers

    <!-- terraform-variables:start -->
    <!-- terraform-variables:end -->

from terraform/variables.tf. `--check` changes nothing and exits 1 when a README is out of
date (CI runs it through tests/test_terraform.py). Needs python-hcl2 (the `test` extra).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- terraform-variables:start -->"
END = "<!-- terraform-variables:end -->"


def unquote(value: str) -> str:
    """python-hcl2 keeps string literals quoted ("\"text\""); expressions come as ${...}."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:  # a template whose ${...} holds quotes: keep it as written
            return value[1:-1]
    if value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return value


def type_text(expression: str) -> str:
    """Short type for the table: a nested object type is summarised, its fields are in the description."""
    text = re.sub(r"\s+", " ", unquote(expression))
    return re.sub(r"^object\(.*\)$", "object({...})", text)


def default_text(block: dict) -> str:
    if "default" not in block:
        return "required"
    value = block["default"]
    if isinstance(value, str):
        return f"`{json.dumps(unquote(value))}`"
    return f"`{json.dumps(value)}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def prose(text: str) -> str:
    """A description cell: <environment> must not be read as an HTML tag."""
    return cell(text).replace("<", "&lt;").replace(">", "&gt;")


def variables_table(variables_tf: Path) -> str:
    rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    for entry in hcl2.load(variables_tf.open(encoding="utf-8"))["variable"]:
        for quoted_name, block in entry.items():
            name = unquote(quoted_name)
            rows.append(
                f"| `{name}` | `{cell(type_text(block['type']))}` | {cell(default_text(block))} "
                f"| {prose(unquote(block.get('description', '')))} |"
            )
    return "\n".join(rows)


def updated_readme(readme: str, table: str) -> str:
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise SystemExit(f"a README needs exactly one {START} followed by one {END}")
    before, rest = readme.split(START)
    _, after = rest.split(END)
    return f"{before}{START}\n{table}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a README is out of date; write nothing")
    parser.add_argument("--readme", type=Path, action="append",
                        help="a README holding the markers (repeatable; default: README.md and terraform/README.md)")
    parser.add_argument("--variables", type=Path, default=ROOT / "terraform" / "variables.tf")
    args = parser.parse_args(argv)

    table = variables_table(args.variables)
    stale = 0
    for readme in args.readme or [ROOT / "README.md", ROOT / "terraform" / "README.md"]:
        current = readme.read_text(encoding="utf-8")
        wanted = updated_readme(current, table)
        if current == wanted:
            continue
        if args.check:
            print(f"{readme}: the Terraform variables table is out of date; run python scripts/terraform_docs.py",
                  file=sys.stderr)
            stale += 1
            continue
        readme.write_text(wanted, encoding="utf-8")
        print(f"updated {readme}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
