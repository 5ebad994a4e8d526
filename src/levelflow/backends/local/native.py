"""Native mode on the local engine (docs/step-modes.md): each async step calls its Google API
itself, with application-default credentials, instead of an executor function.

From the same AEF-format job file, a step sends the request the AEF executor builds (and the
Cloud Workflows native workflow sends, runtime.yaml's start_<api>_*): the catalogue's request
functions (`levelflow.executors`) give the operators' arguments, written here in the REST
API's JSON spelling. A job is then polled every WAIT_TIME_SECONDS through its API, its state
word decided as the intermediate decides it (protocol.SUCCESS_WORDS / RUNNING_WORDS), and
cancelled through its API on ASYNC_TIMEOUT_LOOP_IN_MINUTES. `workflows` steps start their
child through the Workflow Executions API, as in functions mode.

What a run records as a step's job is the resource's name under its API's root (a Dataproc
batch, a Dataflow job, a Dataform invocation, a BigQuery job with its location), so that a
resumed run polls it again. Every call may be sent under a base URL instead of
https://<host>/ (`GoogleApis`, `--google-api-url`): a local fake of the APIs in tests.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import quote, urlsplit

from ... import protocol
from ...executors import (AEF, CATALOGUE, Executor, bq_request, dataflow_job_name, dataflow_request, dataform_request,
                          dataproc_request, parse_job_file, read_job_file, sqlx_location, strip_config_block)
from ...native import aef_only
from ...plan import PlanStep
from ...protocol import is_loopback
from .executors import DefaultCredentials, ExecutorClient, StepError, _shorten, http_answer

ROOTS = {  # each API's REST root, as Google's discovery documents give it (rootUrl + servicePath)
    "dataproc": "https://dataproc.googleapis.com/v1/",
    "dataflow": "https://dataflow.googleapis.com/v1b3/",
    "dataform": "https://dataform.googleapis.com/v1/",
    "bigquery": "https://bigquery.googleapis.com/bigquery/v2/",
    "storage": "https://storage.googleapis.com/storage/v1/",
}
CANCELLED = "; it was cancelled through its API"


class GoogleApis:
    """HTTPS calls to Google's APIs with application-default credentials (an OAuth2 access
    token, refreshed by google-auth's AuthorizedSession), one session per engine thread. Under
    `base`, https://<host>/<path> is sent to <base>/<host>/<path> instead, still with the
    credentials' token (a fake then sees what Google would)."""

    def __init__(self, base: Optional[str] = None, purpose: str = "for native mode"):
        self.base = base.rstrip("/") if base else None
        self._local = threading.local()
        self._credentials = DefaultCredentials(purpose)

    def url(self, google_url: str) -> str:
        if self.base is None:
            return google_url
        parts = urlsplit(google_url)
        return f"{self.base}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            import requests
            from google.auth.transport.requests import AuthorizedSession, Request

            local = bool(self.base and is_loopback(self.base))  # this machine: no proxy settings, for tokens too
            token_session = requests.Session()
            token_session.trust_env = not local
            session = AuthorizedSession(self._credentials.get(), auth_request=Request(token_session))
            session.trust_env = not local
            self._local.session = session
        return session

    def send(self, method: str, google_url: str, body: Optional[dict], timeout: float) -> tuple[int, str]:
        url = self.url(google_url)

        def call():
            import google.auth.exceptions

            try:
                return self._session().request(method, url, json=body, timeout=timeout, stream=True)
            except google.auth.exceptions.GoogleAuthError as exc:  # the token could not be refreshed
                raise StepError(f"could not get a Google access token: {exc}") from None

        return http_answer(call, url, timeout)


@dataclass
class NativeClient(ExecutorClient):
    """The local engine's client in native mode: the ExecutorClient's interface (polls, start,
    is_done, cancel), Google's APIs behind it."""

    apis: GoogleApis = field(default_factory=GoogleApis)
    jobs_dir: Optional[Path] = None  # a local copy of the jobs bucket, read instead of Cloud Storage

    def polls(self, step: PlanStep) -> bool:
        return True  # sync steps are refused before the run (levelflow.native)

    def run_sync(self, step: PlanStep) -> None:
        raise StepError("native mode has no sync steps")

    # -- the calls ------------------------------------------------------------------------------

    def _google(self, step: PlanStep, what: str, method: str, url: str, body: Optional[dict] = None,
                accept: Callable[[int], bool] = lambda status: False, media: bool = False):
        """One API call, transient faults retried with back-off; the answer's JSON object (its
        text for `media`). Any other error fails the step with Google's message; `accept` names
        statuses that are an answer too."""
        status, text = self._retrying(what, lambda: self.apis.send(method, url, body, step.call_timeout_seconds), step)
        if not 200 <= status < 300 and not accept(status):
            raise StepError(f"{what}: HTTP {status} {_google_message(text)}")
        if media:
            return text
        try:
            answer = json.loads(text) if text.strip() else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise StepError(f"{what}: the answer is not a JSON object: {_shorten(text)}")
        return answer

    def _run_data(self, step: PlanStep) -> dict:
        """The `run` argument of the catalogue's request functions: the run's two dates (the
        intermediate passes no other query variable), the step's properties, names."""
        dates = self.arguments.query_variables
        return {"dates": {"start_date": dates["start_date"], "end_date": dates["end_date"]},
                "workflow_properties": self.arguments.step_properties(step), "workflow_name": self.arguments.workflow_name,
                "project_id": self.endpoints.plan.platform().pProjectID}

    def _job_file(self, step: PlanStep, entry: Executor) -> dict:
        """The step's AEF-format job file: from --jobs-dir, or gs://<jobs_definitions_bucket>/
        <executor>/<JOB_NAME>.json (Cloud Storage JSON API, alt=media), as the executors read it."""
        name = f"{entry.name}/{step.job_name}.json"
        if self.jobs_dir is not None:
            params, job_format, problems = read_job_file(entry, self.jobs_dir / name, step.job_name)
            where = str(self.jobs_dir / name)
        else:
            bucket = self.arguments.step_properties(step).get("jobs_definitions_bucket")
            if not bucket:
                raise StepError(f"no jobs_definitions_bucket in the workflow properties to read the job file {name} from")
            where = f"gs://{bucket}/{name}"
            text = self._google(step, f"reading {where}", "GET",
                                f"{ROOTS['storage']}b/{quote(str(bucket), safe='')}/o/{quote(name, safe='')}?alt=media", media=True)
            params, job_format, problems = parse_job_file(entry, text, step.job_name)
        if problems:
            raise StepError(f"{where}: {problems[0]}")
        if job_format != AEF or params is None:
            raise StepError(f"{where}: {aef_only(entry)}")
        return params

    # -- starting, polling and cancelling, per API ------------------------------------------------

    def start(self, step: PlanStep) -> str:
        if step.type == "workflows":
            return super().start(step)
        entry = _entry(step)
        starter = STARTERS[entry.native_api or ""]
        job = None if entry.fileless_format else self._job_file(step, entry)
        return starter(self, step, job)

    def is_done(self, step: PlanStep, async_job_id: str) -> bool:
        if step.type == "workflows":
            return super().is_done(step, async_job_id)
        api = _entry(step).native_api or ""
        answer = self._google(step, f"reading {api} job {async_job_id}", "GET", ROOTS[api] + async_job_id)
        word, detail = STATES[api](answer)
        if word in protocol.SUCCESS_WORDS:
            return True
        if word in protocol.RUNNING_WORDS:
            return False
        raise StepError(f"{api} job {async_job_id} ended {word}" + (f": {_shorten(detail)}" if detail else ""))

    def cancel(self, step: PlanStep, job: str) -> str:
        if step.type == "workflows":
            return super().cancel(step, job)
        api = _entry(step).native_api or ""
        try:
            CANCELLERS[api](self, step, job)
        except StepError as exc:  # e.g. it ended meanwhile: a finished job cannot be cancelled
            return f"; cancelling it failed: {exc}"
        return CANCELLED


def _entry(step: PlanStep) -> Executor:
    entry = CATALOGUE.get(step.executor or "")
    if entry is None or entry.native_api is None:  # refused before the run (levelflow.native)
        raise StepError(f"executor {step.executor!r} has no Google API in native mode")
    return entry


def _google_message(text: str) -> str:
    """Google's error message (AIP-193: {"error": {"code", "message", "status"}}), else the text."""
    try:
        error = json.loads(text).get("error")
        return _shorten(f"{error.get('status', '')}: {error['message']}".lstrip(": "))
    except (ValueError, AttributeError, KeyError, TypeError):
        return _shorten(text)


def _request_args(request: Callable, job: dict, step_data: dict, client: NativeClient, step: PlanStep) -> dict:
    try:
        return request(AEF, job, step_data, client._run_data(step))
    except (ValueError, TypeError, KeyError) as exc:
        raise StepError(f"job file of {step.job_name}: {exc}") from None


def camel(value, keep: tuple[str, ...] = ()):
    """A Python client's request in the REST API's JSON spelling: snake_case field names in
    camelCase; the keys of the free-form maps named in `keep` stay as they are."""
    if isinstance(value, dict):
        return {_camel_word(key): (item if key in keep else camel(item, keep)) for key, item in value.items()}
    return [camel(item, keep) for item in value] if isinstance(value, list) else value


def _camel_word(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


# Dataproc Serverless: a batch aef-<uuid> (batches.create); polled by its state; cancelled through
# the operation that created it (operations.cancel), which the batch names.
def _start_dataproc(client: NativeClient, step: PlanStep, job: dict) -> str:
    args = _request_args(dataproc_request, job, {"job_name": step.job_name}, client, step)
    parent = f"projects/{args['project_id']}/locations/{args['region']}"
    batch_id = f"aef-{uuid.uuid4()}"
    # A retried create whose first attempt did reach Dataproc finds its batch already there (409).
    client._google(step, f"creating Dataproc batch {batch_id}", "POST",
                   f"{ROOTS['dataproc']}{parent}/batches?batchId={batch_id}", camel(args["batch"], keep=("properties",)),
                   accept=lambda status: status == 409)
    return f"{parent}/batches/{batch_id}"


def _cancel_dataproc(client: NativeClient, step: PlanStep, job: str) -> None:
    batch = client._google(step, f"reading Dataproc batch {job}", "GET", ROOTS["dataproc"] + job)
    operation = batch.get("operation")
    if not operation:
        raise StepError(f"Dataproc batch {job} names no operation to cancel")
    client._google(step, f"cancelling {operation}", "POST", f"{ROOTS['dataproc']}{operation}:cancel")


# Dataflow: the Google-provided flex template (flexTemplates.launch); polled by currentState;
# cancelled by requesting JOB_STATE_CANCELLED (jobs.update).
def _start_dataflow(client: NativeClient, step: PlanStep, job: dict) -> str:
    args = _request_args(dataflow_request, job, {"dataflow_job_name": dataflow_job_name(step.job_name)}, client, step)
    body = args["body"]
    environment = body["launchParameter"]["environment"]
    try:  # the operator sends the executor's string; the API's field is an int32, as the workflow sends it
        body = {"launchParameter": {**body["launchParameter"], "environment": {
            **environment, "maxWorkers": int(environment["maxWorkers"])}}}
    except ValueError:
        raise StepError(f"job file of {step.job_name}: dataflow_max_workers is not a whole number") from None
    where = f"projects/{args['project_id']}/locations/{args['location']}"
    launched = client._google(step, f"launching Dataflow job {body['launchParameter']['jobName']}", "POST",
                              f"{ROOTS['dataflow']}{where}/flexTemplates:launch", body)
    job_id = (launched.get("job") or {}).get("id")
    if not job_id:
        raise StepError(f"Dataflow answered no job to the launch: {_shorten(str(launched))}")
    return f"{where}/jobs/{job_id}"


def _cancel_dataflow(client: NativeClient, step: PlanStep, job: str) -> None:
    client._google(step, f"cancelling Dataflow job {job}", "PUT", ROOTS["dataflow"] + job,
                   {"requestedState": "JOB_STATE_CANCELLED"})


# Dataform: compile the repository at `branch` with the quoted dates as vars
# (compilationResults.create), then invoke it for `tags` (workflowInvocations.create); polled by
# the invocation's state; cancelled with workflowInvocations.cancel.
def _start_dataform(client: NativeClient, step: PlanStep, job: dict) -> str:
    args = _request_args(dataform_request, job, {}, client, step)
    repository = f"projects/{args['project_id']}/locations/{args['region']}/repositories/{args['repository_id']}"
    compiled = client._google(step, f"compiling {repository}", "POST", f"{ROOTS['dataform']}{repository}/compilationResults",
                              camel(args["compilation_result"], keep=("vars",)))
    if not compiled.get("name"):
        raise StepError(f"Dataform answered no compilation result: {_shorten(str(compiled))}")
    if compiled.get("compilationErrors"):
        first = compiled["compilationErrors"][0]
        raise StepError(f"Dataform compilation of {args['repository_id']} failed: "
                        f"{_shorten(first.get('message', '') if isinstance(first, dict) else str(first))}")
    invocation = client._google(step, f"invoking {compiled['name']}", "POST",
                                f"{ROOTS['dataform']}{repository}/workflowInvocations",
                                {"compilationResult": compiled["name"], "invocationConfig": camel(args["invocation_config"])})
    name = invocation.get("name")
    if not name:
        raise StepError(f"Dataform answered no workflow invocation: {_shorten(str(invocation))}")
    return name


def _cancel_dataform(client: NativeClient, step: PlanStep, job: str) -> None:
    client._google(step, f"cancelling {job}", "POST", f"{ROOTS['dataform']}{job}:cancel", {})


# BigQuery saved query: definitions/<workflow_name>/<JOB_NAME>.sqlx read from the Dataform
# repository the workflow properties name (repositories.readFile), its config block dropped, the
# dates put in, inserted as a BATCH query job aef_<uuid> (jobs.insert); polled by status.state
# (DONE with an errorResult is a failure); cancelled with jobs.cancel, at the job's location.
def _start_bigquery(client: NativeClient, step: PlanStep, job: Optional[dict]) -> str:
    run = client._run_data(step)
    try:
        repository, path = sqlx_location({"job_name": step.job_name}, run)
    except ValueError as exc:
        raise StepError(str(exc)) from None
    read = client._google(step, f"reading {path} of {repository}", "GET",
                          f"{ROOTS['dataform']}{repository}:readFile?path={quote(path, safe='')}")
    try:
        sql = strip_config_block(base64.b64decode(read.get("contents", "")).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StepError(f"{path} of {repository}: {exc}") from None
    args = _request_args(bq_request, {}, {"job_name": step.job_name, "sql": sql}, client, step)
    project, job_id = args["project_id"], "aef_" + str(uuid.uuid4()).replace("-", "_")
    inserted = client._google(step, f"inserting BigQuery job {job_id}", "POST", f"{ROOTS['bigquery']}projects/{project}/jobs",
                              {"jobReference": {"projectId": project, "jobId": job_id}, "configuration": args["configuration"]},
                              accept=lambda status: status == 409)  # a retried insert that did reach BigQuery
    location = (inserted.get("jobReference") or {}).get("location")
    return f"projects/{project}/jobs/{job_id}" + (f"?location={quote(location)}" if location else "")


def _cancel_bigquery(client: NativeClient, step: PlanStep, job: str) -> None:
    name, _, location = job.partition("?")
    client._google(step, f"cancelling BigQuery job {name}", "POST",
                   f"{ROOTS['bigquery']}{name}/cancel" + (f"?{location}" if location else ""))


def _bigquery_state(answer: dict) -> tuple[str, str]:
    status = answer.get("status") or {}
    if status.get("state") == "DONE" and status.get("errorResult"):
        error = status["errorResult"]
        return "FAILED", f"{error.get('reason', '')}: {error.get('message', '')}"
    return str(status.get("state")), ""


STARTERS: dict[str, Callable] = {"dataproc": _start_dataproc, "dataflow": _start_dataflow, "dataform": _start_dataform,
                                 "bigquery": _start_bigquery}
CANCELLERS: dict[str, Callable] = {"dataproc": _cancel_dataproc, "dataflow": _cancel_dataflow,
                                   "dataform": _cancel_dataform, "bigquery": _cancel_bigquery}
STATES: dict[str, Callable[[dict], tuple[str, str]]] = {  # a polled resource's state word, and what explains it
    "dataproc": lambda answer: (str(answer.get("state")), answer.get("stateMessage") or ""),
    "dataflow": lambda answer: (str(answer.get("currentState")), ""),
    "dataform": lambda answer: (str(answer.get("state")), ""),
    "bigquery": _bigquery_state,
}
