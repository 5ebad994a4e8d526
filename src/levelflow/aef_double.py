"""A faithful double of the deployed AEF functions, and of the Workflow Executions API.

Written from the public code of the AEF orchestration framework (GitHub
`oscarpulido55/aef-orchestration-framework` at c158804: `functions/orchestration-helpers/
intermediate/main.py` and `functions/data-processing-engines/<executor>/main.py`) and from
Google's REST reference of `projects.locations.workflows.executions` (create, get, cancel).
docs/executor-protocol.md describes both hops; in short:

- **Intermediate** (`Intermediate`): reads `call_type` (`get_id` | `get_status`; anything
  else, or none, is HTTP 500), merges `step_properties` over `workflow_properties` (either may
  be a JSON string), wraps both dates in single quotes, POSTs the executor body to
  `function_url_to_call` (plus `job_id` when polling) and maps the plain-text answer: a job id
  (`aef_`/`aef-`, on `get_id` only) as is, DONE/SUCCESS/SUCCEEDED/JOB_STATE_DONE -> `success`,
  PENDING/RUNNING/JOB_STATE_QUEUED/RUNNING/PENDING -> `running`, anything else a failure.
  Every failure, an executor's HTTP error, and any answer containing "error" or "exception"
  (any case) is HTTP 500 `Exception : <repr of the exception>`.
- **Executors** (`Executors`): no `call_type`; no `job_id` starts a job (answer: its id), a
  `job_id` asks for its state (answer: the platform's state word, per family below); errors
  are HTTP 200 JSON `{"error": <exception class>, "message": <repr>}`, as Flask renders a
  returned dict. Three families read their job file from `jobs_definitions_bucket`, which they
  take from `workflow_properties` only; a missing file makes them fail with the AttributeError
  the real code raises.
- **Executions API** (`Executions`): create answers the execution (`state: ACTIVE`), get its
  state (ACTIVE, then SUCCEEDED with `result`, or FAILED with `error.payload`), cancel sets an
  active execution CANCELLED (one that has ended: 400 FAILED_PRECONDITION); an unknown
  execution is 404 NOT_FOUND.

Left out, as not part of the contract: the intermediate's BigQuery control table and error
reporting, ID tokens, the executors' calls to Google. Where the real code has a defect that
would make the double useless, the double says so: Dataproc batch ids are `aef-<unix seconds>`
in the real executor (two batches started in one second collide); the double appends a
counter. Without a jobs directory every job file is taken as present.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Optional

from . import protocol
from .scenario import JobBehaviour, Scenario

JSON = "application/json"
TEXT = "text/plain"
DEFAULT_INTERMEDIATE = "orch-framework-intermediate"  # the framework's Terraform name
FORWARDED_HEADER = "X-Levelflow-Forwarded"  # marks the double's own intermediate -> executor hop

Answer = tuple[int, str, str]  # HTTP status, body text, content type
# Forwarding one call: (url, body) -> (status, reason, text); raises on a connection failure.
Forward = Callable[[str, dict], tuple[int, str, str]]


# ---------------------------------------------------------------------------------------------
# Executor families: how each AEF executor names its jobs and words their states


@dataclass(frozen=True)
class Family:
    name: str
    running: tuple[str, ...]  # words answered while the job runs, first to last
    success: str
    failure: str
    reads_job_file: bool
    job_id: Callable[[int, dict, dict], str]  # (counter, executor body, job file) -> new job id
    message_of_repr: bool = False  # dataflow and dataform put repr("Exception: " + repr(exc)) in "message"
    failure_raises: bool = False  # bq: a job that ended with an error result raises (an error dict)


def _dataproc_id(n: int, body: dict, params: dict) -> str:
    return f"aef-{int(time.time())}-{n}"


def _dataflow_id(n: int, body: dict, params: dict) -> str:
    return f"aef_{time.strftime('%Y-%m-%d_%H_%M_%S', time.gmtime())}-{1000000000 + n}"


def _dataform_id(n: int, body: dict, params: dict) -> str:
    where = (f"projects/{params.get('dataform_project_id') or 'project'}/locations/{params.get('dataform_location') or 'region'}"
             f"/repositories/{params.get('repository_name') or 'repository'}")
    return f"aef-{where}/workflowInvocations/{1700000000 + n}-{n:04x}"


def _bq_id(n: int, body: dict, params: dict) -> str:
    # transform_string("definitions/<workflow_name>/<JOB_NAME>.sqlx"), then a UUID
    path = f"definitions/{body.get('workflow_name')}/{body.get('job_name')}.sqlx"
    slug = re.sub(r"\s+", "_", re.sub(r"[^\w\s-]", " ", path)).strip("_-")
    return f"aef_{slug}_{n:08x}-0000-4000-8000-{n:012x}"


FAMILIES = {
    "dataproc-serverless-job-executor": Family("dataproc", ("PENDING", "RUNNING"), "SUCCEEDED", "FAILED", True, _dataproc_id),
    "dataflow-flextemplate-job-executor": Family("dataflow", ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING"), "JOB_STATE_DONE",
                                                 "JOB_STATE_FAILED", True, _dataflow_id, message_of_repr=True),
    "dataform-tag-executor": Family("dataform", ("RUNNING",), "SUCCEEDED", "FAILED", True, _dataform_id, message_of_repr=True),
    "bq-saved-query-executor": Family("bigquery", ("PENDING", "RUNNING"), "DONE", "DONE", False, _bq_id, failure_raises=True),
}
# Any other function: a job id on start and Dataproc-like words, or (sync) the final word at once.
GENERIC = Family("generic", ("RUNNING",), "SUCCEEDED", "FAILED", False, lambda n, body, params: f"aef-job-{n}")
BQ_PROPERTIES = ("dataform_location", "dataform_project_id", "repository_name")  # read in this order


def _attribute_error(value) -> AttributeError:
    return AttributeError(f"'{type(value).__name__}' object has no attribute 'get'")


@dataclass(slots=True)  # one object per job instead of two (the dict): fewer for the collector to visit
class _Job:
    job_name: str
    family: Family
    started: float
    polls: int = 0


@dataclass(slots=True)
class _Execution:
    name: str
    workflow: str
    argument: object
    started: float
    polls: int = 0
    state: str = "ACTIVE"


# ---------------------------------------------------------------------------------------------
# The call log


class CallLog:
    """Every call the double answered, in order: what `GET /_calls` returns and the tests read,
    a sequence of records {seq, time, hop, entry, function, call_type, job_name, async_job_id,
    status, answer, body}. A call costs one tuple here; its record is made when it is read, from
    the body it was sent (bodies are never changed once sent: the engine's are kept per step,
    the double's own are new for every forward)."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: list[tuple] = []

    def add(self, when: float, hop: str, entry: bool, function: str, status: int, text: str, body) -> int:
        """Log one call (the caller holds the double's lock); its seq."""
        self._calls.append((when, hop, entry, function, status, text, body))
        return len(self._calls)

    @staticmethod
    def record(seq: int, call: tuple) -> dict:
        when, hop, entry, function, status, text, body = call
        data = body if isinstance(body, dict) else {}
        return {"seq": seq, "time": when, "hop": hop, "entry": entry, "function": function,
                "call_type": data.get("call_type") if hop == "intermediate" else None,
                "job_name": str(data.get("job_name", "")) if hop != "executions" else function,
                "async_job_id": data.get("async_job_id") if hop == "intermediate" else data.get("job_id"),
                "status": status, "answer": text, "body": body}

    def records(self) -> list[dict]:
        return [self.record(seq, call) for seq, call in enumerate(self._calls[:], 1)]

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self):
        return iter(self.records())

    def __getitem__(self, index):
        calls = self._calls[:]
        if isinstance(index, slice):
            return [self.record(seq, calls[seq - 1]) for seq in range(len(calls) + 1)[1:][index]]
        seq = index + 1 if index >= 0 else len(calls) + index + 1
        if not 1 <= seq <= len(calls):
            raise IndexError("call log index out of range")
        return self.record(seq, calls[seq - 1])

    def clear(self) -> None:
        self._calls.clear()

    def __repr__(self) -> str:
        return f"CallLog({len(self._calls)} calls)"


# ---------------------------------------------------------------------------------------------
# The double


@dataclass
class AefDouble:
    """Both hops and the Executions API, answering from a scenario; every call is logged."""

    scenario: Scenario = field(default_factory=Scenario)
    role: str = "both"
    intermediate_name: str = DEFAULT_INTERMEDIATE
    jobs_dir: Optional[Path] = None  # plays gs://<jobs_definitions_bucket>/ (any bucket)
    log_file: Optional[str] = None
    adopt_unknown_jobs: bool = False  # simulator: a job id from an earlier process goes on from now
    sleep: Callable[[float], None] = time.sleep
    calls: CallLog = field(default_factory=CallLog)
    jobs: dict = field(default_factory=dict)  # job id -> _Job
    executions: dict = field(default_factory=dict)  # execution name -> _Execution
    calls_per_job: dict = field(default_factory=dict)  # job name (or workflow id) -> calls at the entry hop
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._answer_intermediate = Intermediate(self).answer  # made once: a call allocates no closures
        self._answer_executor = Executors(self).answer

    # -- routing ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body, forward: Forward, forwarded: bool = False) -> Answer:
        """One call: `path` picks the hop (the intermediate's name, an executor's, or /v1/...)."""
        path = path.split("?", 1)[0]
        if path.startswith("/v1/") and self.role != "intermediate":
            workflow = path.split("/")[7] if path.count("/") >= 7 else ""
            return self._entry(workflow, body, "executions", workflow, self._executions, (method, path, body))
        if method != "POST":
            return 405, "Method Not Allowed", TEXT
        function = path.rstrip("/").rsplit("/", 1)[-1]
        job = str(body.get("job_name", "")) if isinstance(body, dict) else ""
        if function == self.intermediate_name and self.role != "executors":
            return self._entry(function, body, "intermediate", job, self._answer_intermediate, (body, forward))
        if self.role == "intermediate":
            return 404, f"no function {function!r} here (this double plays only the intermediate {self.intermediate_name!r})", TEXT
        if forwarded:
            return self._logged("executor", function, body, self._answer_executor, (function, body, False), entry=False)
        return self._entry(function, body, "executor", job, self._answer_executor, (function, body, True))

    def _entry(self, function: str, body, hop: str, key: str, work: Callable[..., Answer], args: tuple) -> Answer:
        """A call from outside the double: scripted latency and transient faults apply here."""
        behaviour = self.scenario.behaviour(key)
        if behaviour.latency_ms:
            self.sleep(behaviour.latency_ms / 1000)
        with self.lock:
            number = self.calls_per_job[key] = self.calls_per_job.get(key, 0) + 1
        if behaviour.transient and number in behaviour.transient:
            return self._logged(hop, function, body, _transient_fault, ())
        return self._logged(hop, function, body, work, args)

    def _logged(self, hop: str, function: str, body, work: Callable[..., Answer], args: tuple, entry: bool = True) -> Answer:
        status, text, kind = work(*args)
        with self.lock:
            call = (time.time(), hop, entry, function, status, text, body)
            seq = self.calls.add(*call)
            if self.log_file:
                record = CallLog.record(seq, call)
                with open(self.log_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        return status, text, kind

    def behaviour(self, key: str) -> JobBehaviour:
        return self.scenario.behaviour(key)

    def new_number(self) -> int:
        with self.lock:
            return next(self.counter)

    def job_file(self, function: str, job_name) -> Optional[dict]:
        """The executor's extract_params: the parsed file, or None (missing, not JSON). The jobs
        directory plays whichever bucket the workflow properties name."""
        if self.jobs_dir is None:
            return {}
        path = self.jobs_dir / function / f"{job_name}.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None

    # -- the Workflow Executions API --------------------------------------------------------

    def _executions(self, method: str, path: str, body) -> Answer:
        name = path[len("/v1/"):]
        if method == "POST" and name.endswith("/executions"):
            return self._create_execution(name, body)
        cancel = name.endswith(":cancel")
        name = name.removesuffix(":cancel")
        with self.lock:
            execution = self.executions.get(name)
        if execution is None:
            return _api_error(404, f"Resource '{name}' was not found", "NOT_FOUND")
        if method == "POST" and cancel:
            if execution.state != "ACTIVE":  # the API refuses to cancel an execution that has ended
                return _api_error(400, f"execution {name} is {execution.state}, not active", "FAILED_PRECONDITION")
            execution.state = "CANCELLED"
            return 200, json.dumps(self._execution_view(execution)), JSON
        if method != "GET":
            return _api_error(405, "method not allowed", "INVALID_ARGUMENT")
        behaviour = self.behaviour(execution.workflow)
        if execution.state == "ACTIVE":
            execution.polls += 1
            finished = behaviour.outcome != "never" and execution.polls > behaviour.polls and \
                time.monotonic() - execution.started >= behaviour.duration_s
            if finished and behaviour.fail_on == "status" and behaviour.http_status:
                return _api_error(behaviour.http_status, "scripted error", HTTPStatus(behaviour.http_status).name)
            if finished:
                execution.state = behaviour.state or ("FAILED" if behaviour.outcome in ("fail", "error") else "SUCCEEDED")
        return 200, json.dumps(self._execution_view(execution)), JSON

    def _create_execution(self, parent: str, body) -> Answer:
        parts = parent.split("/")
        if len(parts) != 7 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "workflows":
            return _api_error(404, f"Resource '{parent}' was not found", "NOT_FOUND")
        argument = body.get("argument") if isinstance(body, dict) else None
        if argument is not None and not isinstance(argument, str):
            return _api_error(400, "Invalid value at 'execution.argument' (TYPE_STRING)", "INVALID_ARGUMENT")
        behaviour = self.behaviour(parts[5])
        if behaviour.fail_on == "start" and (behaviour.http_status or behaviour.outcome in ("fail", "error")):
            code = behaviour.http_status or 400
            return _api_error(code, "scripted failure to start", HTTPStatus(code).name)
        try:
            decoded = json.loads(argument) if argument else None
        except json.JSONDecodeError:
            return _api_error(400, "execution argument is not valid JSON", "INVALID_ARGUMENT")
        execution = _Execution(f"{parent}/{self.new_number():08x}-0000-4000-8000-000000000000", parts[5], decoded, time.monotonic())
        with self.lock:
            self.executions[execution.name] = execution
        return 200, json.dumps(self._execution_view(execution)), JSON

    @staticmethod
    def _execution_view(execution: _Execution) -> dict:
        view: dict[str, object] = {"name": execution.name, "state": execution.state, "argument": json.dumps(execution.argument),
                "workflowRevisionId": "000001-a01"}
        if execution.state == "SUCCEEDED":
            view["result"] = json.dumps({"status": "succeeded", "workflow": execution.workflow})
        elif execution.state == "FAILED":
            view["error"] = {"payload": json.dumps({"message": f"execution of {execution.workflow} failed (scripted)"}),
                             "context": "RuntimeError"}
        return view


def _transient_fault() -> Answer:
    return 503, "Service Unavailable (scripted transient fault)", TEXT


def _api_error(code: int, message: str, status: str) -> Answer:
    """A Google API error body (google.rpc.Status in JSON)."""
    return code, json.dumps({"error": {"code": code, "message": message, "status": status}}), JSON


# ---------------------------------------------------------------------------------------------
# The intermediate


class Intermediate:
    def __init__(self, double: AefDouble):
        self.double = double

    def answer(self, body, forward: Forward) -> Answer:
        try:
            if not (isinstance(body, dict) and body and "call_type" in body):
                # The real code builds Exception("No call type!") without raising it.
                raise UnboundLocalError("cannot access local variable 'call_type' where it is not associated with a value")
            call_type = body["call_type"]
            if call_type == protocol.GET_ID:
                return 200, _evaluate(self._call(body, None, forward)), TEXT
            if call_type == protocol.GET_STATUS:
                if "async_job_id" not in body:
                    raise UnboundLocalError("cannot access local variable 'status' where it is not associated with a value")
                return 200, _evaluate(self._call(body, body["async_job_id"], forward)), TEXT
            raise Exception("Invalid call type!")
        except Exception as exc:  # noqa: BLE001 - the intermediate catches everything
            return 500, "Exception : " + repr(exc), TEXT

    @staticmethod
    def _call(body: dict, job_id, forward: Forward) -> str:
        workflow_name, job_name = body["workflow_name"], body["job_name"]
        properties = _join(body.get("workflow_properties"), body.get("step_properties"))
        # KeyError / TypeError on missing or non-text dates, as the real code's concatenation raises
        params = protocol.executor_body(workflow_name=workflow_name, job_name=job_name, query_variables=body["query_variables"],
                                        properties=properties, job_id=job_id)
        url = body["function_url_to_call"]
        function = str(url).split("/")[-1]
        status, reason, text = forward(url, params)
        if status >= 400:  # urllib raises HTTPError
            raise Exception(f"Unexpected error in custom function: {function}:<HTTPError {status}: {reason!r}>")
        if job_id is None and protocol.is_job_id(text):
            return text
        if text in protocol.SUCCESS_WORDS:
            return protocol.SUCCESS
        if text in protocol.RUNNING_WORDS:
            return protocol.RUNNING
        return f"Exception calling target function {function}:{text}"


def _evaluate(message: str) -> str:
    if protocol.has_failing_word(message):
        raise Exception(message)
    return message


def _join(workflow_properties, step_properties) -> dict:
    """join_properties: falsy values are {}, strings are parsed, step keys win."""
    merged: dict = {}
    for value in (workflow_properties, step_properties):
        if value:
            value = json.loads(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise TypeError(f"'{type(value).__name__}' object is not a mapping")
            merged.update(value)
    return merged


# ---------------------------------------------------------------------------------------------
# The executors


class Executors:
    def __init__(self, double: AefDouble):
        self.double = double

    def answer(self, function: str, body, direct: bool) -> Answer:
        family = FAMILIES.get(function, GENERIC)
        sync = family is GENERIC and self.double.scenario.functions.get(function, "sync" if direct else "async") == "sync"
        try:
            if not isinstance(body, dict):
                raise _attribute_error(body)
            behaviour = self.double.behaviour(str(body.get("job_name", "")))
            if sync:
                return self._sync(behaviour)
            params = self._job_file(function, family, body)
            if body.get("job_id"):
                return self._status(family, str(body["job_id"]), str(body.get("job_name", "")), behaviour)
            return self._start(family, body, params, behaviour)
        except Exception as exc:  # noqa: BLE001 - every executor answers its errors as a dict
            return _error_answer(family, exc)

    def _job_file(self, function: str, family: Family, body: dict) -> dict:
        properties = body.get("workflow_properties", {})
        if family.name == "bigquery":
            if not isinstance(properties, dict):
                raise TypeError("string indices must be integers")
            for key in BQ_PROPERTIES:
                if key not in properties:
                    raise KeyError(key)
            return dict(properties)
        if not isinstance(properties, dict):
            raise _attribute_error(properties)
        bucket = properties.get("jobs_definitions_bucket")
        if not family.reads_job_file:
            return {}
        if not bucket:
            if family.name == "dataflow":  # gs://None/... is not found
                raise _attribute_error(None)
            if family.name == "dataform":  # repository_name None + "_secret"
                raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'str'")
            raise Exception("Dataproc API CREATE request failed. Status code:400")
        params = self.double.job_file(function, body.get("job_name"))
        if params is None:
            raise _attribute_error(None)
        return params

    def _start(self, family: Family, body: dict, params: dict, behaviour: JobBehaviour) -> Answer:
        if behaviour.fail_on == "start":
            if behaviour.http_status:
                return behaviour.http_status, HTTPStatus(behaviour.http_status).phrase, TEXT
            if behaviour.outcome in ("fail", "error"):
                raise BadRequest(f"400 could not start job {body.get('job_name')} (scripted)")
        job_id = family.job_id(self.double.new_number(), body, params)
        with self.double.lock:
            self.double.jobs[job_id] = _Job(str(body.get("job_name", "")), family, time.monotonic())
        return 200, job_id, TEXT

    def _status(self, family: Family, job_id: str, job_name: str, behaviour: JobBehaviour) -> Answer:
        with self.double.lock:
            job = self.double.jobs.get(job_id)
            if job is None and self.double.adopt_unknown_jobs:
                job = self.double.jobs[job_id] = _Job(job_name, family, time.monotonic())
        if job is None:
            raise NotFound(f"404 job {job_id} not found")
        job.polls += 1
        running = family.running[min(job.polls, len(family.running)) - 1]
        if behaviour.outcome == "never":
            return 200, running, TEXT
        if job.polls <= behaviour.polls or time.monotonic() - job.started < behaviour.duration_s:
            return 200, running, TEXT
        if behaviour.fail_on == "status" and behaviour.http_status:
            return behaviour.http_status, HTTPStatus(behaviour.http_status).phrase, TEXT
        if behaviour.outcome == "error" or (behaviour.outcome == "fail" and family.failure_raises):
            raise BadRequest(f"400 job {job_id} failed (scripted)")
        if behaviour.state:
            return 200, behaviour.state, TEXT
        return 200, family.failure if behaviour.outcome == "fail" else family.success, TEXT

    def _sync(self, behaviour: JobBehaviour) -> Answer:
        """A function that does its work within the call and answers its final state word."""
        if behaviour.duration_s:
            self.double.sleep(behaviour.duration_s)
        if behaviour.http_status:
            return behaviour.http_status, HTTPStatus(behaviour.http_status).phrase, TEXT
        if behaviour.outcome == "error":
            raise BadRequest("400 sync job failed (scripted)")
        if behaviour.state:
            return 200, behaviour.state, TEXT
        word = {"fail": GENERIC.failure, "never": GENERIC.running[0]}.get(behaviour.outcome, GENERIC.success)
        return 200, word, TEXT


class BadRequest(Exception):
    """A Google API error scripted by the scenario (named as google.api_core names it)."""


class NotFound(Exception):
    """A job id the platform does not know."""


def _error_answer(family: Family, exc: Exception) -> Answer:
    """`return {"error": ..., "message": ...}` from a functions-framework handler: Flask's
    JSON (sorted keys, compact), HTTP 200."""
    message = repr("Exception: " + repr(exc)) if family.message_of_repr else repr(exc)
    text = json.dumps({"error": type(exc).__name__, "message": message}, sort_keys=True, separators=(",", ":")) + "\n"
    return 200, text, JSON
