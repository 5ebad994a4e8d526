"""Keys that mean nothing somewhere: the one catalogue of step keys that an engine, a step mode
or a step TYPE does not read (docs/definition.md, "Keys each engine and mode reads").

No key is silently ignored: `validate` and `generate` report each such key at its place (file,
line, column, JSON path), saying why it means nothing there and what to do. It is an error,
except for a key that the original AEF generator's files carry on async steps (the only steps
its generated workflows ran): that one is a warning, so that those files still validate
unchanged, and `--strict` makes it an error. Every key not listed here for a place is read there.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Optional

from .errors import Problem
from .loader import Document

# The places a key can be read in: engine and step mode (each engine's `step_modes`).
MODES = ("cloud_workflows:functions", "cloud_workflows:native", "composer:operators", "composer:functions")

# The keys the original generator takes on an async step: those its published definition files
# carry (github.com/GoogleCloudPlatform/aef-data-orchestration, workflow-definitions/) and those
# its reader also accepts there (TIMEOUT_SECONDS, CONTINUE_IF_FAIL, READ_INPUT_FROM: the last
# filled a template placeholder that no template has). Its sync and workflows steps never ran
# (docs/migrating-from-aef.md, rows 4 and 5), so no working AEF file holds one.
AEF_ASYNC_KEYS = frozenset({
    "JOB_ID", "JOB_NAME", "TYPE", "FUNCTION_ID_NAME", "FUNCTION_STATUS_NAME", "WAIT_TIME_SECONDS",
    "ASYNC_TIMEOUT_LOOP_IN_MINUTES", "TIMEOUT_SECONDS", "CONTINUE_IF_FAIL", "STEP_PROPERTIES", "NEXT",
    "READ_INPUT_FROM", "COMPOSER_STEP",
})


class Unread(NamedTuple):
    """`key` means nothing on steps of these `types` in these `modes` (None: every one), when one
    of the keys of `instead` is also given (empty: always): `why` says what happens instead,
    `fix` what to do."""

    key: str
    types: tuple[str, ...]
    modes: Optional[tuple[str, ...]]
    why: str
    fix: str
    instead: tuple[str, ...] = ()


_OPERATORS = ("composer:operators",)
# Every mode but Composer operators mode. That mode runs a step's executor (COMPOSER_STEP first)
# with the Google operators, which poll, whatever the step's TYPE; the others take the executor
# from FUNCTION_ID_NAME / FUNCTION_NAME first and make one call for a sync step.
_NOT_OPERATORS = tuple(mode for mode in MODES if mode not in _OPERATORS)

CATALOGUE = (
    Unread("FUNCTION_ID_NAME", ("sync", "workflows"), None,
           "it names the executor that starts an async step's job",
           "drop it (a sync step calls FUNCTION_NAME, a workflows step runs workflows_name)"),
    Unread("FUNCTION_ID_NAME", ("async",), _OPERATORS,
           "operators mode runs the executor that COMPOSER_STEP names",
           "give only one of FUNCTION_ID_NAME and COMPOSER_STEP", instead=("COMPOSER_STEP",)),
    Unread("FUNCTION_STATUS_NAME", ("sync", "workflows"), None,
           "it names the executor that reports an async step's job status", "drop it"),
    Unread("FUNCTION_STATUS_NAME", ("async",), _OPERATORS,
           "the Google operators poll the job through its API, not through a status function",
           "drop it, or generate with --step-mode functions, which polls through it"),
    Unread("FUNCTION_NAME", ("async", "workflows"), None,
           "it names the function a sync step calls",
           "drop it (an async step starts its job with FUNCTION_ID_NAME, a workflows step runs workflows_name)"),
    Unread("FUNCTION_NAME", ("sync",), _OPERATORS,
           "operators mode runs the executor that COMPOSER_STEP names",
           "give only one of FUNCTION_NAME and COMPOSER_STEP", instead=("COMPOSER_STEP",)),
    Unread("COMPOSER_STEP", ("workflows",), None, "a workflows step runs workflows_name", "drop it"),
    Unread("COMPOSER_STEP", ("async", "sync"), _NOT_OPERATORS,
           "the function called is the one FUNCTION_ID_NAME or FUNCTION_NAME names",
           "give only one of them", instead=("FUNCTION_ID_NAME", "FUNCTION_NAME")),
    Unread("workflows_name", ("async", "sync"), None,
           "it names the workflow that a workflows step runs", "drop it, or make the step TYPE workflows"),
    Unread("WAIT_TIME_SECONDS", ("sync",), _NOT_OPERATORS,
           "a sync step makes one call and polls nothing", "drop it"),
    Unread("ASYNC_TIMEOUT_LOOP_IN_MINUTES", ("sync",), None,
           "a sync step's time-out is TIMEOUT_SECONDS", "drop it, or set TIMEOUT_SECONDS"),
    Unread("TIMEOUT_SECONDS", ("workflows",), None,
           "a workflows step's calls are the Workflow Executions API's; its time-out is ASYNC_TIMEOUT_LOOP_IN_MINUTES",
           "drop it, or set ASYNC_TIMEOUT_LOOP_IN_MINUTES"),
    Unread("TIMEOUT_SECONDS", ("async",), _OPERATORS,
           "the Google operators make the job's API calls; the step's time-out is ASYNC_TIMEOUT_LOOP_IN_MINUTES",
           "drop it, or generate with --step-mode functions, whose calls it times"),
    Unread("READ_INPUT_FROM", ("async", "sync", "workflows"), None,
           "no engine reads it (the original generator accepted it and did nothing with it either)", "drop it"),
)

_STEP_TYPES = ("async", "sync", "workflows")
# (mode, TYPE) -> {key: its entries there}: what `findings` looks a step's keys up in.
_BY_PLACE: dict[tuple[str, str], dict[str, list[Unread]]] = {}
for _entry in CATALOGUE:
    for _mode in _entry.modes or MODES:
        for _type in _entry.types:
            _BY_PLACE.setdefault((_mode, _type), {}).setdefault(_entry.key, []).append(_entry)


def is_warning(entry: Unread, step_type: str) -> bool:
    """An unread key that AEF files carry on an async step warns; any other is an error."""
    return step_type == "async" and entry.key in AEF_ASYNC_KEYS


def unread(mode: str, step_type: str, given: Iterable[str]) -> dict[str, Unread]:
    """The keys of `given` (a step's keys) that mean nothing on a `step_type` step in `mode`
    ("engine:mode"), with the entry that says why."""
    given = set(given)
    place = _BY_PLACE.get((mode, step_type), {})
    return {key: entry for key in given & place.keys() for entry in place[key]
            if not entry.instead or given.intersection(entry.instead)}


def read_keys(mode: str, step_type: str, given: Iterable[str]) -> set[str]:
    """The keys of `given` (a step's keys) that a `step_type` step reads in `mode`: the known
    step keys the catalogue does not list there."""
    from .model import Step, known_keys

    given = set(given)
    return (given & set(known_keys(Step))) - unread(mode, step_type, given).keys()


def findings(document: Document, engine: str, mode: str) -> tuple[list[Problem], list[Problem]]:
    """The errors and the warnings of a validated definition's unread keys, located at each key."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    place = f"{engine}:{mode}"
    for li, level in enumerate(document.data["definition"]):
        for ti, thread in enumerate(level["THREADS"]):
            for si, step in enumerate(thread["STEPS"]):
                given = [key for key, value in step.items() if value is not None]  # null is "not given"
                for key, entry in unread(place, step["TYPE"], given).items():
                    path = ("definition", li, "THREADS", ti, "STEPS", si, key)
                    if is_warning(entry, step["TYPE"]):
                        warnings.append(document.problem(path, message(entry, step["TYPE"], engine, mode, warning=True)))
                    else:
                        errors.append(document.problem(path, message(entry, step["TYPE"], engine, mode)))
    return errors, warnings


def message(entry: Unread, step_type: str, engine: str, mode: str, *, warning: bool = False) -> str:
    also = f" given with {' or '.join(entry.instead)}" if entry.instead else ""
    article = "an" if step_type == "async" else "a"
    text = (f"{entry.key}{also} means nothing on {article} {step_type} step for the {engine} engine in {mode} mode: "
            f"{entry.why}; {entry.fix}")
    if warning:  # (a key of AEF files: levelflow goes on without it)
        text += "; it is ignored, and only warned about because AEF definition files carry it"
    return text


def table() -> str:
    """docs/definition.md's table of the step keys: the TYPEs each engine and mode reads a key on
    (scripts/engine_docs.py writes it there; a test checks it is current)."""
    from .model import KEYS, Step

    head = "| step key | " + " | ".join(f"{mode.replace(':', ' ')}" for mode in MODES) + " |"
    rows = [head, "| --- |" + " --- |" * len(MODES)]
    for key in (k.name for k in KEYS[Step]):
        rows.append(f"| `{key}` | " + " | ".join(_cell(key, mode) for mode in MODES) + " |")
    return "\n".join(rows)


def _cell(key: str, mode: str) -> str:
    """The TYPEs that read `key` in `mode`; TYPEs that read it only without some other key say so."""
    read: dict[str, list[str]] = {}  # condition ("" or " (not with ...)") -> the TYPEs read so
    for step_type in _STEP_TYPES:
        entries = _BY_PLACE.get((mode, step_type), {}).get(key, [])
        if not entries:
            read.setdefault("", []).append(step_type)
        elif all(entry.instead for entry in entries):
            others = sorted({other for entry in entries for other in entry.instead})
            read.setdefault(f" (not with {' or '.join(others)})", []).append(step_type)
    if read == {"": list(_STEP_TYPES)}:
        return "all"
    return "; ".join(", ".join(types) + condition for condition, types in read.items()) or "none"


def entries_table() -> str:
    """The catalogue as docs/definition.md lists it: where each key means nothing, and why."""
    rows = ["| key | on | in | means nothing because | reported as |", "| --- | --- | --- | --- | --- |"]
    for entry in CATALOGUE:
        where = ", ".join(mode.replace(":", " ") for mode in entry.modes) if entry.modes else "every engine and mode"
        if entry.instead:
            where += f", given with {' or '.join(entry.instead)}"
        severity = " / ".join(f"{step_type}: {'warning' if is_warning(entry, step_type) else 'error'}"
                              for step_type in entry.types)
        rows.append(f"| `{entry.key}` | {', '.join(entry.types)} | {where} | {entry.why} | {severity} |")
    return "\n".join(rows)
