"""Read JSON and YAML documents while remembering where every node came from.

`load_document` returns a `Document`: the plain Python data plus a map from each node's JSON
path (a tuple of keys and indices) to its (line, column), both 1-based. Validation errors are
keyed by the same paths, so every message can point at its place in the file.
"""
from __future__ import annotations

import bisect
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import LevelflowError, Problem
from .limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NUMBER_CHARS, check_values

YAML_SUFFIXES = (".yaml", ".yml")
scanstring = json.decoder.scanstring  # type: ignore[attr-defined]  # the JSON module's own string reader


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


def load_document(file: str | Path) -> Document:
    """Read a JSON or YAML file of at most MAX_FILE_BYTES; every value checked against docs/limits.md."""
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
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LevelflowError([Problem(name, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    document = parse_yaml(text, name) if name.lower().endswith(YAML_SUFFIXES) else parse_json(text, name)
    problems = [document.problem(path, message) for path, message in check_values(document.data)]
    if problems:
        raise LevelflowError(problems)
    return document


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


# ---------------------------------------------------------------- YAML
def _scan_yaml(text: str, file: str) -> None:
    """Before composing (which recurses and expands aliases): refuse aliases, and nesting deeper
    than MAX_DEPTH, from the event stream, which PyYAML produces without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            raise LevelflowError([Problem(file, f"YAML aliases (*{event.anchor}) are not allowed in definitions: "
                                                "they can expand beyond any memory; write the value out", (),
                                          mark.line + 1, mark.column + 1)])
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise LevelflowError([Problem(file, f"nested more than {MAX_DEPTH} levels deep (the limit)", (),
                                              mark.line + 1, mark.column + 1)])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_yaml(text: str, file: str = "<string>") -> Document:
    loader = None
    try:
        _scan_yaml(text, file)
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
    except ValueError as exc:  # a scalar PyYAML cannot convert (an integer of thousands of digits, a bad date)
        raise LevelflowError([Problem(file, f"invalid YAML value: {str(exc)[:200]}")]) from None
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
    if depth > MAX_DEPTH:
        raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_DEPTH} levels deep (the limit)", problem_mark=node.start_mark)
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                mark = key_node.start_mark
                problems.append(Problem(file, f"keys must be text; {key_node.value!r} reads as {type(key).__name__} in YAML: quote it",
                                        path, mark.line + 1, mark.column + 1))
                key = key_node.value
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
    surprise = _yaml11_surprise(node)
    if surprise:
        problems.append(Problem(file, surprise, path, node.start_mark.line + 1, node.start_mark.column + 1))
        return node.value
    if len(node.value) > MAX_NUMBER_CHARS and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        problems.append(Problem(file, f"a number of {len(node.value):,} characters, more than the {MAX_NUMBER_CHARS} allowed",
                                path, node.start_mark.line + 1, node.start_mark.column + 1))
        return None
    value = loader.construct_object(node, deep=True)
    # Dates and times become their ISO text: the definition format knows only JSON types.
    if not isinstance(value, (str, int, float, bool, type(None))):
        value = node.value
    return value


_OCTAL_OR_SEXAGESIMAL = re.compile(r"[-+]?(0[0-9_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)")
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _yaml11_surprise(node) -> str | None:
    """Plain scalars YAML 1.1 (PyYAML) reads otherwise than YAML 1.2 and JSON: reported, not guessed."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None
    text = node.value
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and (_OCTAL_OR_SEXAGESIMAL.fullmatch(text) or "_" in text):
        return f"YAML 1.1 reads {text!r} as a number other than it looks ({text!r}); quote it, or write the number plainly"
    if node.tag == "tag:yaml.org,2002:bool" and text.lower() in _YAML11_BOOLEANS:
        return f"YAML 1.1 reads {text!r} as a boolean; write true or false, or quote it"
    return None
