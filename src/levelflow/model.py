"""The typed model of a definition file (docs/definition.md) and of platform parameters.

Field types accept what the established AEF files contain (numbers written as strings,
`"True"` flags, `STEP_PROPERTIES` as a JSON string) and normalise it, so that every later
stage sees one clean shape. Messages say what is expected, because users read them.
"""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Callable, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

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


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("levelflow", message)


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
        return number

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


def _schedule(value: Any) -> str:
    presets = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually")
    if isinstance(value, str) and (value in presets or len(value.split()) == 5 and _CRON_TEXT.fullmatch(value)):
        return value
    raise _fail(f"must be a 5-field cron expression or one of {', '.join(presets)}, got {shown(value)}")


_NUMBER_OR_TEXT = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*$"}]}
_WHOLE_OR_TEXT = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\s*\d+\s*$"}]}
_ID_SCHEMA = {"anyOf": [{"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH}, {"type": "integer", "minimum": 0}]}
_FLAG_SCHEMA = {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["True", "true", "False", "false", "yes", "no", "1", "0", ""]}]}

Identifier = Annotated[str, BeforeValidator(_identifier), WithJsonSchema(_ID_SCHEMA)]
JobName = Annotated[
    str, BeforeValidator(_job_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH})
]
ExecutorName = Annotated[
    str,
    BeforeValidator(_pattern(EXECUTOR_PATTERN, "an executor (function) name: a letter, then up to 62 letters, digits, '_' or '-'")),
    WithJsonSchema({"type": "string", "pattern": EXECUTOR_PATTERN}),
]
WorkflowId = Annotated[
    str,
    BeforeValidator(
        _pattern(WORKFLOW_ID_PATTERN, "a workflow id: a letter, then up to 63 letters, digits, '_' or '-', ending with a letter or digit")
    ),
    WithJsonSchema({"type": "string", "pattern": WORKFLOW_ID_PATTERN}),
]
WaitSeconds = Annotated[
    int,
    BeforeValidator(_ranged(whole=True, low=1, what="must be a whole number of seconds >= 1")),
    WithJsonSchema({**_WHOLE_OR_TEXT, "description": "seconds between two status polls (>= 1)"}),
]
TimeoutMinutes = Annotated[
    float,
    BeforeValidator(
        _ranged(whole=False, low=0, low_open=True, high=525600, what="must be a number of minutes > 0 (at most 525600, one year)")
    ),
    WithJsonSchema(_NUMBER_OR_TEXT),
]
CallTimeout = Annotated[
    int,
    BeforeValidator(
        _ranged(whole=True, low=1, high=1800, what="must be a whole number of seconds from 1 to 1800 (the Cloud Workflows HTTP limit)")
    ),
    WithJsonSchema(_WHOLE_OR_TEXT),
]
Retries = Annotated[
    int,
    BeforeValidator(_ranged(whole=True, low=0, high=10, what="must be a whole number of retries from 0 to 10")),
    WithJsonSchema(_WHOLE_OR_TEXT),
]
EstimatedMinutes = Annotated[
    float,
    BeforeValidator(_ranged(whole=False, low=0, low_open=False, high=525600, what="must be a number of minutes >= 0")),
    WithJsonSchema(_NUMBER_OR_TEXT),
]
Flag = Annotated[bool, BeforeValidator(_remembered(_flag)), WithJsonSchema(_FLAG_SCHEMA)]
JsonObject = Annotated[dict, BeforeValidator(_json_object), WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "string"}]})]
Engine = Annotated[str, BeforeValidator(_engine), WithJsonSchema({})]  # schema.py adds the registered engines
StepType = Annotated[str, BeforeValidator(_remembered(_step_type)), WithJsonSchema({"enum": list(STEP_TYPES)})]
Schedule = Annotated[
    str,
    BeforeValidator(_schedule),
    WithJsonSchema({"type": "string", "description": "5-field cron expression or an Airflow preset such as @daily"}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Step(_Strict):
    job_id: Identifier = Field(alias="JOB_ID", description="Unique id of the step within the pipeline.")
    job_name: JobName = Field(
        alias="JOB_NAME", description="Unique job name; names the job's parameter file gs://<jobs bucket>/<executor>/<JOB_NAME>.json."
    )
    type: StepType = Field(alias="TYPE", description="async: start then poll; sync: one call; workflows: run another workflow and wait.")
    function_id_name: Optional[ExecutorName] = Field(None, alias="FUNCTION_ID_NAME", description="Executor that starts the job (async).")
    function_status_name: Optional[ExecutorName] = Field(
        None, alias="FUNCTION_STATUS_NAME", description="Executor that reports the job's status (async; defaults to FUNCTION_ID_NAME)."
    )
    function_name: Optional[ExecutorName] = Field(None, alias="FUNCTION_NAME", description="Executor called by a sync step.")
    composer_step: Optional[ExecutorName] = Field(None, alias="COMPOSER_STEP", description="Executor name used by composer definitions.")
    workflows_name: Optional[WorkflowId] = Field(None, alias="workflows_name", description="The deployed workflow a workflows step runs.")
    wait_time_seconds: Optional[WaitSeconds] = Field(
        None, alias="WAIT_TIME_SECONDS", description="Seconds between two status polls (default 30)."
    )
    async_timeout_minutes: Optional[TimeoutMinutes] = Field(
        None, alias="ASYNC_TIMEOUT_LOOP_IN_MINUTES", description="The step fails when it has not finished after this long (default 60)."
    )
    timeout_seconds: Optional[CallTimeout] = Field(
        None, alias="TIMEOUT_SECONDS", description="Time-out of one call, 1..1800 (default 300 for async calls, 1800 for sync calls)."
    )
    continue_if_fail: Flag = Field(
        False, alias="CONTINUE_IF_FAIL", description="A failure of this step is recorded and its thread goes on."
    )
    step_properties: Optional[JsonObject] = Field(
        None, alias="STEP_PROPERTIES", description="Object merged over the workflow properties for this step."
    )
    next: Optional[Identifier] = Field(None, alias="NEXT", description="JOB_ID of a later step of the same thread to go to after this one.")
    retries: Retries = Field(0, alias="RETRIES", description="How many times a failed step is retried (default 0).")
    estimated_minutes: Optional[EstimatedMinutes] = Field(
        None, alias="ESTIMATED_MINUTES", description="Expected duration, used by `levelflow plan` for the critical path."
    )
    read_input_from: Optional[str] = Field(
        None, alias="READ_INPUT_FROM", description="Accepted for compatibility with the original generator; not used."
    )

    @model_validator(mode="after")
    def _share_fields_set(self) -> "Step":
        """Steps that give the same keys share one set of them (pydantic's model_fields_set,
        which a frozen model never changes): about 700 bytes less per step."""
        given = self.__pydantic_fields_set__
        # keyed by the set's order, which follows its insertions: equal orders, equal sets
        shared = _FIELDS_SETS.setdefault(tuple(given), given)
        if shared is not given:
            object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self


_FIELDS_SETS: dict[tuple, set[str]] = {}


class Thread(_Strict):
    thread_id: Identifier = Field(alias="THREAD_ID")
    steps: list[Step] = Field(alias="STEPS", min_length=1)


class Level(_Strict):
    level_id: Identifier = Field(alias="LEVEL_ID")
    threads: list[Thread] = Field(alias="THREADS", min_length=1)


class Pipeline(_Strict):
    schema_ref: Optional[str] = Field(None, alias="$schema")
    name: Optional[WorkflowId] = Field(None, description="Name of the generated workflow / DAG (default: the file stem).")
    description: Optional[str] = None
    engine: Engine = Field(description="cloud_workflows or composer (the CLI may override it).")
    schedule: Optional[Schedule] = None
    definition: list[Level] = Field(min_length=1)


# Required keys per step TYPE: (keys of which one must be present, what the message says).
REQUIRED_BY_TYPE = {
    "async": (
        ("FUNCTION_ID_NAME", "COMPOSER_STEP"),
        "an async step needs FUNCTION_ID_NAME (or COMPOSER_STEP in composer definitions) naming the executor that starts the job",
    ),
    "sync": (("FUNCTION_NAME", "COMPOSER_STEP"), "a sync step needs FUNCTION_NAME naming the executor to call"),
    "workflows": (("workflows_name",), "a workflows step needs workflows_name naming the workflow to run"),
}

REQUIRED_PARAMS = {
    "pRegion": "the Google Cloud region of the functions",
    "pProjectID": "the project that hosts the functions",
    "pFunctionIntermediateName": "the name of the intermediate function",
    "pJobsDefinitionsBucket": "the bucket holding the jobs' parameter files",
}


class PlatformParams(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)
    pRegion: str = Field(pattern=r"^[a-z]+-[a-z]+\d+$")
    pProjectID: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    pFunctionIntermediateName: ExecutorName
    pJobsDefinitionsBucket: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")

    @model_validator(mode="after")
    def _base_url_is_safe(self) -> "PlatformParams":
        """pFunctionsBaseUrl: https, or plain http only to this machine (a local double);
        never an ID token sent in clear, never a call to an unknown scheme."""
        base = (self.model_extra or {}).get("pFunctionsBaseUrl")
        if base is None:
            return self
        if not isinstance(base, str):
            raise _fail(f"pFunctionsBaseUrl must be a URL (text), got {shown(base)}")
        if not re.fullmatch(r"https?://[^\s${}\"'\\]+", base):
            raise _fail(f"pFunctionsBaseUrl must be an http(s) URL without spaces, quotes or '${{', got {shown(base)}")
        if base.startswith("http://") and not is_loopback(base):
            raise _fail(
                f"pFunctionsBaseUrl must be https, or plain http to a loopback address (127.0.0.1, localhost, ::1) "
                f"such as a local double, got {shown(base)}"
            )
        return self

    def function_url(self, name: str) -> str:
        # pFunctionsBaseUrl (optional) points every function at another host, e.g. the local
        # stub executor server: {"pFunctionsBaseUrl": "http://127.0.0.1:8080"}.
        base = (self.extra.get("pFunctionsBaseUrl") or f"https://{self.pRegion}-{self.pProjectID}.cloudfunctions.net").rstrip("/")
        return f"{base}/{name}"

    @property
    def intermediate_url(self) -> str:
        return self.function_url(self.pFunctionIntermediateName)

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


