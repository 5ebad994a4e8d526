"""Which files under a definitions directory are pipeline definitions (docs/definition.md).

A directory is searched recursively for *.json, *.yaml and *.yml files, in sorted order,
leaving out parameter files (platform-parameters*), hidden files and directories (a name
starting with "."), and whatever a `.levelflowignore` file excludes. An ignore file holds
gitignore patterns (read with `pathspec`, which implements git's rules) relative to the
directory it is in, and applies to everything under that directory (only the ignore files of
the directory searched and of those under it count); a deeper one adds to the
ones above it, and `!pattern` takes a file back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from .errors import LevelflowError, Problem

DEFINITION_SUFFIXES = (".json", ".yaml", ".yml")
IGNORE_FILE = ".levelflowignore"


def is_params_file(path: Path) -> bool:
    return path.name.startswith("platform-parameters")


def is_candidate(path: Path) -> bool:
    return path.suffix.lower() in DEFINITION_SUFFIXES and not is_params_file(path) and not path.name.startswith(".")


def find_definitions(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expanded into the definitions under them (module docstring)."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                files = list(_walk(path, []))
            except LevelflowError as exc:
                problems.extend(exc.problems)
                continue
            if not files:
                problems.append(Problem(str(path), "no definition files (*.json, *.yaml, *.yml) under this directory"
                                                   f" (hidden files, platform-parameters* and what {IGNORE_FILE} excludes are skipped)"))
            found.extend(files)
        elif path.exists():
            found.append(path)
        else:
            problems.append(Problem(str(path), "file not found"))
    if problems:
        raise LevelflowError(problems)
    return found


def _walk(folder: Path, rules: list) -> Iterator[Path]:
    """The definitions under `folder`; `rules` are the (directory, spec) pairs of the ignore files above it."""
    rules = rules + _ignore_rules(folder)
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        is_dir = entry.is_dir()
        if entry.name.startswith(".") or _ignored(entry, is_dir, rules):
            continue
        if is_dir:
            yield from _walk(entry, rules)
        elif entry.is_file() and is_candidate(entry):
            yield entry


def _ignore_rules(folder: Path) -> list:
    ignore = folder / IGNORE_FILE
    if not ignore.is_file():
        return []
    import pathspec

    try:
        spec = pathspec.GitIgnoreSpec.from_lines(ignore.read_text(encoding="utf-8").splitlines())
    except (UnicodeDecodeError, ValueError) as exc:  # pathspec raises ValueError subclasses on a bad pattern
        raise LevelflowError([Problem(str(ignore), f"not a gitignore-style pattern file: {exc}")]) from None
    return [(folder, spec)]


def _ignored(path: Path, is_dir: bool, rules: list) -> bool:
    """git's rule: the last ignore file (the deepest) that has a say about the path decides."""
    verdict = False
    for folder, spec in rules:
        relative = path.relative_to(folder).as_posix() + ("/" if is_dir else "")
        result = spec.check_file(relative)
        if result.include is not None:
            verdict = result.include
    return verdict
