"""A fake of the Google REST APIs that levelflow's native step mode calls, served over real HTTP
on 127.0.0.1, checking every request against Google's discovery documents (google_discovery).

    with FakeGoogle() as fake:
        fake.objects["bucket/jobs/a.json"] = b"{...}"
        fake.scenario("aef-", polls=3, final="failure")
        requests.get(fake.url_for("https://storage.googleapis.com/storage/v1/b/bucket/o/jobs%2Fa.json?alt=media"), ...)
        assert not fake.problems

Routing: https://<host>/<path> is served at <fake.base>/<host>/<path> (`fake.url_for`). An unknown
method answers 404 NOT_FOUND; a request without `Authorization: Bearer ...` 401 UNAUTHENTICATED
(unless `require_auth=False`); one that breaks the discovery document 400 INVALID_ARGUMENT, and its
problems, like those of the first two, land in `fake.problems` (a test asserts it empty). Errors have Google's JSON error shape (AIP-193, "HTTP/1.1+JSON
representation"): {"error": {"code", "message", "status"}}; BigQuery and Cloud Storage add their
`errors: [{reason, message, domain}]` list. Every request is kept in `fake.requests` (Record).

Behaviour, from Google's REST reference pages (cloud.google.com/.../reference/rest) and the
field descriptions of the discovery documents:
- Dataproc (dataproc-serverless/docs/reference/rest/v1/projects.locations.batches/create, /get;
  projects.regions.operations/cancel, /get): batches.create answers an Operation
  `projects/<p>/regions/<r>/operations/<id>` with BatchOperationMetadata naming the batch; a
  batchId must be 4-63 characters of [a-z0-9-] (the batchId description) and one already used
  answers 409 ALREADY_EXISTS; the Batch's `state` goes PENDING -> RUNNING -> SUCCEEDED, or FAILED
  with `stateMessage`. The operation is done when the batch ends (its `response` is the Batch,
  or `error`). operations.cancel: "On successful cancellation ... an Operation.error value with a
  google.rpc.Status.code of 1": the batch goes CANCELLING, then CANCELLED.
- Dataflow (dataflow/docs/reference/rest/v1b3/projects.locations.flexTemplates/launch,
  projects.locations.jobs/get, /update): launch answers {job: {id, projectId, name, location,
  currentState...}}; a jobName must match `[a-z]([-a-z0-9]{0,1022}[a-z0-9])?` and "If a caller
  attempts to create a job with the same name as an active job that already exists, the attempt
  returns the existing job" (the Job.name description). currentState JOB_STATE_PENDING ->
  JOB_STATE_RUNNING -> JOB_STATE_DONE or JOB_STATE_FAILED. jobs.update with requestedState
  JOB_STATE_CANCELLED (the requestedState description): JOB_STATE_CANCELLING, then
  JOB_STATE_CANCELLED.
- Dataform v1 (dataform/reference/rest/v1/projects.locations.repositories.compilationResults/create,
  .workflowInvocations/create, /get, /cancel, projects.locations.repositories/readFile,
  .workspaces/readFile): a CompilationResult needs one source (gitCommitish, workspace or
  releaseConfig: a union field); its codeCompilationConfig (vars) is kept in
  `fake.compilations`. An invocation of an unknown compilation result answers 404. The
  WorkflowInvocation starts RUNNING and ends SUCCEEDED or FAILED; cancel: CANCELING, then
  CANCELLED. readFile answers {contents: <base64>} of `fake.dataform_files[<repository or
  workspace name>][<path>]`, 404 if absent.
- BigQuery v2 (bigquery/docs/reference/rest/v2/jobs/insert, /get, /cancel): insert answers the
  Job with jobReference {projectId, jobId, location} (location "US" when none is given) and
  status.state PENDING; a jobId must be letters, digits, _ or - (up to 1,024), and one already
  used answers 409 ALREADY_EXISTS. jobs.get: PENDING -> RUNNING -> DONE; a failed job is DONE with
  status.errorResult (and status.errors). The `location` parameter "must" be given for a job
  outside the US and EU multi-regions, so without it (or with another) such a job is 404.
  jobs.cancel answers {kind, job} at once; the job then ends DONE with errorResult reason
  "stopped".
- Cloud Storage (storage/docs/json_api/v1/objects/get): alt=media answers the object's bytes
  (`fake.objects["bucket/name"]`), otherwise its metadata; 404 "No such object" when absent. The
  object name is one URL-encoded path segment (so a / in it is %2F).
- OAuth 2.0 token endpoint (https://oauth2.googleapis.com/token), as a service account uses it
  (developers.google.com/identity/protocols/oauth2/service-account, "Preparing to make an
  authorized API call" / HTTP-REST; RFC 7523): a form-encoded POST with grant_type
  urn:ietf:params:oauth:grant-type:jwt-bearer and an `assertion`, a JWT signed RS256 with the
  account's private key whose claims name the account (iss), the scope, the token endpoint
  (aud) and its lifetime (iat, exp, at most an hour), answers {access_token, expires_in, scope,
  token_type: "Bearer"}; any other request answers 400 {"error": "invalid_grant"}.
  `fake.adc_file(dir)` writes a service account key file (the JSON the IAM console downloads)
  whose token_uri is this endpoint, for GOOGLE_APPLICATION_CREDENTIALS; once a token was
  issued, a request must carry one of `fake.tokens`.
- Pub/Sub (pubsub/docs/reference/rest/v1/projects.topics/publish): each message needs data or
  an attribute (the PubsubMessage description); messages land in `fake.published` (data
  decoded) and the answer is {messageIds}.
- Workflow Executions v1 (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/
  projects.locations.workflows.executions/create, /get, /cancel, and the Execution resource):
  create "creates a new execution using the latest revision of the given workflow"; the parent
  names a workflow (projects/{project}/locations/{location}/workflows/{workflow}) and one not
  deployed answers 404 NOT_FOUND. `argument` is "input parameters of the execution represented
  as a JSON string" (400 INVALID_ARGUMENT when it is not JSON). The Execution answered is
  ACTIVE, named <parent>/executions/<uuid>. Its state then goes to SUCCEEDED (`result`: the
  workflow's result as JSON text), FAILED (`error.payload`: the raised value as JSON text, and
  `error.context`) or, after cancel, CANCELLED; a cancel of an execution that has ended answers
  400 FAILED_PRECONDITION (a choice of the fake). The deployed workflows are files `levelflow
  generate` wrote, registered with `fake.deploy_workflows(project, location, files)`: an
  execution runs its workflow's source for real, in workflows-emulator
  (tests/cloud_workflows_emulator.py: its HTTP calls go where the source says, e.g. the stub
  executors; one execution at a time, in a thread of its own, with
  GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID its id). executions.get answers ACTIVE until that run has
  ended and the execution was read `fake.active_polls` times, and while `fake.hold(predicate)`
  holds its decoded argument; then its outcome. Executions are in `fake.executions` (name ->
  WorkflowExecution).
Choices of the fake, not documented: a cancel (Dataproc, Dataflow, Dataform) of a resource that
has already ended answers 400 FAILED_PRECONDITION; a failed Dataproc operation carries error
code 2 (UNKNOWN) with the batch's stateMessage; generated ids are counters.

Scenarios (`fake.scenario(match, **fields)`, or `fake.default`): a created resource takes the
first scenario whose `match` occurs in its name, id or job name (Dataform: its compilation
result and tags), else the default. `polls`: gets answered before the final state (the first of
them PENDING when there are two or more); `final`: "success" or "failure"; `never_finish`: stays
running (the caller must cancel); `transient`: ordinals (1-based) of the requests about that
resource, its create attempts included, answered `transient_status` (429 RESOURCE_EXHAUSTED or
503 UNAVAILABLE) instead. `fake.fail_method(method_id, ordinals, status)` does the same for the
n-th requests of one method.
"""
from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

import google_discovery

STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
          429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
TERMINAL = ("success", "failure", "cancelled")
TOKEN_URL = "https://oauth2.googleapis.com/token"
SERVICE_ACCOUNT = "levelflow-tests@levelflow-tests.iam.gserviceaccount.com"


@dataclass
class Scenario:
    polls: int = 2
    final: str = "success"  # "success" | "failure"
    never_finish: bool = False
    transient: tuple[int, ...] = ()
    transient_status: int = 429
    message: str = "the job failed (scripted by the test)"

    def __post_init__(self):
        assert self.final in ("success", "failure"), self.final
        assert self.transient_status in (429, 503), self.transient_status


@dataclass
class Record:
    """One request as it arrived."""
    method: str
    host: str
    path: str  # as sent, still URL-encoded
    query: dict
    body: object
    method_id: Optional[str]
    status: int = 0  # the status the fake answered


@dataclass
class Job:
    """A created resource with a lifecycle: a batch, a flex-template job, an invocation, a query job."""
    kind: str
    key: str  # what its requests are counted under (for `transient`)
    keys: tuple[str, ...]  # the texts a scenario's `match` is looked for in
    scenario: Scenario
    view: dict  # the resource as the API shows it
    gets: int = 0
    cancel_gets: Optional[int] = None  # gets since a cancel, None when none was asked
    ended: Optional[str] = None

    def phase(self) -> str:
        if self.ended:
            return self.ended
        if self.cancel_gets is not None:
            return "cancelling" if self.cancel_gets <= 1 else "cancelled"
        polls = self.scenario.polls
        if self.gets == 0 or (self.gets == 1 and polls >= 2):
            return "pending"
        if self.scenario.never_finish or self.gets <= polls:
            return "running"
        return self.scenario.final

    def advance(self) -> str:
        """One poll: the resource moves on, and stays put once it has ended."""
        if not self.ended:
            self.gets += 1
            if self.cancel_gets is not None:
                self.cancel_gets += 1
            phase = self.phase()
            self.ended = phase if phase in TERMINAL else None
        return self.phase()


@dataclass
class WorkflowExecution:
    """An execution of a deployed workflow, run in workflows-emulator."""
    name: str
    argument: object  # decoded
    view: dict  # the Execution as the API shows it, less its state
    gets: int = 0
    outcome: Optional[tuple[str, object]] = None  # ("SUCCEEDED", result) | ("FAILED", error payload), once run
    cancelled: bool = False
    thread: Optional[threading.Thread] = None


class GoogleError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None, reason: str = "invalid"):
        super().__init__(message)
        self.code, self.message, self.status, self.reason = code, message, status or STATUS.get(code, "FAILED_PRECONDITION"), reason


class FakeGoogle:
    def __init__(self, require_auth: bool = True):
        self.require_auth = require_auth
        self.requests: list[Record] = []
        self.problems: list[str] = []
        self.objects: dict[str, bytes] = {}  # "bucket/object name" -> contents
        self.dataform_files: dict[str, dict[str, str | bytes]] = {}  # repository/workspace name -> path -> contents
        self.compilations: list[dict] = []  # CompilationResults created, as answered
        self.published: list[dict] = []  # {"topic", "data" (bytes), "attributes"}
        self.tokens: list[str] = []  # access tokens issued by the token endpoint
        self._key = None  # the service account's RSA key, made by adc_file
        self.default = Scenario()
        self.scenarios: list[tuple[str, Scenario]] = []
        self.method_failures: dict[str, tuple[tuple[int, ...], int]] = {}
        self.jobs: dict[str, Job] = {}  # resource name -> job (Dataproc: also its operation name)
        # Workflow Executions: deployed sources, newest last: (workflow name, predicate on an argument or None, files)
        self.deployed: list[tuple[str, Optional[Callable[[object], bool]], dict[str, str]]] = []
        self.executions: dict[str, WorkflowExecution] = {}
        self.active_polls = 2  # executions.get answers ACTIVE this many times at least
        self.held: list[Callable[[object], bool]] = []  # executions whose argument one of these holds stay ACTIVE
        self._emulator_lock = threading.Lock()  # the emulator's patches are global: one execution at a time
        self._counts: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: Optional[ThreadingHTTPServer] = None

    # -- test-facing API ---------------------------------------------------------------------

    def scenario(self, match: str, **fields) -> Scenario:
        chosen = Scenario(**fields)
        self.scenarios.append((match, chosen))
        return chosen

    def fail_method(self, method_id: str, ordinals: tuple[int, ...] = (1,), status: int = 429) -> None:
        self.method_failures[method_id] = (tuple(ordinals), status)

    @property
    def base(self) -> str:
        assert self._server is not None, "the fake is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url_for(self, google_url: str) -> str:
        parts = urllib.parse.urlsplit(google_url)
        assert parts.scheme == "https" and parts.netloc.endswith(".googleapis.com"), google_url
        return f"{self.base}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def adc_file(self, directory) -> str:
        """A service account key file whose tokens this fake issues (GOOGLE_APPLICATION_CREDENTIALS)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if self._key is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        path = f"{directory}/service-account.json"
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"type": "service_account", "project_id": "levelflow-tests", "private_key_id": "k1",
                       "private_key": pem, "client_email": SERVICE_ACCOUNT, "client_id": "1",
                       "token_uri": self.url_for(TOKEN_URL)}, handle)
        return path

    def deploy_workflows(self, project: str, location: str, files: dict[str, str],
                         when: Optional[Callable[[object], bool]] = None) -> None:
        """Deploy generated workflows ({"<name>.yaml": source}, the main first, as `levelflow
        generate` writes them) in projects/<project>/locations/<location>: a newer revision of
        each. `when`: this revision runs only the executions whose (decoded) argument it holds."""
        for file_name in files:
            workflow = f"projects/{project}/locations/{location}/workflows/{file_name.removesuffix('.yaml')}"
            self.deployed.append((workflow, when, dict(files)))

    def hold(self, predicate: Callable[[object], bool]) -> None:
        """Executions whose argument `predicate` holds answer ACTIVE until `release()`."""
        with self._lock:
            self.held.append(predicate)

    def release(self) -> None:
        with self._lock:
            self.held.clear()

    def calls(self, method_id: str) -> list[Record]:
        with self._lock:
            return [r for r in self.requests if r.method_id == method_id]

    def __enter__(self) -> "FakeGoogle":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-google", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        for execution in list(self.executions.values()):  # the emulator's patches are undone when its runs end
            if execution.thread is not None:
                execution.thread.join(60)

    # -- one request ---------------------------------------------------------------------------

    def handle(self, verb: str, raw_path: str, headers, raw_body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request to <base>/<host>/<path>?<query>."""
        parts = urllib.parse.urlsplit(raw_path)
        host, _, path = parts.path.lstrip("/").partition("/")
        query = {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            record = Record(verb, host, "/" + path, query, None, None)
            self.requests.append(record)
            try:
                record.body = json.loads(raw_body) if raw_body.strip() else None
            except ValueError:
                record.body = raw_body.decode(errors="replace")
            try:
                status, kind, body = self._dispatch(record, headers)
            except GoogleError as exc:
                status, kind, body = exc.code, "application/json; charset=UTF-8", self._error_body(host, exc)
            record.status = status
            return status, kind, body

    def _dispatch(self, record: Record, headers) -> tuple[int, str, bytes]:
        url = f"https://{record.host}{record.path}"
        if record.method == "POST" and url == TOKEN_URL:
            return self._token(record)
        method = google_discovery.find_method(record.method, url) if record.host.endswith(".googleapis.com") else None
        if method is None:
            self.problems += google_discovery.request_problems(record.method, url, record.body, record.query)
            raise GoogleError(404, f"The requested URL {record.path} was not found on this server ({record.method}).")
        record.method_id = method.id
        authorization = headers.get("Authorization") or ""
        if self.require_auth and not authorization.startswith("Bearer "):
            self.problems.append(f"{method.id}: no Authorization: Bearer header")
            raise GoogleError(401, "Request is missing required authentication credential. Expected OAuth 2 access token.")
        if self.require_auth and self.tokens and authorization.removeprefix("Bearer ") not in self.tokens:
            self.problems.append(f"{method.id}: an access token the token endpoint did not issue")
            raise GoogleError(401, "Request had invalid authentication credentials.")
        if isinstance(record.body, str):
            self.problems.append(f"{method.id}: body is not JSON: {record.body[:80]!r}")
            raise GoogleError(400, "Invalid JSON payload received.")
        problems = google_discovery.method_problems(method, record.body, record.query)
        if problems:
            self.problems += [f"{method.id}: {p}" for p in problems]
            raise GoogleError(400, "; ".join(problems))
        self._transient(f"method:{method.id}", self.method_failures.get(method.id))
        handler = HANDLERS.get(method.id)
        if handler is None:
            raise GoogleError(404, f"{method.id} is not played by the fake")
        answer = handler(self, method.path_params, record.query, record.body or {})
        if isinstance(answer, bytes):
            return 200, "application/octet-stream", answer
        return 200, "application/json; charset=UTF-8", json.dumps(answer).encode()

    def _token(self, record: Record) -> tuple[int, str, bytes]:
        form = urllib.parse.parse_qs(record.body if isinstance(record.body, str) else "")
        problem = self._assertion_problem(form)
        if problem:
            self.problems.append(f"token endpoint: {problem}")
            return 400, "application/json", json.dumps({"error": "invalid_grant", "error_description": problem}).encode()
        record.method_id = "oauth2.token"
        token = f"ya29.fake-access-token-{self._next_id()}"
        self.tokens.append(token)
        answer = {"access_token": token, "expires_in": 3599, "scope": "https://www.googleapis.com/auth/cloud-platform",
                  "token_type": "Bearer"}
        return 200, "application/json; charset=utf-8", json.dumps(answer).encode()

    def _assertion_problem(self, form: dict) -> Optional[str]:
        """What is wrong with a JWT-bearer token request, if anything."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] or len(form.get("assertion", [])) != 1:
            return f"not a JWT-bearer grant: {sorted(form)}"
        if self._key is None:
            return "no service account key was handed out (adc_file)"
        try:
            header, claims, signature = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
                                         for part in form["assertion"][0].split("."))
            signed = form["assertion"][0].rsplit(".", 1)[0].encode()
            self._key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            header, claims = json.loads(header), json.loads(claims)
        except (ValueError, InvalidSignature) as exc:
            return f"the assertion is not a JWT signed by the account's key: {exc!r}"
        if header.get("alg") != "RS256":
            return f"alg {header.get('alg')!r}, expected RS256"
        if claims.get("iss") != SERVICE_ACCOUNT or claims.get("aud") != TOKEN_URL:  # Google names its endpoint, wherever it is sent
            return f"iss/aud {claims.get('iss')!r}/{claims.get('aud')!r} are not the account and the token endpoint"
        if "https://www.googleapis.com/auth/cloud-platform" not in str(claims.get("scope", "")).split():
            return f"scope {claims.get('scope')!r} lacks cloud-platform"
        if not 0 < claims.get("exp", 0) - claims.get("iat", 0) <= 3600:
            return "the assertion must expire within an hour of its issue"
        return None

    @staticmethod
    def _error_body(host: str, exc: GoogleError) -> bytes:
        error = {"code": exc.code, "message": exc.message, "status": exc.status}
        if host in ("bigquery.googleapis.com", "storage.googleapis.com"):
            error["errors"] = [{"message": exc.message, "domain": "global", "reason": exc.reason}]
        return json.dumps({"error": error}).encode()

    # -- shared mechanics ------------------------------------------------------------------------

    def _transient(self, key: str, rule: Optional[tuple[tuple[int, ...], int]]) -> None:
        """Count one request under `key`; answer it 429/503 when the rule names its ordinal."""
        self._counts[key] = self._counts.get(key, 0) + 1
        if rule and self._counts[key] in rule[0]:
            status = rule[1]
            message = "Quota exceeded (scripted by the test)." if status == 429 else "The service is currently unavailable."
            raise GoogleError(status, message, reason="rateLimitExceeded" if status == 429 else "backendError")

    def _scenario_for(self, keys: tuple[str, ...]) -> Scenario:
        for match, chosen in self.scenarios:
            if any(match in key for key in keys if key):
                return chosen
        return self.default

    def _touch(self, job: Job) -> None:
        self._transient(job.key, (job.scenario.transient, job.scenario.transient_status))

    def _job(self, name: str, what: str = "Resource") -> Job:
        if name not in self.jobs:
            raise GoogleError(404, f"{what} {name} not found.", reason="notFound")
        job = self.jobs[name]
        self._touch(job)
        return job

    def _new_job(self, kind: str, key: str, keys: tuple[str, ...]) -> Job:
        """A job about to be created: its create attempt is counted (and may be answered 429)."""
        scenario = self._scenario_for(keys)
        self._transient(key, (scenario.transient, scenario.transient_status))
        return Job(kind, key, keys, scenario, {})

    def _cancel(self, job: Job) -> None:
        if job.phase() in TERMINAL:
            raise GoogleError(400, f"{job.view.get('name', job.key)} has already ended ({job.phase()}); it cannot be cancelled.",
                              "FAILED_PRECONDITION")
        if job.cancel_gets is None:
            job.cancel_gets = 0

    def _next_id(self) -> int:
        return next(self._ids)


def _now(n: int = 0) -> str:
    return f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z"


# -- Dataproc ------------------------------------------------------------------------------------

BATCH_STATES = {"pending": "PENDING", "running": "RUNNING", "success": "SUCCEEDED", "failure": "FAILED",
                "cancelling": "CANCELLING", "cancelled": "CANCELLED"}
BATCH_ID = re.compile(r"[a-z0-9-]{4,63}")
BATCH_CONFIGS = ("pysparkBatch", "pysparkNotebookBatch", "sparkBatch", "sparkRBatch", "sparkSqlBatch")


def _batch_view(job: Job) -> dict:
    phase = job.phase()
    view = {**job.view, "state": BATCH_STATES[phase], "stateTime": _now(job.gets)}
    if phase == "failure":
        view["stateMessage"] = job.scenario.message
    return view


def _operation_view(job: Job) -> dict:
    view = {"name": job.view["operation"], "metadata": {
        "@type": "type.googleapis.com/google.cloud.dataproc.v1.BatchOperationMetadata",
        "batch": job.view["name"], "batchUuid": job.view["uuid"], "createTime": job.view["createTime"], "operationType": "BATCH"}}
    phase = job.phase()
    view["done"] = phase in TERMINAL
    if phase == "success":
        view["response"] = {"@type": "type.googleapis.com/google.cloud.dataproc.v1.Batch", **_batch_view(job)}
    elif phase == "failure":
        view["error"] = {"code": 2, "message": job.scenario.message}
    elif phase == "cancelled":
        view["error"] = {"code": 1, "message": "Operation was cancelled"}
    return view


def dataproc_create(fake: FakeGoogle, path: dict, query: dict, body: dict) -> dict:
    parent = path["parent"]
    batch_id = query.get("batchId") or f"b{fake._next_id():06d}"
    if not BATCH_ID.fullmatch(batch_id):
        raise GoogleError(400, f"batchId {batch_id!r}: must be 4-63 characters of [a-z0-9-]")
    if sum(config in body for config in BATCH_CONFIGS) != 1:
        raise GoogleError(400, f"a batch needs exactly one of {', '.join(BATCH_CONFIGS)}")
    name = f"{parent}/batches/{batch_id}"
    job = fake._new_job("dataproc", name, (name,))
    if name in fake.jobs:
        raise GoogleError(409, f"Batch {name} already exists")
    project, region = parent.split("/")[1], parent.split("/")[3]
    operation = f"projects/{project}/regions/{region}/operations/op-{fake._next_id():06d}"
    job.view = {**body, "name": name, "uuid": f"00000000-0000-0000-0000-{fake._next_id():012d}", "createTime": _now(),
                "creator": "fake@levelflow.test", "operation": operation}
    fake.jobs[name] = fake.jobs[operation] = job
    return _operation_view(job)


def dataproc_get_batch(fake, path, query, body) -> dict:
    job = fake._job(path["name"], "Batch")
    job.advance()
    return _batch_view(job)


def dataproc_get_operation(fake, path, query, body) -> dict:
    job = fake._job(path["name"], "Operation")
    job.advance()
    return _operation_view(job)


def dataproc_cancel_operation(fake, path, query, body) -> dict:
    fake._cancel(fake._job(path["name"], "Operation"))
    return {}


# -- Dataflow ------------------------------------------------------------------------------------

DATAFLOW_STATES = {"pending": "JOB_STATE_PENDING", "running": "JOB_STATE_RUNNING", "success": "JOB_STATE_DONE",
                   "failure": "JOB_STATE_FAILED", "cancelling": "JOB_STATE_CANCELLING", "cancelled": "JOB_STATE_CANCELLED"}
JOB_NAME = re.compile(r"[a-z]([-a-z0-9]{0,1022}[a-z0-9])?")


def _dataflow_view(job: Job) -> dict:
    return {**job.view, "currentState": DATAFLOW_STATES[job.phase()], "currentStateTime": _now(job.gets)}


def dataflow_launch(fake, path, query, body) -> dict:
    launch = body.get("launchParameter") or {}
    job_name = launch.get("jobName", "")
    if not JOB_NAME.fullmatch(job_name):
        raise GoogleError(400, f"jobName {job_name!r} must match [a-z]([-a-z0-9]{{0,1022}}[a-z0-9])?")
    project, location = path["projectId"], path["location"]
    key = f"dataflow:{project}/{location}/{job_name}"
    job = fake._new_job("dataflow", key, (job_name,))
    active = [j for j in fake.jobs.values() if j.key == key and j.phase() not in TERMINAL]
    if active:  # the Job.name description: the attempt returns the existing job
        return {"job": _dataflow_view(active[0])}
    job_id = f"2026-01-01_00_00_00-{fake._next_id()}"
    job.view = {"id": job_id, "projectId": project, "name": job_name, "location": location, "type": "JOB_TYPE_BATCH",
                "createTime": _now(), "startTime": _now()}
    fake.jobs[f"dataflow:{project}/{location}/{job_id}"] = job
    return {"job": _dataflow_view(job)}


def _dataflow_job(fake, path) -> Job:
    return fake._job(f"dataflow:{path['projectId']}/{path['location']}/{path['jobId']}", "Job")


def dataflow_get(fake, path, query, body) -> dict:
    job = _dataflow_job(fake, path)
    job.advance()
    return _dataflow_view(job)


def dataflow_update(fake, path, query, body) -> dict:
    job = _dataflow_job(fake, path)
    if body.get("requestedState") != "JOB_STATE_CANCELLED":
        raise GoogleError(400, f"the fake plays only requestedState JOB_STATE_CANCELLED, got {body.get('requestedState')!r}")
    fake._cancel(job)
    return {**_dataflow_view(job), "requestedState": "JOB_STATE_CANCELLED"}


# -- Dataform ------------------------------------------------------------------------------------

INVOCATION_STATES = {"pending": "RUNNING", "running": "RUNNING", "success": "SUCCEEDED", "failure": "FAILED",
                     "cancelling": "CANCELING", "cancelled": "CANCELLED"}


def dataform_compile(fake, path, query, body) -> dict:
    if sum(source in body for source in ("gitCommitish", "workspace", "releaseConfig")) != 1:
        raise GoogleError(400, "a compilation result needs exactly one of gitCommitish, workspace, releaseConfig")
    name = f"{path['parent']}/compilationResults/c{fake._next_id():06d}"
    result = {**body, "name": name, "resolvedGitCommitSha": "0" * 40, "dataformCoreVersion": "3.0.0", "createTime": _now()}
    fake.compilations.append(result)
    return result


def dataform_invoke(fake, path, query, body) -> dict:
    compilation = body.get("compilationResult", "")
    if not any(c["name"] == compilation for c in fake.compilations):
        raise GoogleError(404, f"CompilationResult {compilation!r} not found.")
    tags = tuple(body.get("invocationConfig", {}).get("includedTags", []))
    parent = path["parent"]
    job = fake._new_job("dataform", f"dataform:{parent}|{compilation}|{','.join(tags)}", (compilation, *tags))
    name = f"{parent}/workflowInvocations/i{fake._next_id():06d}"
    job.keys += (name,)
    job.view = {**body, "name": name, "resolvedCompilationResult": compilation}
    fake.jobs[name] = job
    return _invocation_view(job)


def _invocation_view(job: Job) -> dict:
    view = {**job.view, "state": INVOCATION_STATES[job.phase()], "invocationTiming": {"startTime": _now()}}
    if job.phase() in TERMINAL:
        view["invocationTiming"]["endTime"] = _now(job.gets)
    return view


def dataform_get_invocation(fake, path, query, body) -> dict:
    job = fake._job(path["name"], "WorkflowInvocation")
    job.advance()
    return _invocation_view(job)


def dataform_cancel(fake, path, query, body) -> dict:
    fake._cancel(fake._job(path["name"], "WorkflowInvocation"))
    return {}


def _read(fake, owner: str, file_path: str) -> dict:
    contents = fake.dataform_files.get(owner, {}).get(file_path)
    if contents is None:
        raise GoogleError(404, f"File {file_path!r} not found in {owner}.")
    raw = contents.encode() if isinstance(contents, str) else contents
    return {"contents": base64.b64encode(raw).decode()}


def dataform_read_repository_file(fake, path, query, body) -> dict:
    return _read(fake, path["name"], query.get("path", ""))


def dataform_read_workspace_file(fake, path, query, body) -> dict:
    return _read(fake, path["workspace"], query.get("path", ""))


# -- BigQuery ------------------------------------------------------------------------------------

BQ_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,1024}")


def _bq_view(job: Job) -> dict:
    phase = job.phase()
    status = {"state": {"pending": "PENDING", "running": "RUNNING"}.get(phase, "DONE")}
    if phase == "cancelling":
        status["state"] = "RUNNING"
    if phase == "failure":
        status["errorResult"] = {"reason": "invalidQuery", "message": job.scenario.message}
    if phase == "cancelled":
        status["errorResult"] = {"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
    if "errorResult" in status:
        status["errors"] = [status["errorResult"]]
    return {**job.view, "status": status}


def bigquery_insert(fake, path, query, body) -> dict:
    reference = dict(body.get("jobReference") or {})
    project = path["projectId"]
    job_id = reference.get("jobId") or f"job_{fake._next_id():06d}"
    if not BQ_JOB_ID.fullmatch(job_id):
        raise GoogleError(400, f"Invalid job ID {job_id!r}: letters, digits, underscores and dashes only, at most 1,024.")
    reference.update(projectId=reference.get("projectId", project), jobId=job_id, location=reference.get("location", "US"))
    key = f"bigquery:{reference['projectId']}/{job_id}"
    job = fake._new_job("bigquery", key, (job_id,))
    if key in fake.jobs:
        raise GoogleError(409, f"Already Exists: Job {project}:{reference['location']}.{job_id}", reason="duplicate")
    job.view = {**body, "kind": "bigquery#job", "id": f"{project}:{reference['location']}.{job_id}", "jobReference": reference,
                "statistics": {"creationTime": "1767225600000"}}
    fake.jobs[key] = job
    return _bq_view(job)


def _bq_job(fake, path, query) -> Job:
    key = f"bigquery:{path['projectId']}/{path['jobId']}"
    job = fake.jobs.get(key)
    if job is not None:
        location = job.view["jobReference"]["location"]
        asked = query.get("location")
        if (asked or "").lower() != location.lower() and (asked or location.upper() not in ("US", "EU")):
            job = None  # the job is not found where the caller looked
    if job is None:
        raise GoogleError(404, f"Not found: Job {path['projectId']}:{path['jobId']}", reason="notFound")
    fake._touch(job)
    return job


def bigquery_get(fake, path, query, body) -> dict:
    job = _bq_job(fake, path, query)
    job.advance()
    return _bq_view(job)


def bigquery_cancel(fake, path, query, body) -> dict:
    job = _bq_job(fake, path, query)
    if job.phase() not in TERMINAL and job.cancel_gets is None:
        job.cancel_gets = 0
    return {"kind": "bigquery#jobCancelResponse", "job": _bq_view(job)}


# -- Cloud Storage, Pub/Sub ------------------------------------------------------------------------


def storage_get(fake, path, query, body):
    key = f"{path['bucket']}/{path['object']}"
    if key not in fake.objects:
        raise GoogleError(404, f"No such object: {key}", reason="notFound")
    data = fake.objects[key]
    if query.get("alt") == "media":
        return data
    return {"kind": "storage#object", "id": key, "bucket": path["bucket"], "name": path["object"], "size": str(len(data)),
            "contentType": "application/octet-stream"}


def pubsub_publish(fake, path, query, body) -> dict:
    messages = body.get("messages") or []
    if not messages or any(not m.get("data") and not m.get("attributes") for m in messages):
        raise GoogleError(400, "Each message must contain either a non-empty data field or at least one attribute.")
    ids = []
    for message in messages:
        fake.published.append({"topic": path["topic"], "data": base64.b64decode(message.get("data", "")),
                               "attributes": message.get("attributes", {})})
        ids.append(str(fake._next_id()))
    return {"messageIds": ids}


# -- Workflow Executions ---------------------------------------------------------------------------


def executions_create(fake, path, query, body) -> dict:
    parent = path["parent"]
    text = body.get("argument")
    try:
        argument = json.loads(text) if text else None
    except ValueError:
        raise GoogleError(400, "Invalid value for argument: it must be a JSON string (e.g. a JSON object).") from None
    files = next((files for workflow, when, files in reversed(fake.deployed)
                  if workflow == parent and (when is None or when(argument))), None)
    if files is None:
        raise GoogleError(404, f"Resource '{parent}' was not found", reason="notFound")
    name = f"{parent}/executions/{uuid.UUID(int=fake._next_id())}"
    view = {"name": name, "startTime": _now(), "argument": text or "null", "workflowRevisionId": "000001-fak",
            "callLogLevel": body.get("callLogLevel", "CALL_LOG_LEVEL_UNSPECIFIED"), "labels": body.get("labels", {})}
    execution = fake.executions[name] = WorkflowExecution(name, argument, view)
    execution.thread = threading.Thread(target=_run_execution, args=(fake, execution, parent.rsplit("/", 1)[-1], files),
                                        name=f"fake-execution-{name.rsplit('/', 1)[-1]}", daemon=True)
    execution.thread.start()
    return {**view, "state": "ACTIVE"}


def _run_execution(fake: FakeGoogle, execution: WorkflowExecution, workflow: str, files: dict[str, str]) -> None:
    """The workflow's source in workflows-emulator, as the service would run it."""
    import cloud_workflows_emulator as cwe
    from workflows_emulator.utils import WorkflowError

    with fake._emulator_lock:
        try:
            with cwe.patched_emulator(execution_id=execution.name.rsplit("/", 1)[-1]) as emulator:
                emulator.load(files)
                try:
                    outcome: tuple[str, object] = ("SUCCEEDED", cwe._plain(emulator.execute(workflow, execution.argument)))
                except WorkflowError as exc:
                    payload = exc.payload.to_dict() if hasattr(exc.payload, "to_dict") else exc.payload
                    outcome = ("FAILED", cwe._plain(payload))
        except Exception as exc:  # the emulator itself broke: a test must see it, not a hang
            outcome = ("FAILED", {"message": f"the fake's emulator failed: {exc!r}"})
            fake.problems.append(f"execution {execution.name}: the emulator failed: {exc!r}")
    with fake._lock:
        execution.outcome = outcome


def _execution(fake, name: str) -> WorkflowExecution:
    if name not in fake.executions:
        raise GoogleError(404, f"Resource '{name}' was not found", reason="notFound")
    return fake.executions[name]


def _execution_view(fake, execution: WorkflowExecution) -> dict:
    view = {**execution.view, "state": "ACTIVE"}
    if execution.cancelled:
        return {**view, "state": "CANCELLED", "endTime": _now(execution.gets)}
    held = any(predicate(execution.argument) for predicate in fake.held)
    if execution.outcome is None or held or execution.gets <= fake.active_polls:
        return view
    state, value = execution.outcome
    view.update(state=state, endTime=_now(execution.gets))
    if state == "SUCCEEDED":
        view["result"] = json.dumps(value)
    else:
        view["error"] = {"payload": json.dumps(value), "context": "the workflow raised an error"}
    return view


def executions_get(fake, path, query, body) -> dict:
    execution = _execution(fake, path["name"])
    execution.gets += 1
    return _execution_view(fake, execution)


def executions_cancel(fake, path, query, body) -> dict:
    execution = _execution(fake, path["name"])
    state = _execution_view(fake, execution)["state"]
    if state != "ACTIVE":
        raise GoogleError(400, f"Execution {execution.name} has already ended ({state}); it cannot be cancelled.",
                          "FAILED_PRECONDITION")
    execution.cancelled = True
    return _execution_view(fake, execution)


HANDLERS = {
    "dataproc.projects.locations.batches.create": dataproc_create,
    "dataproc.projects.locations.batches.get": dataproc_get_batch,
    "dataproc.projects.regions.operations.get": dataproc_get_operation,
    "dataproc.projects.regions.operations.cancel": dataproc_cancel_operation,
    "dataflow.projects.locations.flexTemplates.launch": dataflow_launch,
    "dataflow.projects.locations.jobs.get": dataflow_get,
    "dataflow.projects.locations.jobs.update": dataflow_update,
    "dataform.projects.locations.repositories.compilationResults.create": dataform_compile,
    "dataform.projects.locations.repositories.workflowInvocations.create": dataform_invoke,
    "dataform.projects.locations.repositories.workflowInvocations.get": dataform_get_invocation,
    "dataform.projects.locations.repositories.workflowInvocations.cancel": dataform_cancel,
    "dataform.projects.locations.repositories.readFile": dataform_read_repository_file,
    "dataform.projects.locations.repositories.workspaces.readFile": dataform_read_workspace_file,
    "bigquery.jobs.insert": bigquery_insert,
    "bigquery.jobs.get": bigquery_get,
    "bigquery.jobs.cancel": bigquery_cancel,
    "storage.objects.get": storage_get,
    "pubsub.projects.topics.publish": pubsub_publish,
    "workflowexecutions.projects.locations.workflows.executions.create": executions_create,
    "workflowexecutions.projects.locations.workflows.executions.get": executions_get,
    "workflowexecutions.projects.locations.workflows.executions.cancel": executions_cancel,
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, kind, body = self.server.fake.handle(self.command, self.path, self.headers, raw)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args):  # keep test output clean
        pass
