"""Read JSON and YAML documents; say where every node came from when there is a problem.

`load_document` returns a `Document`: the plain Python data, and where each node is in the
file: a map from each node's JSON path (a tuple of keys and indices) to its (line, column),
both 1-based. Validation errors are keyed by the same paths, so every message can point at its
place in the file.

Recording positions costs far more than parsing (about 2 KB per step), and they are needed
only to locate a problem. So a file is first read by the fast parsers (json.loads, libyaml),
which vouch only for a file that levelflow's position-recording readers (below, and
yaml_reader.py) read alike; those readers read it again when a problem is first located. A
file the fast parsers cannot vouch for (a syntax error, a duplicate key, a YAML alias, a value
beyond docs/limits.md...) goes to those readers at once: theirs are the only messages a user sees.
"""
from __future__ import annotations

import bisect
import contextlib
import gc
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import LevelflowError, Problem
from .limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NUMBER_CHARS, check_values

YAML_SUFFIXES = (".yaml", ".yml")
scanstring = json.decoder.scanstring  # type: ignore[attr-defined]  # the JSON module's own string reader


@dataclass
class Document:
    file: str
    data: Any
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    # A document read by the fast parsers: reads `positions` when a problem is first located
    read_positions: Optional[Callable[[], dict[tuple, tuple[int, int]]]] = field(default=None, repr=False, compare=False)

    def locate(self, path: tuple) -> tuple[int | None, int | None]:
        """Position of the deepest node of `path` that exists in the file."""
        if self.read_positions is not None:
            self.positions, self.read_positions = self.read_positions(), None
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (None, None))

    def problem(self, path: tuple, message: str) -> Problem:
        line, column = self.locate(path)
        return Problem(self.file, message, tuple(path), line, column)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large tree of new objects is built (a big
    definition's data, its models, its plan): the collector would scan the growing tree again
    and again, for nothing, since such trees hold no reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_document(file: str | Path) -> Document:
    """Read a JSON or YAML file of at most MAX_FILE_BYTES; every value checked against docs/limits.md."""
    name = str(file)
    is_yaml = name.lower().endswith(YAML_SUFFIXES)
    with gc_paused():
        text = _read_text(file)
        data = fast_yaml(text) if is_yaml else fast_json(text)
        if data is not UNSURE and next(check_values(data), None) is None:
            return Document(name, data, read_positions=lambda: _positions_again(name, is_yaml, data))
        return _located_document(text, name, is_yaml)


def _read_text(file: str | Path) -> str:
    name = str(file)
    try:
        info = os.stat(file)
        if stat.S_ISDIR(info.st_mode):
            raise LevelflowError([Problem(name, "is a directory, expected a file")])
        if not stat.S_ISREG(info.st_mode):
            raise LevelflowError([Problem(name, "is not a regular file (a pipe, socket or device); give a file")])
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LevelflowError([Problem(name, "file not found")]) from None
    except OSError as exc:
        raise LevelflowError([Problem(name, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise LevelflowError([Problem(name, f"larger than the {MAX_FILE_BYTES // (1024 * 1024)} MiB a definition file may have")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LevelflowError([Problem(name, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


def _located_document(text: str, name: str, is_yaml: bool) -> Document:
    """The position-recording readers, then the bounds of every value: every problem located."""
    document = parse_yaml(text, name) if is_yaml else parse_json(text, name)
    problems = [document.problem(path, message) for path, message in check_values(document.data)]
    if problems:
        raise LevelflowError(problems)
    return document


def _positions_again(name: str, is_yaml: bool, data: Any) -> dict[tuple, tuple[int, int]]:
    """The file read again, with positions; it must still hold what was validated."""
    with gc_paused():
        document = _located_document(_read_text(name), name, is_yaml)
    if document.data != data:
        raise LevelflowError([Problem(name, "changed while levelflow was reading it; run the command again")])
    return document.positions


# ---------------------------------------------------------------- the fast parsers
class _Unsure(Exception):
    """Raised inside a fast parser: the position-recording reader must read this file."""


UNSURE: Any = object()  # what a fast parser returns for a file it cannot vouch for


def _object(pairs: list) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):  # a duplicate key: json.loads would keep the last one silently
        raise _Unsure
    return result


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Unsure
    return float(text)


def _constant(text: str):
    raise _Unsure  # NaN, Infinity: not JSON


def fast_json(text: str) -> Any:
    """json.loads, for a file the position-recording JSON reader reads alike; else UNSURE.
    (Too deep nesting and whole numbers too large are left to check_values.)"""
    try:
        return json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_object, parse_float=_float, parse_constant=_constant)
    except (_Unsure, ValueError, RecursionError):  # ValueError: invalid JSON, an integer of thousands of digits
        return UNSURE


# ---------------------------------------------------------------- JSON
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_WS = re.compile(r"[ \t\n\r]*")
_LITERALS = {"true": True, "false": False, "null": None}


class _JsonSyntaxError(Exception):
    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.pos = pos


class _JsonReader:
    """A small recursive-descent JSON reader (RFC 8259) that records node positions."""

    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.positions: dict[tuple, tuple[int, int]] = {}
        self.problems: list[tuple[tuple, int, str]] = []

    def line_col(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, pos)
        return line, pos - self.line_starts[line - 1] + 1

    def skip(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def value(self, pos: int, path: tuple, depth: int = 0) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise _JsonSyntaxError(f"nested more than {MAX_DEPTH} levels deep (the limit)", pos)
        pos = self.skip(pos)
        self.positions[path] = self.line_col(pos)
        char = self.text[pos : pos + 1]
        if char == "{":
            return self.object(pos + 1, path, depth)
        if char == "[":
            return self.array(pos + 1, path, depth)
        if char == '"':
            return self.string(pos + 1)
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, pos):
                return literal, pos + len(word)
        match = _NUMBER.match(self.text, pos)
        if match:
            number = match.group()
            if len(number) > MAX_NUMBER_CHARS:
                raise _JsonSyntaxError(f"a number of {len(number):,} characters, more than the {MAX_NUMBER_CHARS} allowed", pos)
            return (float(number) if match.group(1) or match.group(2) else int(number)), match.end()
        if not char:
            raise _JsonSyntaxError("unexpected end of file, expected a value", pos)
        raise _JsonSyntaxError(f"expected a value, got {char!r}", pos)

    def string(self, pos: int) -> tuple[str, int]:
        try:
            return scanstring(self.text, pos, True)
        except json.JSONDecodeError as exc:
            raise _JsonSyntaxError(exc.msg.lower(), exc.pos) from None

    def object(self, pos: int, path: tuple, depth: int) -> tuple[dict, int]:
        result: dict[str, Any] = {}
        pos = self.skip(pos)
        if self.text.startswith("}", pos):
            return result, pos + 1
        while True:
            pos = self.skip(pos)
            if not self.text.startswith('"', pos):
                raise _JsonSyntaxError("expected a property name in double quotes", pos)
            key_pos = pos
            key, pos = self.string(pos + 1)
            pos = self.skip(pos)
            if not self.text.startswith(":", pos):
                raise _JsonSyntaxError("expected ':' after a property name", pos)
            if key in result:
                self.problems.append((path + (key,), key_pos, f"duplicate key {key!r}"))
            result[key], pos = self.value(pos + 1, path + (key,), depth + 1)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
            elif self.text.startswith("}", pos):
                return result, pos + 1
            else:
                raise _JsonSyntaxError("expected ',' or '}' after a property", pos)

    def array(self, pos: int, path: tuple, depth: int) -> tuple[list, int]:
        result: list[Any] = []
        pos = self.skip(pos)
        if self.text.startswith("]", pos):
            return result, pos + 1
        while True:
            item, pos = self.value(pos, path + (len(result),), depth + 1)
            result.append(item)
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
            elif self.text.startswith("]", pos):
                return result, pos + 1
            else:
                raise _JsonSyntaxError("expected ',' or ']' after an array item", pos)


def parse_json(text: str, file: str = "<string>") -> Document:
    reader = _JsonReader(text.removeprefix("\ufeff"))
    try:
        data, end = reader.value(0, ())
        end = reader.skip(end)
        if end != len(reader.text):
            raise _JsonSyntaxError("extra data after the end of the document", end)
    except _JsonSyntaxError as exc:
        line, column = reader.line_col(exc.pos)
        raise LevelflowError([Problem(file, f"invalid JSON: {exc}", (), line, column)]) from None
    problems = [Problem(file, msg, path, *reader.line_col(pos)) for path, pos, msg in reader.problems]
    if problems:
        raise LevelflowError(problems)
    return Document(file, data, reader.positions)


# ---------------------------------------------------------------- YAML (yaml_reader.py: PyYAML is imported for YAML files only)
def parse_yaml(text: str, file: str = "<string>") -> Document:
    from .yaml_reader import parse_yaml as parse

    return parse(text, file)


def fast_yaml(text: str) -> Any:
    from .yaml_reader import fast_yaml as parse

    return parse(text)
