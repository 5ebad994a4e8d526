"""The YAML readers of loader.py, in their own module so that PyYAML is imported only for YAML
files: the position-recording reader (PyYAML's own Python reader, which alone decides what is
valid), and the fast one (libyaml), which vouches only for files the first reads alike."""
from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import LevelflowError, Problem
from .limits import MAX_DEPTH, MAX_NUMBER_CHARS, shorten
from .loader import UNSURE, Document


# What libyaml reads otherwise than PyYAML's own reader, which alone decides (found by
# tests/test_fast_reading.py): tabs, byte-order marks, tags, "?", a block scalar's header
# followed by a comment. A file holding any of them is not read by libyaml.
_LIBYAML_DIFFERS = re.compile(r"[\t\ufeff!?]|[|>][-+0-9]*#")


def fast_yaml(text: str) -> Any:
    """libyaml's parser, for a file the position-recording YAML reader reads alike; else UNSURE
    (also without libyaml). Nesting: libyaml refuses more than 1,000 levels, check_values more
    than MAX_DEPTH; aliases: looked for (as events) only in a file that can define an anchor."""
    loader_class = getattr(yaml, "CSafeLoader", None)
    if loader_class is None or _LIBYAML_DIFFERS.search(text):
        return UNSURE
    loader = None
    try:
        if "&" in text and any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=loader_class)):
            return UNSURE
        loader = loader_class(text)
        node = loader.get_single_node()
        problems: list[Problem] = []
        data = None if node is None else _yaml_value(loader, node, (), None, problems, "")
        return UNSURE if problems else data
    except (yaml.YAMLError, ValueError, RecursionError):
        return UNSURE
    finally:
        if loader is not None:
            loader.dispose()


# ---------------------------------------------------------------- the position-recording reader
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
    """The data of a composed node; `positions` (None: not recorded) receives where each node is."""
    if depth > MAX_DEPTH:
        raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_DEPTH} levels deep (the limit)", problem_mark=node.start_mark)
    if positions is not None:
        positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                mark = key_node.start_mark
                # a list or mapping as a key (`? [1]`) is shown as read, and kept as that text (hashable)
                written = key_node.value if isinstance(key_node, yaml.ScalarNode) else shorten(repr(key))
                problems.append(Problem(file, f"keys must be text; {written!r} reads as {type(key).__name__} in YAML: quote it",
                                        path, mark.line + 1, mark.column + 1))
                key = written
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
    if not isinstance(node, yaml.ScalarNode) or node.style:  # plain: None (Python parser) or "" (libyaml)
        return None
    text = node.value
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and (_OCTAL_OR_SEXAGESIMAL.fullmatch(text) or "_" in text):
        return f"YAML 1.1 reads {text!r} as a number other than it looks ({text!r}); quote it, or write the number plainly"
    if node.tag == "tag:yaml.org,2002:bool" and text.lower() in _YAML11_BOOLEANS:
        return f"YAML 1.1 reads {text!r} as a boolean; write true or false, or quote it"
    return None
