"""Read JSON and YAML documents while remembering where every node came from.

`load_document` returns a `Document`: the plain Python data plus a map from each node's JSON
path (a tuple of keys and indices) to its (line, column), both 1-based. Validation errors are
keyed by the same paths, so every message can point at its place in the file.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from json.decoder import scanstring
from pathlib import Path as FsPath
from typing import Any

import yaml

from .errors import LevelflowError, Problem

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Document:
    file: str
    data: Any
    positions: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: tuple) -> tuple[int | None, int | None]:
        """Position of the deepest node of `path` that exists in the file."""
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (None, None))

    def problem(self, path: tuple, message: str) -> Problem:
        line, column = self.locate(path)
        return Problem(self.file, message, tuple(path), line, column)


def load_document(file: str | FsPath) -> Document:
    name = str(file)
    try:
        text = FsPath(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LevelflowError([Problem(name, "file not found")]) from None
    except IsADirectoryError:
        raise LevelflowError([Problem(name, "is a directory, expected a file")]) from None
    except UnicodeDecodeError as exc:
        raise LevelflowError([Problem(name, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise LevelflowError([Problem(name, f"cannot read: {exc.strerror}")]) from None
    if name.lower().endswith(YAML_SUFFIXES):
        return parse_yaml(text, name)
    return parse_json(text, name)


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
        return _WS.match(self.text, pos).end()

    def value(self, pos: int, path: tuple, depth: int = 0) -> tuple[Any, int]:
        if depth > 200:
            raise _JsonSyntaxError("nesting deeper than 200 levels", pos)
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


# ---------------------------------------------------------------- YAML
def parse_yaml(text: str, file: str = "<string>") -> Document:
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        document = Document(file, None)
        problems: list[Problem] = []
        if node is not None:
            document.data = _yaml_value(loader, node, (), document.positions, problems, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise LevelflowError([Problem(file, message, (), line, column)]) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_col(text, exc.position)
        raise LevelflowError([Problem(file, f"invalid YAML: {exc.reason} (character {exc.character!r})", (), line, column)]) from None
    except yaml.YAMLError as exc:
        raise LevelflowError([Problem(file, f"invalid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise LevelflowError(problems)
    return document


def _line_col(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1


def _yaml_value(loader, node, path, positions, problems, file, depth=0):
    if depth > 200:
        raise yaml.MarkedYAMLError(problem="nesting deeper than 200 levels", problem_mark=node.start_mark)
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                mark = key_node.start_mark
                problems.append(Problem(file, f"duplicate key {key!r}", path + (key,), mark.line + 1, mark.column + 1))
            result[key] = _yaml_value(loader, value_node, path + (key,), positions, problems, file, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _yaml_value(loader, item, path + (index,), positions, problems, file, depth + 1)
            for index, item in enumerate(node.value)
        ]
    value = loader.construct_object(node, deep=True)
    # Dates and times become their ISO text: the definition format knows only JSON types.
    if not isinstance(value, (str, int, float, bool, type(None))):
        value = node.value
    return value
