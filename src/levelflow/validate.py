"""Turn a loaded document into a validated model, reporting every problem at once."""
from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import LevelflowError, Problem, format_path
from .loader import Document
from .model import REQUIRED_BY_TYPE, REQUIRED_PARAMS, Level, Pipeline, PlatformParams, Step, Thread, shown


def _known_keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(loc: tuple) -> type[BaseModel]:
    """Which model an error location (pydantic loc, by alias) sits in, for key suggestions."""
    keys = [part for part in loc if isinstance(part, str)]
    models: dict[int, type[BaseModel]] = {0: Pipeline, 1: Level, 2: Thread}
    return models.get(len(keys) - 1, Step) if keys else Pipeline


_TYPE_WORDS = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "an object (mapping)",
    "model_type": "an object (mapping)",
    "model_attributes_type": "an object (mapping)",
    "bool_type": "true or false",
    "int_type": "a whole number",
}


def _message(error: dict, model: type[BaseModel]) -> tuple[tuple, str]:
    """A user-facing message for one pydantic error, and the path it belongs to."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "levelflow":
        return loc, error["msg"]
    if kind == "missing":
        return loc[:-1], f"missing required key {loc[-1]}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(model)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; expected one of {', '.join(known)}"
        return loc, f"unknown key {key!r}{hint}"
    if kind == "too_short":
        return loc, "must not be empty: give at least one item"
    if kind in _TYPE_WORDS:
        return loc, f"must be {_TYPE_WORDS[kind]}, got {shown(error.get('input'))}"
    if kind == "string_pattern_mismatch":
        return loc, f"must match {error['ctx']['pattern']}, got {shown(error.get('input'))}"
    return loc, f"{error['msg']}, got {shown(error.get('input'))}"


def model_problems(document: Document, model: type[BaseModel], data: Any, prefix: tuple = ()) -> tuple[Any, list[Problem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            path, message = _message(dict(error), _model_at(loc) if model is Pipeline else model)
            problems.append(document.problem(prefix + path, message))
        return None, problems


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if type(value) is str:  # the usual case, first
        return value.strip()
    return str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def cross_problems(document: Document) -> list[Problem]:
    """Rules that span several nodes: uniqueness, keys required per TYPE, NEXT targets.

    Runs on the raw data so that it reports even when some fields are malformed.
    """
    problems: list[Problem] = []
    first_use: dict[str, dict[str, tuple]] = {"LEVEL_ID": {}, "THREAD_ID": {}, "JOB_ID": {}, "JOB_NAME": {}}

    def unique(key: str, text: str | None, path: tuple) -> None:
        """`text` (a value read by _text) is used once for `key`; `path` is where."""
        if text is None:
            return
        first = first_use[key].setdefault(text, path)
        if first is not path:  # (each path is a new tuple)
            scope = " in this level" if key == "THREAD_ID" else ""
            problems.append(document.problem(path, f"duplicate {key} {text!r}{scope}; it is already used at {_where(first)}"))

    def _where(path: tuple) -> str:
        line, _ = document.locate(path)
        return f"{format_path(path)} (line {line})" if line else format_path(path)

    root = _as_dict(document.data)
    for li, level in enumerate(_as_list(root.get("definition"))):
        level = _as_dict(level)
        unique("LEVEL_ID", _text(level.get("LEVEL_ID")), ("definition", li, "LEVEL_ID"))
        first_use["THREAD_ID"] = {}  # thread ids are unique within their level (established files reuse "1")
        for ti, thread in enumerate(_as_list(level.get("THREADS"))):
            thread = _as_dict(thread)
            base = ("definition", li, "THREADS", ti, "STEPS")
            unique("THREAD_ID", _text(thread.get("THREAD_ID")), ("definition", li, "THREADS", ti, "THREAD_ID"))
            steps = [_as_dict(s) for s in _as_list(thread.get("STEPS"))]
            ids = [_text(s.get("JOB_ID")) for s in steps]
            for si, step in enumerate(steps):
                unique("JOB_ID", ids[si], (*base, si, "JOB_ID"))
                unique("JOB_NAME", _text(step.get("JOB_NAME")), (*base, si, "JOB_NAME"))
                kind = step.get("TYPE")
                required = REQUIRED_BY_TYPE.get(kind) if isinstance(kind, str) else None
                if required and step.keys().isdisjoint(required[0]):
                    problems.append(document.problem((*base, si), required[1]))
                if "NEXT" in step:
                    target = _text(step["NEXT"])
                    if target not in ids:
                        message = f"must name the JOB_ID of a step of the same thread, got {shown(step['NEXT'])}"
                    elif ids.index(target) <= si:
                        message = f"must name a later step of the same thread (NEXT may only skip forward), got {target!r}"
                    else:
                        continue
                    problems.append(document.problem((*base, si, "NEXT"), message))
    return problems


def validate_pipeline(document: Document) -> Pipeline:
    if not isinstance(document.data, dict):
        raise LevelflowError([document.problem((), f"must be an object with keys 'engine' and 'definition', got {shown(document.data)}")])
    pipeline, problems = model_problems(document, Pipeline, document.data)
    problems += cross_problems(document)
    if problems:
        unique = {str(p): p for p in problems}  # a rule and a field check may say the same thing
        raise LevelflowError(sorted(unique.values(), key=_order))
    return pipeline


def _order(problem: Problem) -> tuple:
    return (problem.line or 0, problem.column or 0, problem.message)


def params_mapping(document: Document) -> tuple[dict, dict[str, tuple], list[Problem]]:
    """Accept the established list of {ParameterKey, ParameterValue} or a plain mapping."""
    data = document.data
    if isinstance(data, dict):
        return data, {key: (key,) for key in data}, []
    if not isinstance(data, list):
        return (
            {},
            {},
            [
                document.problem(
                    (), 'must be a list of {"ParameterKey": ..., "ParameterValue": ...} or a mapping of parameter names to values'
                )
            ],
        )
    mapping, paths, problems = {}, {}, []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or "ParameterKey" not in item or "ParameterValue" not in item:
            problems.append(document.problem((index,), "must be an object with ParameterKey and ParameterValue"))
            continue
        key = item["ParameterKey"]
        if not isinstance(key, str):
            problems.append(document.problem((index, "ParameterKey"), f"must be a string, got {shown(key)}"))
            continue
        if key in mapping:
            problems.append(document.problem((index, "ParameterKey"), f"duplicate parameter {key!r}"))
        mapping[key] = item["ParameterValue"]
        paths[key] = (index, "ParameterValue")
    return mapping, paths, problems


def validate_params(document: Document) -> PlatformParams:
    mapping, paths, problems = params_mapping(document)
    if not problems:
        for key, meaning in REQUIRED_PARAMS.items():
            if key not in mapping:
                problems.append(document.problem((), f"missing required parameter {key} ({meaning})"))
    if not problems:
        params, model_errors = model_problems(document, PlatformParams, mapping)
        if not model_errors:
            return params
        problems = [
            document.problem(paths.get(p.path[0], ()) if p.path else (), f"{p.path[0] if p.path else ''}: {p.message}".lstrip(": "))
            for p in model_errors
        ]
    raise LevelflowError(problems)
