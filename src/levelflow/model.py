"""The typed model of a definition file (docs/definition.md) and of platform parameters.

Field types accept what the established AEF files contain (numbers written as strings,
`"True"` flags, `STEP_PROPERTIES` as a JSON string) and normalise it, so that every later
stage sees one clean shape. Messages say what is expected, because users read them.

Each object of the format is a record (an immutable NamedTuple) with a table of its keys: what
each accepts, its default and its JSON Schema. `read` checks a loaded document against the
tables, reporting every problem at once; `levelflow schema` is written from the same tables.
The reader is plain Python rather than pydantic because every command starts by reading a
definition: pydantic's import and model building cost about 0.15 s per process, several
times the rest of `levelflow validate` on a small file (docs/limits.md, start-up).
"""
from __future__ import annotations

import json
import math
import re
import difflib
import functools
from typing import Any, Callable, NamedTuple, Optional

from .limits import MAX_DEPTH, check_values, text_depth
from .protocol import is_loopback

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
EXECUTOR_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"
WORKFLOW_ID_PATTERN = r"^[A-Za-z](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$"  # the Workflows API's rule for a workflow id
MAX_NAME_LENGTH = 128
STEP_TYPES = ("async", "sync", "workflows")
# Compiled once: the validators below run for every step of a definition (re.fullmatch with a
# pattern string would look its compiled form up on every call)
_NAME = re.compile(NAME_PATTERN)
_WHOLE_TEXT = re.compile(r"[+-]?\d+")
_CRON_TEXT = re.compile(r"[0-9A-Za-z*/,\- ]+")


class Invalid(ValueError):
    """A value a key does not accept; the message says what is expected."""


def _fail(message: str) -> Invalid:
    return Invalid(message)


def _remembered(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`check`, remembering what it made of each text it accepted (at most 4,096): a big
    definition repeats the same TYPE, executors and numbers in every step. What it makes is
    immutable (text, a number, a boolean), so steps may share it."""
    accepted: dict[str, Any] = {}

    def remembered_check(value: Any) -> Any:
        if type(value) is not str:
            return check(value)
        result = accepted.get(value, accepted)
        if result is accepted:
            result = check(value)
            if len(accepted) < 4096:
                accepted[value] = result
        return result

    remembered_check.accepted = accepted  # type: ignore[attr-defined]  # the reader looks texts up itself
    return remembered_check


def shown(value: Any) -> str:
    """A value as the user wrote it (JSON), cut short for messages."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any, *, whole: bool, what: str) -> float | int:
    """Accept 30, 30.0 or "30" (the established files quote their numbers)."""
    if isinstance(value, bool):
        raise _fail(f"{what}, got {shown(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if _WHOLE_TEXT.fullmatch(text) else float(text)
        except ValueError:
            raise _fail(f"{what}, got {shown(value)}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{what}, got {shown(value)}")
    if whole:
        if value != int(value):
            raise _fail(f"{what}, got {shown(value)}")
        return int(value)
    return value


def _ranged(*, whole: bool, what: str, low: float, high: float | None = None, low_open: bool = False):
    def check(value: Any):
        number = _number(value, whole=whole, what=what)
        too_low = number <= low if low_open else number < low
        if too_low or (high is not None and number > high):
            raise _fail(f"{what}, got {shown(value)}")
        return number if whole else float(number)  # minutes are floats however written: 12 -> 12.0

    return _remembered(check)


def _identifier(value: Any) -> str:
    """LEVEL_ID, THREAD_ID, JOB_ID: text or a whole number, kept as text."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(f"must be a string or a whole number, got {shown(value)}")
    text = str(value).strip()
    if not text:
        raise _fail("must not be empty")
    if not _NAME.fullmatch(text) or len(text) > MAX_NAME_LENGTH:
        raise _fail(
            f"must be 1 to {MAX_NAME_LENGTH} letters, digits, '_' or '-' "
            f"(it becomes part of generated step and task names), got {shown(value)}"
        )
    return text


def _job_name(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(f"must be a string, got {shown(value)}")
    if not _NAME.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        raise _fail(
            f"must be 1 to {MAX_NAME_LENGTH} letters, digits, '_' or '-': it becomes a workflow "
            f"step name, an Airflow task id and a GCS object name, got {shown(value)}"
        )
    return value


def _pattern(pattern: str, what: str):
    regex = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise _fail(f"must be {what}, got {shown(value)}")
        return value

    return _remembered(check)


def _flag(value: Any) -> bool:
    """CONTINUE_IF_FAIL: true unless explicitly false (the original tests key presence)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", ""):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0"):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _fail(f'must be true or false (or "True"/"False"), got {shown(value)}')


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _json_object(value: Any) -> dict:
    if isinstance(value, str):
        # checked before parsing: json.loads recurses (fewer brackets than the limit cannot nest deeper)
        if value.count("[") + value.count("{") > MAX_DEPTH and text_depth(value) > MAX_DEPTH:
            raise _fail(f"the string holds JSON nested more than {MAX_DEPTH} levels deep (the limit)")
        try:
            value = json.loads(value, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise _fail(
                f"must be a JSON object or a string holding one; the string is not JSON ({exc.msg} at character {exc.pos})"
            ) from None
        except ValueError as exc:  # NaN / Infinity, or an integer of thousands of digits
            raise _fail(f"the string's JSON is out of bounds: {str(exc)[:120]}") from None
        for where, problem in check_values(value):
            raise _fail(f"the string's JSON, at {'.'.join(map(str, where)) or 'its top'}: {problem}")
    if not isinstance(value, dict):
        raise _fail(f"must be a JSON object (or a string holding one), got {shown(value)}")
    return value


def _engine(value: Any) -> str:
    from .backends import engine_names  # the registered engines (levelflow.backends)

    names = engine_names()
    if value not in names:
        raise _fail(f"must be one of {', '.join(map(repr, names))}, got {shown(value)}")
    return value


def _step_type(value: Any) -> str:
    if value not in STEP_TYPES:
        raise _fail(f"must be one of {', '.join(map(repr, STEP_TYPES))}, got {shown(value)}")
    return value


CRON_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually")
DATE_RULES = ("YESTERDAY", "TODAY", "YESTERDAY_TODAY", "PREVIOUS_MONTH")  # the AEF pipeline-executor's (docs/scheduling.md)


# Cloud Scheduler reads unix-cron only (cloud.google.com/scheduler/docs/configuring/cron-job-schedules):
# the presets Airflow also takes, written out; "@once" has none.
UNIX_CRON = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
             "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


def unix_cron(cron: str) -> Optional[str]:
    """A schedule's cron as Cloud Scheduler reads it; None for "@once"."""
    return UNIX_CRON.get(cron) if cron.startswith("@") else cron


def _cron(value: Any) -> str:
    if isinstance(value, str) and (value in CRON_PRESETS or len(value.split()) == 5 and _CRON_TEXT.fullmatch(value)):
        return value
    raise _fail(f"must be a 5-field cron expression or one of {', '.join(CRON_PRESETS)}, got {shown(value)}")


def _schedule_text(value: Any) -> "Schedule":
    """The short form: `"schedule": "0 4 * * *"` is `{"cron": "0 4 * * *"}` with every default."""
    return Schedule(_cron(value))


@functools.lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def _time_zone(value: Any) -> str:
    if not isinstance(value, str) or value not in _time_zones():
        close = difflib.get_close_matches(str(value), sorted(_time_zones()), n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _fail(f"must be a time zone name of the tz database, such as 'UTC' or 'Europe/Paris', got {shown(value)}{hint}")
    return value


# Pub/Sub topic ids: 3-255 characters, a letter first, then letters, digits, - _ . ~ + %;
# not starting with "goog" (cloud.google.com/pubsub/docs/pubsub-basics#resource_names).
TOPIC_ID_PATTERN = r"^(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}$"
_TOPIC_ID = re.compile(TOPIC_ID_PATTERN)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _topic_id(value: Any) -> str:
    if not isinstance(value, str) or not _TOPIC_ID.fullmatch(value):
        raise _fail("must be a Pub/Sub topic id: 3 to 255 letters, digits, '-', '_', '.', '~', '+' or '%', starting with a "
                    f"letter and not with 'goog' (the topic is in the pipeline's project), got {shown(value)}")
    return value


def _emails(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and _EMAIL.fullmatch(item) for item in value):
        raise _fail(f"must be a list of e-mail addresses, got {shown(value)}")
    return tuple(value)


def _not_a_mapping(value: Any):
    raise _fail(f"must be a mapping with pubsub_topic (and on_failure, on_success, email), got {shown(value)}")


def _date_rule(value: Any) -> str:
    if value not in DATE_RULES:
        raise _fail(f"must be one of {', '.join(DATE_RULES)}, got {shown(value)}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(f"must be a string, got {shown(value)}")
    return value


# --- keys and records ----------------------------------------------------------------------

_NUMBER_OR_TEXT = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*$"}]}
_WHOLE_OR_TEXT = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*$"}]}  # "1e3" is 1000
# An id is read stripped of surrounding spaces, and a whole number (even negative) as its text.
_ID_SCHEMA = {"anyOf": [{"type": "string", "pattern": rf"^\s*[A-Za-z0-9_-]{{1,{MAX_NAME_LENGTH}}}\s*$"}, {"type": "integer"}]}
# (_flag: any case, spaces around; JSON Schema's regular expressions have no case-insensitive flag)
_FLAG_SCHEMA = {"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                         {"type": "string", "pattern": r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|[01])?\s*$"}]}
_EXECUTOR_SCHEMA = {"type": "string", "pattern": EXECUTOR_PATTERN}
_EXECUTOR = _pattern(EXECUTOR_PATTERN, "an executor (function) name: a letter, then up to 62 letters, digits, '_' or '-'")
_WORKFLOW_ID = _pattern(WORKFLOW_ID_PATTERN,
                        "a workflow id: a letter, then up to 63 letters, digits, '_' or '-', ending with a letter or digit")


class Key(NamedTuple):
    """One key of an object of the format: the name written in files, what it accepts and its
    JSON Schema. `check` turns an accepted value into its clean form or raises Invalid; a key
    with `items` holds a non-empty list of those records instead. An optional key (not
    `required`, `nullable`) takes null as "not given", as JSON Schema's `anyOf [..., null]` says."""

    name: str
    check: Optional[Callable[[Any], Any]] = None
    schema: dict = {}  # (never changed: readers copy it)
    required: bool = False
    default: Any = None
    nullable: bool = True
    description: Optional[str] = None
    items: Optional[type] = None
    record: Optional[type] = None  # a mapping is read as this record; anything else goes to `check`


def _optional(name: str, check: Callable[[Any], Any], schema: dict, description: Optional[str] = None) -> Key:
    return Key(name, check, schema, description=description)


class Step(NamedTuple):
    job_id: str
    job_name: str
    type: str
    function_id_name: Optional[str] = None
    function_status_name: Optional[str] = None
    function_name: Optional[str] = None
    composer_step: Optional[str] = None
    workflows_name: Optional[str] = None
    wait_time_seconds: Optional[int] = None
    async_timeout_minutes: Optional[float] = None
    timeout_seconds: Optional[int] = None
    continue_if_fail: bool = False
    step_properties: Optional[dict] = None
    next: Optional[str] = None
    retries: int = 0
    estimated_minutes: Optional[float] = None
    read_input_from: Optional[str] = None


class Thread(NamedTuple):
    thread_id: str
    steps: tuple[Step, ...]


class Level(NamedTuple):
    level_id: str
    threads: tuple[Thread, ...]


class Schedule(NamedTuple):
    cron: str
    time_zone: str = "UTC"
    paused: bool = False
    dates: str = "YESTERDAY"  # the dates a run gets when its arguments give none (DATE_RULES)
    workflow_properties: Optional[dict] = None

    def as_data(self, engine: str) -> dict:
        """As `levelflow validate --format json` reports it (the Terraform module reads it)."""
        return {**self._asdict(), "workflow_properties": self.workflow_properties or {},
                "unix_cron": unix_cron(self.cron) if engine == "cloud_workflows" else None}


class Notify(NamedTuple):
    """Who hears of a run's end (docs/notifications.md): a message with its report on a Pub/Sub topic."""
    pubsub_topic: str  # a topic id in the pipeline's project (pProjectID)
    on_failure: bool = True
    on_success: bool = False
    email: tuple[str, ...] = ()  # addresses the Terraform module's alert policy on the topic mails


class Pipeline(NamedTuple):
    schema_ref: Optional[str]
    name: Optional[str]
    description: Optional[str]
    engine: str
    schedule: Optional[Schedule]
    notify: Optional[Notify]
    deadline_minutes: Optional[float]
    definition: tuple[Level, ...]


# Each record's keys, in its fields' order (Record._make takes the accepted values in that order).
KEYS: dict[type, tuple[Key, ...]] = {
    Step: (
        Key("JOB_ID", _identifier, _ID_SCHEMA, required=True, description="Unique id of the step within the pipeline."),
        Key("JOB_NAME", _job_name, {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH}, required=True,
            description="Unique job name; names the job's parameter file gs://<jobs bucket>/<executor>/<JOB_NAME>.json."),
        Key("TYPE", _remembered(_step_type), {"enum": list(STEP_TYPES)}, required=True,
            description="async: start then poll; sync: one call; workflows: run another workflow and wait."),
        _optional("FUNCTION_ID_NAME", _EXECUTOR, _EXECUTOR_SCHEMA, "Executor that starts the job (async)."),
        _optional("FUNCTION_STATUS_NAME", _EXECUTOR, _EXECUTOR_SCHEMA,
                  "Executor that reports the job's status (async; defaults to FUNCTION_ID_NAME)."),
        _optional("FUNCTION_NAME", _EXECUTOR, _EXECUTOR_SCHEMA, "Executor called by a sync step."),
        _optional("COMPOSER_STEP", _EXECUTOR, _EXECUTOR_SCHEMA, "Executor name used by composer definitions."),
        _optional("workflows_name", _WORKFLOW_ID, {"type": "string", "pattern": WORKFLOW_ID_PATTERN},
                  "The deployed workflow a workflows step runs."),
        _optional("WAIT_TIME_SECONDS", _ranged(whole=True, low=1, what="must be a whole number of seconds >= 1"),
                  {**_WHOLE_OR_TEXT, "description": "seconds between two status polls (>= 1)"},
                  "Seconds between two status polls (default 30)."),
        _optional("ASYNC_TIMEOUT_LOOP_IN_MINUTES",
                  _ranged(whole=False, low=0, low_open=True, high=525600,
                          what="must be a number of minutes > 0 (at most 525600, one year)"),
                  _NUMBER_OR_TEXT, "The step fails when it has not finished after this long (default 60)."),
        _optional("TIMEOUT_SECONDS",
                  _ranged(whole=True, low=1, high=1800,
                          what="must be a whole number of seconds from 1 to 1800 (the Cloud Workflows HTTP limit)"),
                  _WHOLE_OR_TEXT, "Time-out of one call, 1..1800 (default 300 for async calls, 1800 for sync calls)."),
        Key("CONTINUE_IF_FAIL", _remembered(_flag), _FLAG_SCHEMA, default=False, nullable=False,
            description="A failure of this step is recorded and its thread goes on."),
        _optional("STEP_PROPERTIES", _json_object, {"anyOf": [{"type": "object"}, {"type": "string"}]},
                  "Object merged over the workflow properties for this step."),
        _optional("NEXT", _identifier, _ID_SCHEMA, "JOB_ID of a later step of the same thread to go to after this one."),
        Key("RETRIES", _ranged(whole=True, low=0, high=10, what="must be a whole number of retries from 0 to 10"), _WHOLE_OR_TEXT,
            default=0, nullable=False, description="How many times a failed step is retried (default 0)."),
        _optional("ESTIMATED_MINUTES", _ranged(whole=False, low=0, low_open=False, high=525600, what="must be a number of minutes >= 0"),
                  _NUMBER_OR_TEXT, "Expected duration, used by `levelflow plan` for the critical path."),
        _optional("READ_INPUT_FROM", _string, {"type": "string"},
                  "Read by no engine: accepted, with a warning, on the async steps of AEF files; an error elsewhere."),
    ),
    Thread: (Key("THREAD_ID", _identifier, _ID_SCHEMA, required=True), Key("STEPS", items=Step, required=True)),
    Level: (Key("LEVEL_ID", _identifier, _ID_SCHEMA, required=True), Key("THREADS", items=Thread, required=True)),
    Pipeline: (
        _optional("$schema", _string, {"type": "string"}),
        _optional("name", _WORKFLOW_ID, {"type": "string", "pattern": WORKFLOW_ID_PATTERN},
                  "Name of the generated workflow / DAG (default: the file stem)."),
        _optional("description", _string, {"type": "string"}),
        Key("engine", _engine, {}, required=True, description="cloud_workflows or composer (the CLI may override it)."),
        Key("schedule", _schedule_text, {"type": "string", "description": "5-field cron expression or a preset such as @daily"},
            record=Schedule, description="When the pipeline runs: a cron string, or a mapping (docs/scheduling.md)."),
        Key("notify", _not_a_mapping, {"type": "object"}, record=Notify,
            description="A Pub/Sub message with the run's report when it fails (or succeeds): docs/notifications.md."),
        _optional("deadline_minutes", _ranged(whole=False, low=0, low_open=True, high=525600,
                                              what="must be a number of minutes > 0 (at most 525600, one year)"),
                  _NUMBER_OR_TEXT, "A run still going after this long fails, its running jobs cancelled (docs/semantics.md)."),
        Key("definition", items=Level, required=True),
    ),
    Notify: (
        Key("pubsub_topic", _topic_id, {"type": "string", "pattern": TOPIC_ID_PATTERN}, required=True,
            description="Topic id in the pipeline's project (pProjectID) the message is published to."),
        Key("on_failure", _flag, _FLAG_SCHEMA, default=True, nullable=False, description="Publish when a run fails."),
        Key("on_success", _flag, _FLAG_SCHEMA, default=False, nullable=False, description="Publish when a run succeeds."),
        Key("email", _emails, {"type": "array", "items": {"type": "string", "format": "email"}}, default=(), nullable=False,
            description="Addresses mailed by the Terraform module's alert policy on the topic."),
    ),
    Schedule: (
        Key("cron", _cron, {"type": "string"}, required=True, description="5-field cron expression or a preset such as @daily."),
        Key("time_zone", _time_zone, {"type": "string"}, default="UTC", nullable=False,
            description="tz database name the cron and the run's dates are read in."),
        Key("paused", _flag, _FLAG_SCHEMA, default=False, nullable=False, description="Deployed, but not triggered."),
        Key("dates", _date_rule, {"enum": list(DATE_RULES)}, default="YESTERDAY", nullable=False,
            description="start_date / end_date of a run whose arguments give none, from the day it is triggered."),
        _optional("workflow_properties", _json_object, {"anyOf": [{"type": "object"}, {"type": "string"}]},
                  "workflow_properties of the scheduled runs."),
    ),
}


class _Table(NamedTuple):
    """A record's keys, indexed for the reader: by name, (field index, check, whether null
    means "not given", nested record, the texts the check already accepted)."""

    keys: tuple[Key, ...]
    by_name: dict[str, tuple[int, Optional[Callable[[Any], Any]], bool, Optional[type], dict, Optional[type]]]
    defaults: tuple
    required: frozenset[str]

    @classmethod
    def of(cls, record: type) -> "_Table":
        keys = KEYS[record]
        by_name = {key.name: (i, key.check, key.nullable and not key.required, key.items, getattr(key.check, "accepted", {}),
                              key.record) for i, key in enumerate(keys)}
        return cls(keys, by_name, tuple(key.default for key in keys), frozenset(key.name for key in keys if key.required))


_TABLES = {record: _Table.of(record) for record in KEYS}


def known_keys(record: type) -> list[str]:
    return [key.name for key in KEYS[record]]


def _read_record(record: type, data: Any, path: tuple, problems: list) -> Any:
    """`data` as a `record`, or None after appending (path, message) to `problems`."""
    if type(data) is not dict:
        problems.append((path, f"must be an object (mapping), got {shown(data)}"))
        return None
    table = _TABLES[record]
    by_name = table.by_name
    values = list(table.defaults)
    before = len(problems)
    for name, value in data.items():  # (runs for every key of every step: paths are made only when needed)
        entry = by_name.get(name)
        if entry is None:
            problems.append(((*path, name), _unknown_key(name, record)))
            continue
        i, check, nullable, items, accepted, single = entry
        if value is None and nullable:
            values[i] = None
        elif type(value) is str and value in accepted:  # a text this key accepted before: no call
            values[i] = accepted[value]
        elif items is not None:
            values[i] = _read_items(items, value, (*path, name), problems)
        elif single is not None and type(value) is dict:
            values[i] = _read_record(single, value, (*path, name), problems)
        else:
            try:
                values[i] = check(value)  # type: ignore[misc]  # a key without items has a check
            except Invalid as exc:
                problems.append(((*path, name), str(exc)))
    if not table.required <= data.keys():
        problems.extend((path, f"missing required key {key.name}") for key in table.keys if key.required and key.name not in data)
    return record(*values) if len(problems) == before else None


def _read_items(record: type, value: Any, path: tuple, problems: list) -> Optional[tuple]:
    if type(value) is not list:
        problems.append((path, f"must be a list, got {shown(value)}"))
        return None
    if not value:
        problems.append((path, "must not be empty: give at least one item"))
        return None
    return tuple([_read_record(record, item, (*path, i), problems) for i, item in enumerate(value)])


def _unknown_key(key: str, record: type) -> str:
    known = known_keys(record)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; expected one of {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


def read_pipeline(data: Any) -> tuple[Optional[Pipeline], list[tuple[tuple, str]]]:
    """The definition `data` (a loaded JSON/YAML document) as a Pipeline, or None and every
    problem found, as (JSON path, message)."""
    problems: list[tuple[tuple, str]] = []
    pipeline = _read_record(Pipeline, data, (), problems)
    return (pipeline if not problems else None), problems


def pipeline_from(data: Any) -> Pipeline:
    """As read_pipeline, raising Invalid with every problem (for Python callers that hold the
    data rather than a file; files go through levelflow.validate, which also locates them)."""
    pipeline, problems = read_pipeline(data)
    if pipeline is None:
        raise Invalid("; ".join(f"{'.'.join(map(str, path)) or '(document)'}: {message}" for path, message in problems))
    return pipeline


def record_schema(record: type, definitions: dict) -> dict:
    """JSON Schema (2020-12) of `record`, its nested records added to `definitions`."""
    properties = {}
    for key in KEYS[record]:
        if key.items is not None:
            definitions[key.items.__name__] = record_schema(key.items, definitions)
            schema: dict = {"items": {"$ref": f"#/$defs/{key.items.__name__}"}, "minItems": 1, "type": "array"}
        elif key.record is not None:
            definitions[key.record.__name__] = record_schema(key.record, definitions)
            schema = {"anyOf": [key.schema, {"$ref": f"#/$defs/{key.record.__name__}"}, {"type": "null"}]}
        elif key.required or not key.nullable:
            schema = dict(key.schema)
        else:
            members = key.schema["anyOf"] if key.schema.keys() == {"anyOf"} else [key.schema]  # a bare anyOf is flattened
            schema = {"anyOf": [*members, {"type": "null"}]}
        if not key.required:
            schema["default"] = key.default
        if key.description:
            schema["description"] = key.description
        properties[key.name] = {**schema, "title": key.name.replace("_", " ").title()}
    return {"additionalProperties": False, "properties": properties,
            "required": [key.name for key in KEYS[record] if key.required], "title": record.__name__, "type": "object"}


# Required keys per step TYPE: (keys of which one must be present, what the message says).
REQUIRED_BY_TYPE = {
    "async": (
        ("FUNCTION_ID_NAME", "COMPOSER_STEP"),
        "an async step needs FUNCTION_ID_NAME (or COMPOSER_STEP in composer definitions) naming the executor that starts the job",
    ),
    "sync": (("FUNCTION_NAME", "COMPOSER_STEP"), "a sync step needs FUNCTION_NAME naming the executor to call"),
    "workflows": (("workflows_name",), "a workflows step needs workflows_name naming the workflow to run"),
}


# --- platform parameters ---------------------------------------------------------------------

REQUIRED_PARAMS = {
    "pRegion": "the Google Cloud region of the functions",
    "pProjectID": "the project that hosts the functions",
    "pFunctionIntermediateName": "the name of the intermediate function",
    "pJobsDefinitionsBucket": "the bucket holding the jobs' parameter files",
}


def _matching(pattern: str, what: str) -> Callable[[Any], str]:
    regex = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(f"must be a string, got {shown(value)}")
        if not regex.search(value):
            raise _fail(f"must be {what}, got {shown(value)}")
        return value

    return check


PARAM_CHECKS: dict[str, Callable[[Any], str]] = {
    "pRegion": _matching(r"^[a-z]+-[a-z]+\d+$", "a Google Cloud region such as us-central1 or europe-west1"),
    "pProjectID": _matching(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", "a project id: 6 to 30 lowercase letters, digits or '-', "
                                                           "starting with a letter and not ending with '-'"),
    "pFunctionIntermediateName": _EXECUTOR,
    "pJobsDefinitionsBucket": _matching(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", "a bucket name: 3 to 222 lowercase "
                                        "letters, digits, '.', '_' or '-', starting and ending with a letter or digit"),
}


class PlatformParams(NamedTuple):
    """A platform parameters file: the four required parameters, and the others as given."""

    pRegion: str
    pProjectID: str
    pFunctionIntermediateName: str
    pJobsDefinitionsBucket: str
    extra: dict[str, Any]

    @classmethod
    def read(cls, mapping: dict[str, Any]) -> tuple[Optional["PlatformParams"], list[tuple[Optional[str], str]]]:
        """The parameters in `mapping`, or None and every problem as (parameter or None, message).
        The caller has checked that the required parameters are present."""
        problems: list[tuple[Optional[str], str]] = []
        values = {}
        for name, check in PARAM_CHECKS.items():
            try:
                values[name] = check(mapping[name])
            except Invalid as exc:
                problems.append((name, str(exc)))
        if problems:
            return None, problems
        extra = {key: value for key, value in mapping.items() if key not in PARAM_CHECKS}
        base_url_problem = _base_url_problem(extra.get("pFunctionsBaseUrl"))
        if base_url_problem:
            return None, [("pFunctionsBaseUrl", base_url_problem)]
        return cls(**values, extra=extra), []

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any]) -> "PlatformParams":
        """As `read`, raising Invalid with the first problem."""
        missing = [key for key in REQUIRED_PARAMS if key not in mapping]
        if missing:
            raise Invalid(f"missing required parameter {missing[0]} ({REQUIRED_PARAMS[missing[0]]})")
        params, problems = cls.read(mapping)
        if params is None:
            key, message = problems[0]
            raise Invalid(f"{key} {message}" if key else message)
        return params

    def as_mapping(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PARAM_CHECKS} | self.extra

    def function_url(self, name: str) -> str:
        # pFunctionsBaseUrl (optional) points every function at another host, e.g. the local
        # stub executor server: {"pFunctionsBaseUrl": "http://127.0.0.1:8080"}.
        base = (self.extra.get("pFunctionsBaseUrl") or f"https://{self.pRegion}-{self.pProjectID}.cloudfunctions.net").rstrip("/")
        return f"{base}/{name}"

    @property
    def intermediate_url(self) -> str:
        return self.function_url(self.pFunctionIntermediateName)


def _base_url_problem(base: Any) -> Optional[str]:
    """pFunctionsBaseUrl: https, or plain http only to this machine (a local double);
    never an ID token sent in clear, never a call to an unknown scheme."""
    if base is None:
        return None
    if not isinstance(base, str):
        return f"must be a URL (text), got {shown(base)}"
    if not re.fullmatch(r"https?://[^\s${}\"'\\]+", base):
        return f"must be an http(s) URL without spaces, quotes or '${{', got {shown(base)}"
    if base.startswith("http://") and not is_loopback(base):
        return (f"must be https, or plain http to a loopback address (127.0.0.1, localhost, ::1) "
                f"such as a local double, got {shown(base)}")
    return None
