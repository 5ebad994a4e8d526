"""Turn a loaded document into a validated model, reporting every problem at once."""
from __future__ import annotations

from typing import Any

from .errors import LevelflowError, Problem, format_path
from .loader import Document
from .model import REQUIRED_BY_TYPE, REQUIRED_PARAMS, Pipeline, PlatformParams, read_pipeline, shown


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

    Runs on the raw data so that it reports even when some fields are malformed. (It runs for
    every step of a definition: places are kept as index tuples, made into paths on a problem.)
    """
    problems: list[Problem] = []
    level_ids: dict[str, tuple] = {}
    job_ids: dict[str, tuple] = {}
    job_names: dict[str, tuple] = {}

    def duplicate(key: str, text: str, path: tuple, first: tuple, scope: str = "") -> None:
        problems.append(document.problem(path, f"duplicate {key} {text!r}{scope}; it is already used at {_where(first)}"))

    def _where(path: tuple) -> str:
        line, _ = document.locate(path)
        return f"{format_path(path)} (line {line})" if line else format_path(path)

    def step_path(place: tuple, key: str) -> tuple:
        li, ti, si = place
        return ("definition", li, "THREADS", ti, "STEPS", si, key)

    root = _as_dict(document.data)
    for li, level in enumerate(_as_list(root.get("definition"))):
        level = _as_dict(level)
        if (text := _text(level.get("LEVEL_ID"))) is not None and (first := level_ids.setdefault(text, (li,))) != (li,):
            duplicate("LEVEL_ID", text, ("definition", li, "LEVEL_ID"), ("definition", *first, "LEVEL_ID"))
        thread_ids: dict[str, int] = {}  # thread ids are unique within their level (established files reuse "1")
        for ti, thread in enumerate(_as_list(level.get("THREADS"))):
            thread = _as_dict(thread)
            if (text := _text(thread.get("THREAD_ID"))) is not None and (other := thread_ids.setdefault(text, ti)) != ti:
                duplicate("THREAD_ID", text, ("definition", li, "THREADS", ti, "THREAD_ID"),
                          ("definition", li, "THREADS", other, "THREAD_ID"), " in this level")
            steps = [_as_dict(s) for s in _as_list(thread.get("STEPS"))]
            ids = [_text(s.get("JOB_ID")) for s in steps]
            for si, step in enumerate(steps):
                place = (li, ti, si)
                if (text := ids[si]) is not None and (first := job_ids.setdefault(text, place)) is not place:
                    duplicate("JOB_ID", text, step_path(place, "JOB_ID"), step_path(first, "JOB_ID"))
                if (text := _text(step.get("JOB_NAME"))) is not None and (first := job_names.setdefault(text, place)) is not place:
                    duplicate("JOB_NAME", text, step_path(place, "JOB_NAME"), step_path(first, "JOB_NAME"))
                kind = step.get("TYPE")
                required = REQUIRED_BY_TYPE.get(kind) if type(kind) is str else None
                if required and step.keys().isdisjoint(required[0]):
                    problems.append(document.problem(step_path(place, "")[:-1], required[1]))
                if "NEXT" in step:
                    _next_problem(document, problems, ids, si, step["NEXT"], step_path(place, "NEXT"))
    return problems


def _next_problem(document: Document, problems: list[Problem], ids: list, si: int, value: Any, path: tuple) -> None:
    """NEXT must name a later step of the same thread."""
    target = _text(value)
    if target not in ids:
        problems.append(document.problem(path, f"must name the JOB_ID of a step of the same thread, got {shown(value)}"))
    elif ids.index(target) <= si:
        problems.append(document.problem(path, f"must name a later step of the same thread (NEXT may only skip forward), got {target!r}"))


def validate_pipeline(document: Document) -> Pipeline:
    if not isinstance(document.data, dict):
        raise LevelflowError([document.problem((), f"must be an object with keys 'engine' and 'definition', got {shown(document.data)}")])
    pipeline, found = read_pipeline(document.data)
    problems = [document.problem(path, message) for path, message in found]
    problems += cross_problems(document)
    if problems or pipeline is None:
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
        params, found = PlatformParams.read(mapping)
        if params is not None:
            return params
        problems = [document.problem(paths.get(key, ()) if key else (), f"{key} {message}" if key else message) for key, message in found]
    raise LevelflowError(problems)
