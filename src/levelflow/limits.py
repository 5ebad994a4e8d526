"""Bounds on every input levelflow reads (docs/limits.md): a hostile or broken file gets a
located error naming the limit, never unbounded time or memory, never a traceback.

`check_values` walks loaded data iteratively (no recursion), so it is safe on any shape the
readers let through; the readers themselves check nesting depth before they recurse.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

MAX_FILE_BYTES = 64 * 1024 * 1024  # a definition, parameter, scenario or job file
MAX_DEPTH = 64  # nesting of mappings and lists (a definition needs 6; properties a few more)
MAX_STRING_CHARS = 1024 * 1024
MAX_KEY_CHARS = 256
MAX_NUMBER_CHARS = 40  # digits of a number as written (whole numbers up to about 10^39)
MAX_INTEGER = 10 ** 18  # larger whole numbers are refused: no engine can carry them exactly


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def string_problem(text: str) -> str | None:
    if len(text) > MAX_STRING_CHARS:
        return f"text of {len(text):,} characters, more than the {MAX_STRING_CHARS:,} allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid Unicode: a lone surrogate {text[exc.start]!r} at character {exc.start} (write the character itself)"
    return None


def number_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite (no NaN or infinity, and not beyond about 1.8e308)"
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        return f"whole number too large (more than {MAX_INTEGER:.0e} in size)"
    return None


def check_values(data: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, problem) for every value out of bounds: depth, string length and Unicode, key
    length, number size and finiteness."""
    if _within_bounds(data):  # the usual case, decided without building a path per node
        return iter(())
    return _problems(data, prefix)


def _within_bounds(data: Any) -> bool:
    """Whether `_problems` would find nothing: the same rules, answered yes or no."""
    checked_keys: set = set()  # keys recur in every step: each distinct one is checked once
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            keys = value.keys()
            if not keys <= checked_keys:
                for key in keys - checked_keys:
                    if len(str(key)) > MAX_KEY_CHARS or string_problem(str(key)):
                        return False
                    checked_keys.add(key)
            items: Any = value.values()
        elif isinstance(value, list):
            items = value
        else:
            return _scalar_problem(value) is None
        if depth >= MAX_DEPTH and items:
            return False
        for item in items:
            kind = type(item)
            if kind is str:
                if len(item) > MAX_STRING_CHARS or not item.isascii() and string_problem(item):
                    return False
            elif kind is dict or kind is list or isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif item is not None and kind is not bool and _scalar_problem(item) is not None:
                return False
    return True


def _scalar_problem(value: Any) -> str | None:
    return string_problem(value) if isinstance(value, str) else number_problem(value)


def _problems(data: Any, prefix: tuple) -> Iterator[tuple[tuple, str]]:
    stack = [(prefix, data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            yield path, f"nested more than {MAX_DEPTH} levels deep"
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                key_text = str(key)
                if len(key_text) > MAX_KEY_CHARS:
                    yield path, f"a key of {len(key_text):,} characters ({shorten(key_text)!r}), more than the {MAX_KEY_CHARS} allowed"
                    continue
                problem = string_problem(key_text)
                if problem:
                    yield path, f"key {shorten(key_text.encode('utf-8', 'backslashreplace').decode())!r}: {problem}"
                    continue
                stack.append((path + (key,), item, depth + 1))
        elif isinstance(value, list):
            stack.extend((path + (index,), item, depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            problem = string_problem(value)
            if problem:
                yield path, problem
        else:
            problem = number_problem(value)
            if problem:
                yield path, problem


def text_depth(text: str) -> int:
    """Deepest [ / { nesting of JSON text, counted without parsing (brackets in strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
