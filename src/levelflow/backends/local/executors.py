"""Calling the step executors: the protocol of docs/executor-protocol.md over one of two transports.

`ExecutorClient` speaks the protocol (request bodies, answers, transient retries with
back-off) and is the same for both transports:

- `HttpTransport`: real HTTP POSTs, with a Google ID token for https endpoints that are not
  loopback (Cloud Functions / Cloud Run check it), none for a local double.
- `SimulatedTransport`: no network; the AEF double (`levelflow.aef_double`) in process, both
  hops, on a scenario whose durations and latencies are shrunk by the time scale, so a
  simulated job behaves exactly as it would behind `levelflow executors serve`.

`workflows` steps start the child workflow through the Workflow Executions API and poll the
execution like an async job (`WorkflowExecutionsApi`): Google's, or the double's under a base
URL (`<base>/v1`), or the simulator's.
"""
from __future__ import annotations

import codecs
import datetime as dt
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable, Optional, Protocol
from urllib.parse import urlsplit

from ... import protocol
from ...protocol import is_loopback
from ...plan import Plan, PlanStep
from ...scenario import Scenario
from ...aef_double import DEFAULT_INTERMEDIATE, AefDouble
from ...loopback_http import AnswerTimeout, AnswerTooLarge, LoopbackClient

EXECUTIONS_API = "https://workflowexecutions.googleapis.com/v1"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
RUNNING_EXECUTION_STATES = ("ACTIVE", "QUEUED")
ANSWER_SHOWN = 300  # characters of an executor's answer quoted in an error
MAX_ANSWER_BYTES = 1024 * 1024  # an executor's answer (a job id or a state word) is never larger
MAX_JOB_ID_CHARS = 1024  # a job id is stored and sent again with every poll
TOKEN_LIFETIME_SECONDS = 50 * 60  # Google ID tokens last an hour; renew well before


class StepError(Exception):
    """A final failure of one attempt of a step (the message says why)."""


class ConnectionProblem(Exception):
    """The call did not reach the executor: transient, retried with back-off."""


class Transport(Protocol):
    def post(self, url: str, body: dict, timeout: float) -> tuple[int, str]: ...


def _shorten(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= ANSWER_SHOWN else text[:ANSWER_SHOWN - 3] + "..."


def needs_id_token(url: str) -> bool:
    """Google endpoints (https) want an ID token; loopback and plain http get none."""
    return urlsplit(url).scheme == "https" and not is_loopback(url)


class LoopbackHttp:
    """Plain-HTTP calls to this machine (the double, a local functions-framework) over
    `levelflow.loopback_http`, a kept-alive connection per engine thread and host: `requests`
    costs several times what the double takes to answer, for what a loopback call needs none of.
    The rules are those of `http_answer`: the whole call within its time-out, at most
    MAX_ANSWER_BYTES, no connection (refused, reset, closed without an answer) transient, no
    answer in time final."""

    def __init__(self):
        self._client = LoopbackClient()

    def send(self, method: str, url: str, payload: Optional[dict], timeout: float) -> tuple[int, str]:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers, data = {}, None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            answer = self._client.call(parts.hostname or "127.0.0.1", parts.port or 80, method, target, data, headers,
                                       timeout, deadline=time.monotonic() + timeout, max_bytes=MAX_ANSWER_BYTES)
        except AnswerTooLarge:
            raise StepError(f"{url} answered more than {MAX_ANSWER_BYTES // 1024:,} KiB; an executor's answer is "
                            "a job id or a state word") from None
        except AnswerTimeout as exc:  # a read waited too long, or the whole call took too long
            if exc.answering:
                raise StepError(f"{url} did not finish answering within {timeout:g} s (TIMEOUT_SECONDS, the whole call)") from None
            raise StepError(f"{url} did not answer within {timeout:g} s (TIMEOUT_SECONDS)") from None
        except (OSError, http.client.RemoteDisconnected) as exc:  # refused, reset, closed without an answer: transient
            raise ConnectionProblem(f"cannot reach {url}: {exc}") from None
        except http.client.HTTPException as exc:
            raise StepError(f"call to {url} failed: {exc!r}") from None
        return answer.status, answer.body.decode(_charset(answer.headers.get("content-type")), "replace")


def _charset(content_type: Optional[str]) -> str:
    """The answer's encoding as `requests` takes it: the charset it names, ISO-8859-1 for text
    without one, else UTF-8."""
    if not content_type:
        return "utf-8"
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("'\"")
            try:
                return codecs.lookup(charset).name
            except LookupError:
                return "utf-8"
    return "ISO-8859-1" if "text" in content_type else "utf-8"


def is_local_http(url: str) -> bool:
    """A plain-http URL on this machine: called over LoopbackHttp."""
    return urlsplit(url).scheme == "http" and is_loopback(url)


class HttpTransport:
    def __init__(self):
        self._local = threading.local()  # one requests.Session per engine thread
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_lock = threading.Lock()
        self._loopback = LoopbackHttp()
        self._kinds: dict[str, str] = {}  # URL -> "local" | "google" (ID token) | "other"

    def _kind(self, url: str) -> str:
        kind = self._kinds.get(url)
        if kind is None:
            kind = self._kinds[url] = "local" if is_local_http(url) else "google" if needs_id_token(url) else "other"
        return kind

    def _session(self, url: str):
        """One session per engine thread and kind of host; loopback skips proxy settings (and their cost)."""
        import requests

        sessions = self._local.__dict__.setdefault("sessions", {})
        loopback = is_loopback(url)
        if loopback not in sessions:
            sessions[loopback] = requests.Session()
            sessions[loopback].trust_env = not loopback
        return sessions[loopback]

    def _id_token(self, url: str) -> str:
        audience = url.split("?", 1)[0]
        with self._token_lock:
            token, expires = self._tokens.get(audience, ("", 0.0))
            if time.monotonic() < expires:
                return token
            import google.auth.exceptions
            import google.auth.transport.requests
            from google.oauth2 import id_token

            try:
                token = id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
            except google.auth.exceptions.GoogleAuthError as exc:
                raise StepError(f"could not get a Google ID token for {audience}: {exc} (use a service account: "
                                "GOOGLE_APPLICATION_CREDENTIALS, or a Compute Engine / Cloud Run identity)") from None
            self._tokens[audience] = (token, time.monotonic() + TOKEN_LIFETIME_SECONDS)
            return token

    def post(self, url: str, body: dict, timeout: float) -> tuple[int, str]:
        kind = self._kind(url)
        if kind == "local":
            return self._loopback.send("POST", url, body, timeout)
        headers = {"Content-Type": "application/json"}
        if kind == "google":
            headers["Authorization"] = f"Bearer {self._id_token(url)}"
        return http_answer(lambda: self._session(url).post(url, data=json.dumps(body), headers=headers, timeout=timeout,
                                                           stream=True), url, timeout)


def http_answer(send, url: str, timeout: float) -> tuple[int, str]:
    """Make one HTTP call (`send()`, streaming), translating its failures into the engine's
    errors. The whole call must end within `timeout` (not only each socket read: an answer
    trickled byte by byte is cut), and the answer may hold at most MAX_ANSWER_BYTES."""
    import requests

    deadline = time.monotonic() + timeout
    try:
        response = send()
        chunks, size = [], 0
        for chunk in _chunks(response):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                response.close()
                raise StepError(f"{url} answered more than {MAX_ANSWER_BYTES // 1024:,} KiB; an executor's answer is a "
                                "job id or a state word")
            if time.monotonic() > deadline:
                response.close()
                raise StepError(f"{url} did not finish answering within {timeout:g} s (TIMEOUT_SECONDS, the whole call)")
    except requests.ConnectionError as exc:  # includes connect time-outs: transient
        raise ConnectionProblem(f"cannot reach {url}: {exc}") from None
    except requests.Timeout:
        raise StepError(f"{url} did not answer within {timeout:g} s (TIMEOUT_SECONDS)") from None
    except requests.RequestException as exc:
        raise StepError(f"call to {url} failed: {exc}") from None
    return response.status_code, b"".join(chunks).decode(response.encoding or "utf-8", "replace")


def _chunks(response):
    """The answer's bytes as they arrive (urllib3 2's read1 returns whatever came, so a deadline
    is checked between even the smallest pieces; older urllib3: 64 KiB reads)."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:
        yield from response.iter_content(64 * 1024)
        return
    while True:
        chunk = read1(64 * 1024)
        if not chunk:
            return
        yield chunk


def scaled_scenario(scenario: Scenario, time_scale: float) -> Scenario:
    """Job durations and latencies on the engine's shrunk clock."""
    def scaled(behaviour):
        return behaviour.model_copy(update={"duration_s": behaviour.duration_s * time_scale,
                                            "latency_ms": int(behaviour.latency_ms * time_scale)})

    return scenario.model_copy(update={"default": scaled(scenario.default),
                                       "jobs": {name: scaled(b) for name, b in scenario.jobs.items()}})


_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class SimulatedTransport:
    """The AEF double in process: both hops and the Executions API, no sockets."""

    def __init__(self, scenario: Scenario, time_scale: float = 1.0, intermediate_name: str = DEFAULT_INTERMEDIATE):
        self.double = AefDouble(scaled_scenario(scenario, time_scale), intermediate_name=intermediate_name,
                                adopt_unknown_jobs=True)
        self._paths: dict[str, str] = {}  # URL -> its path: a run calls a handful of URLs

    def _path(self, url: str) -> str:
        path = self._paths.get(url)
        if path is None:
            path = self._paths[url] = urlsplit(url).path
        return path

    def _forward(self, url: str, body: dict) -> tuple[int, str, str]:
        status, text, _kind = self.double.handle("POST", self._path(url), body, self._forward, forwarded=True)
        return status, _PHRASES.get(status) or HTTPStatus(status).phrase, text

    def post(self, url: str, body: dict, timeout: float) -> tuple[int, str]:
        status, text, _kind = self.double.handle("POST", self._path(url), body, self._forward)
        return status, text

    def send(self, method: str, url: str, payload: Optional[dict], timeout: float) -> tuple[int, str]:
        """The Workflow Executions API, for workflows steps."""
        status, text, _kind = self.double.handle(method, urlsplit(url).path, payload, self._forward)
        return status, text


@dataclass(frozen=True)
class Endpoints:
    """Where each call goes: the platform's function URLs, or every one under a base URL."""

    plan: Plan
    base_url: Optional[str] = None  # --executor-url: replaces https://<region>-<project>.cloudfunctions.net
    _urls: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # name -> URL, made once

    def function(self, name: str) -> str:
        url = self._urls.get(name)
        if url is None:
            url = f"{self.base_url.rstrip('/')}/{name}" if self.base_url else self.plan.function_url(name)
            self._urls[name] = url
        return url

    @property
    def intermediate(self) -> str:
        return self.function(self.plan.platform().pFunctionIntermediateName)

    @property
    def base(self) -> Optional[str]:
        """The base URL every function is under, when not Google Cloud (a double, a staging host)."""
        base = self.base_url or self.plan.platform().extra.get("pFunctionsBaseUrl")
        return base.rstrip("/") if base else None


@dataclass(frozen=True)
class RunArguments:
    """The execution arguments of a run, with the defaults of the generated workflows."""

    workflow_name: str
    query_variables: dict
    workflow_properties: dict

    @classmethod
    def resolve(cls, plan: Plan, given: Optional[dict] = None) -> "RunArguments":
        """query_variables default to start_date = end_date = today (UTC), merged with those given."""
        given = given or {}
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        dates = given.get("query_variables") or {}
        if not isinstance(dates, dict):
            raise ValueError(f"query_variables must be a mapping, got {type(dates).__name__}")
        # A string holding JSON is accepted, as the intermediate accepts it (ValueError otherwise).
        properties = protocol.properties_object(given.get("workflow_properties"))
        return cls(given.get("workflow_name") or plan.name, {"start_date": today, "end_date": today, **dates}, dict(properties))

    def step_properties(self, step: PlanStep) -> dict:
        """STEP_PROPERTIES merged over the workflow properties (docs/executor-protocol.md)."""
        return {**self.workflow_properties, **step.step_properties}


class DefaultCredentials:
    """Application-default credentials (google.auth.default, cloud-platform scope), looked up
    once and shared by the engine's threads; `purpose` says in the error what they were for."""

    def __init__(self, purpose: str):
        self.purpose = purpose
        self._credentials = None
        self._lock = threading.Lock()

    def get(self):
        import google.auth
        import google.auth.exceptions

        with self._lock:
            if self._credentials is None:
                try:
                    self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                except google.auth.exceptions.GoogleAuthError as exc:
                    raise StepError(f"no Google credentials {self.purpose} ({exc}); run "
                                    "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS") from None
            return self._credentials


class WorkflowExecutionsApi:
    """Workflows steps against Google Cloud: start the workflow through the Workflow Executions
    REST API (as the generated workflows' connector does) and poll the execution."""

    def __init__(self, root: str = EXECUTIONS_API, sender: Optional[SimulatedTransport] = None):
        self.root = root.rstrip("/")
        self.sender = sender  # the simulator answers in process
        self._loopback = LoopbackHttp() if is_local_http(self.root) else None  # the double under a base URL
        self._local = threading.local()
        self._credentials = DefaultCredentials("to run workflows")

    def _session(self):
        import requests

        if hasattr(self._local, "session"):
            return self._local.session
        if is_loopback(self.root):
            session = requests.Session()
        else:
            from google.auth.transport.requests import AuthorizedSession

            session = AuthorizedSession(self._credentials.get())
        self._local.session = session
        return session

    def send(self, method: str, url: str, payload: Optional[dict], timeout: float) -> tuple[int, str]:
        if self.sender is not None:
            return self.sender.send(method, url, payload, timeout)
        if self._loopback is not None:
            return self._loopback.send(method, url, payload, timeout)
        return http_answer(lambda: self._session().request(method, url, json=payload, timeout=timeout, stream=True), url, timeout)


BACKOFF_DELAYS = tuple(protocol.backoff_delays())


def retry_transient(what: str, send: Callable[[], tuple[int, str]], sleep: Callable[[float], None],
                    on_retry: Callable[[str], None] = lambda problem: None) -> tuple[int, str]:
    """Send, retrying transient faults (429/502/503/504, no connection) after each of
    BACKOFF_DELAYS (`sleep` scales and may interrupt them); each retry is told to `on_retry`.
    The answer that is not transient, or StepError once the retries are spent."""
    for retry in range(len(BACKOFF_DELAYS) + 1):
        try:
            status, text = send()
            if status not in protocol.TRANSIENT_HTTP_STATUS:
                return status, text
            problem = f"HTTP {status} {_shorten(text)}"
        except ConnectionProblem as exc:
            problem = str(exc)
        if retry == len(BACKOFF_DELAYS):
            raise StepError(f"{what} still failing after {retry} retries: {problem}")
        on_retry(f"{what}: {problem}")
        sleep(BACKOFF_DELAYS[retry])
    raise AssertionError("unreachable")


@dataclass
class ExecutorClient:
    """The protocol, one step's call at a time. What a step sends never changes during a run
    (only the job id of a poll), so each body is made once per step and kept; the dicts sent
    are never changed afterwards (a transport or the double may keep them, as its call log does)."""

    transport: Transport
    endpoints: Endpoints
    execution_id: str
    sleep: Callable[[float], None]  # interruptible, on the engine's (scaled) clock
    arguments: RunArguments
    time_scale: float = 1.0
    executions: WorkflowExecutionsApi = field(default_factory=WorkflowExecutionsApi)
    _bodies: dict = field(default_factory=dict, init=False, repr=False)  # (call type, JOB_ID) -> (url, body)
    # called before each retry of a transient fault: (the step, what the call met)
    on_retry: Callable[[PlanStep, str], None] = field(default=lambda step, problem: None, repr=False)

    def polls(self, step: PlanStep) -> bool:
        """Async steps start a job and poll it; so do workflows steps (an execution)."""
        return step.type in ("async", "workflows")

    def _request(self, call_type: str, step: PlanStep) -> tuple[str, dict]:
        """The intermediate's URL and the request body of a get_id (or, without its async_job_id, a get_status)."""
        key = (call_type, step.job_id)
        request = self._bodies.get(key)
        if request is None:
            executor = step.executor if call_type == protocol.GET_ID else step.status_executor
            request = self._bodies[key] = (self.endpoints.intermediate, protocol.request_body(
                call_type, workflow_name=self.arguments.workflow_name, execution_id=self.execution_id,
                job_name=step.job_name, function_url_to_call=self.endpoints.function(_named(executor)),
                query_variables=self.arguments.query_variables, workflow_properties=self.arguments.workflow_properties,
                step_properties=self.arguments.step_properties(step)))
        return request

    def _retrying(self, what: str, send: Callable[[], tuple[int, str]], step: PlanStep) -> tuple[int, str]:
        return retry_transient(what, send, lambda seconds: self.sleep(seconds * self.time_scale),
                               lambda problem: self.on_retry(step, problem))

    def _call(self, step: PlanStep, url: str, body: dict) -> tuple[int, str]:
        return self._retrying(body["call_type"], lambda: self.transport.post(url, body, step.call_timeout_seconds), step)

    @staticmethod
    def _failure(call_type: str, status: int, text: str) -> StepError:
        if status == 500 and protocol.is_failure_body(text):
            return StepError(_shorten(text))
        return StepError(f"{call_type} answered HTTP {status} {_shorten(text)!r}")

    @staticmethod
    def _text(text: str) -> str:
        """Answers are plain text; accept a JSON-encoded string too."""
        text = text.strip()
        if text.startswith('"'):
            try:
                decoded = json.loads(text)
                return decoded if isinstance(decoded, str) else text
            except json.JSONDecodeError:
                return text
        return text

    def start(self, step: PlanStep) -> str:
        """Start a polled step's job; answers its id (for a workflow, the execution's name)."""
        if step.type == "workflows":
            return self._start_execution(step)
        url, body = self._request(protocol.GET_ID, step)
        status, text = self._call(step, url, body)
        answer = self._text(text)
        if status == 200 and protocol.is_job_id(answer) and len(answer) > MAX_JOB_ID_CHARS:
            raise StepError(f"get_id answered a job id of {len(answer):,} characters, more than the {MAX_JOB_ID_CHARS:,} "
                            f"allowed: {_shorten(answer)}")
        if status == 200 and protocol.is_job_id(answer):
            return answer
        if status == 200:
            raise StepError(f"get_id answered {_shorten(answer)!r}, not a job id (aef_... or aef-...)")
        raise self._failure(protocol.GET_ID, status, text)

    def is_done(self, step: PlanStep, async_job_id: str) -> bool:
        if step.type == "workflows":
            return self._execution_done(step, async_job_id)
        url, base = self._request(protocol.GET_STATUS, step)
        body = {**base, "async_job_id": async_job_id}  # last, as protocol.request_body puts it
        status, text = self._call(step, url, body)
        answer = self._text(text)
        if status == 200 and answer in (protocol.RUNNING, protocol.SUCCESS):
            return answer == protocol.SUCCESS
        if status == 200:
            raise StepError(f"get_status answered {_shorten(answer)!r}, expected 'running' or 'success'")
        raise self._failure(protocol.GET_STATUS, status, text)

    def run_sync(self, step: PlanStep) -> None:
        """A sync step: one call of FUNCTION_NAME with the executor's request body; success only
        on a 2xx answer that is a success state word."""
        function = _named(step.executor)
        key = ("sync", step.job_id)
        if key not in self._bodies:
            self._bodies[key] = (self.endpoints.function(function), protocol.executor_body(
                workflow_name=self.arguments.workflow_name, job_name=step.job_name,
                query_variables=self.arguments.query_variables, properties=self.arguments.step_properties(step)))
        url, body = self._bodies[key]
        status, text = self._retrying("sync call", lambda: self.transport.post(url, body, step.call_timeout_seconds), step)
        problem = protocol.sync_failure(function, status, text, ANSWER_SHOWN)
        if problem:
            raise StepError(problem)

    def _start_execution(self, step: PlanStep) -> str:
        params = self.endpoints.plan.platform()
        workflow = _named(step.workflow_id)
        url = (f"{self.executions.root}/projects/{params.pProjectID}/locations/{params.pRegion}"
               f"/workflows/{workflow}/executions")
        argument = {"workflow_name": step.workflow_id, "query_variables": self.arguments.query_variables,
                    "workflow_properties": self.arguments.step_properties(step)}
        payload = {"argument": json.dumps(argument)}
        status, text = self._retrying("starting workflow " + workflow,
                                      lambda: self.executions.send("POST", url, payload, step.call_timeout_seconds), step)
        name = _json_field(text, "name") if status == 200 else None
        if not name:
            raise StepError(f"could not start workflow {step.workflow_id}: HTTP {status} {_shorten(text)}")
        return name

    def cancel(self, step: PlanStep, job: str) -> str:
        """Cancel a timed-out child workflow execution (executions.cancel); what it says for the error.
        Executor jobs have no cancel in the AEF protocol: they are left to their platform."""
        if step.type != "workflows":
            return ""
        url = f"{self.executions.root}/{job}:cancel"
        try:
            status, text = self._retrying("cancelling execution " + job,
                                          lambda: self.executions.send("POST", url, {}, step.call_timeout_seconds), step)
        except StepError as exc:
            return f"; cancelling it failed: {exc}"
        return "; its execution was cancelled" if status == 200 else f"; cancelling it answered HTTP {status} {_shorten(text)}"

    def _execution_done(self, step: PlanStep, name: str) -> bool:
        url = f"{self.executions.root}/{name}"
        status, text = self._retrying("reading execution " + name,
                                      lambda: self.executions.send("GET", url, None, step.call_timeout_seconds), step)
        state = _json_field(text, "state") if status == 200 else None
        if state == "SUCCEEDED":
            return True
        if state in RUNNING_EXECUTION_STATES:
            return False
        if state:
            error = _json_field(text, "error") or {}
            raise StepError(f"workflow execution {name} ended {state}: {_shorten(error.get('payload', ''))}")
        raise StepError(f"could not read workflow execution {name}: HTTP {status} {_shorten(text)}")


def _named(name: Optional[str]) -> str:
    """An executor or workflow name the plan holds for this kind of step (validation requires it)."""
    if name is None:
        raise StepError("the step names no executor or workflow")
    return name


def _json_field(text: str, key: str):
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data.get(key) if isinstance(data, dict) else None
