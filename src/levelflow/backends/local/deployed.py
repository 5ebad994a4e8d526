"""Deployed backfills (docs/backfills.md, `levelflow backfill --deployed`): each interval is an
execution of the pipeline's Cloud Workflow as deployed (workflow <pipeline name> in
projects/<pProjectID>/locations/<pRegion>), started and polled through the Workflow Executions
REST API v1 (executions.create, executions.get) with application-default credentials.

The argument of an execution is the Terraform scheduler job's (terraform/schedules.tf):
{"workflow_name", "workflow_properties"}, plus the interval's dates as any run's arguments
carry them, `query_variables: {start_date, end_date}` (the generated workflow reads those before
its `dates` rule).

In the run record, an interval's run has one step, the deployed workflow (TYPE workflows, JOB_ID
the workflow's name), whose attempts are its executions: an attempt is committed with the
execution's full name as soon as executions.create answers. A resume so polls an execution left
ACTIVE again instead of starting another; a run whose execution ended FAILED, CANCELLED or
UNAVAILABLE (or that could not start one) gets a new execution, as a further attempt. A process
killed during the create call itself leaves no name: that interval is started again (the
execution the lost call may have started is not known; the labels say which backfill made it).

A stop (Ctrl-C, SIGTERM) ends the polling only: the executions go on in Google Cloud, and a
resume polls them again. Cancel one with `gcloud workflows executions cancel NAME`.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from ...errors import Problem
from ...plan import Plan
from .backfill import BackfillAborted
from .executors import EXECUTIONS_API, RUNNING_EXECUTION_STATES, StepError, _json_field, _shorten, retry_transient
from .native import GoogleApis, _google_message
from .runner import new_run_id
from .store import RunStore

POLL_SECONDS = 15.0  # between two reads of an execution still running (times --time-scale)
CALL_TIMEOUT_SECONDS = 60.0
STEP = {"level_id": "deployed", "thread_id": "execution", "position": 0, "type": "workflows"}


class Stopped(Exception):
    """A stop was asked while the poller waited."""


def deployed_arguments(plan: Plan, given: dict) -> dict:
    """Every execution's argument but its dates, as the scheduler job sends it: workflow_name
    (given, else the pipeline's), workflow_properties (given, else the schedule's, else {})."""
    scheduled = plan.schedule.workflow_properties if plan.schedule else None
    return {"workflow_name": given.get("workflow_name") or plan.name,
            "workflow_properties": given.get("workflow_properties", scheduled or {})}


@dataclass
class DeployedRuns:
    """The intervals of a `--deployed` backfill (backfill.IntervalRuns): executions of the
    deployed workflow, through Google's API, or under `google_api_url` (URL/<host>/<path>)."""
    plan: Plan
    store: RunStore
    arguments: dict  # deployed_arguments()
    google_api_url: Optional[str] = None
    time_scale: float = 1.0
    apis: GoogleApis = field(init=False)
    workflow: str = field(init=False)
    where: str = field(init=False)  # projects/<p>/locations/<r>
    parent: str = field(init=False)  # .../workflows/<name>

    def __post_init__(self) -> None:
        params = self.plan.platform()
        self.apis = GoogleApis(self.google_api_url, "to start executions of the deployed workflow")
        self.workflow = self.plan.name
        self.where = f"projects/{params.pProjectID}/locations/{params.pRegion}"
        self.parent = f"{self.where}/workflows/{self.workflow}"

    def url(self, name: str) -> str:
        """Google's URL of a resource of the API (GoogleApis.send maps it under google_api_url)."""
        return f"{EXECUTIONS_API}/{name}"

    def label(self) -> str:
        return f"workflows {self.apis.url(self.url(self.parent))}"

    def prepare(self, arguments: dict, resume: Optional[str], backfill: tuple[str, int]) -> "DeployedRun":
        job = self.workflow
        if resume is None:
            run_id = new_run_id()
            self.store.create_run(run_id, self.plan.name, self.plan.source, self.label(),
                                  [[STEP["level_id"], STEP["thread_id"], job, job, "workflows", None, None, job]],
                                  arguments, [{"job_id": job, "job_name": job, **STEP}], backfill)
            return DeployedRun(self, run_id, arguments, backfill[0])
        recorded = self.store.run(resume)
        assert recorded is not None  # a run of this backfill, read from the record
        self.store.interrupt_running(resume)  # what a killed process left running
        open_jobs = self.store.open_jobs(resume)
        self.store.reset_unfinished(resume)
        self.store.reopen_run(resume, self.label())
        attempts = max((step["attempts"] for step in self.store.steps(resume)), default=0)
        run = DeployedRun(self, resume, json.loads(recorded["arguments"]), backfill[0], attempts)
        if job in open_jobs:  # its execution was left running: polled again, under its attempt
            run.attempt, run.execution, _started = open_jobs[job]
        return run

    def refused(self, status: int, text: str) -> BackfillAborted:
        """403 / 404 to a create: no interval can start; say where and why."""
        answer = f"the Workflow Executions API answered HTTP {status} {_google_message(text)}"
        if status == 404:
            message = (f"workflow {self.workflow} is not deployed in {self.where} ({answer}); deploy it (terraform "
                       "apply), or check pProjectID and pRegion in the platform parameters")
        else:
            message = (f"may not start executions of workflow {self.workflow} in {self.where} ({answer}); the "
                       "application-default credentials need roles/workflows.invoker there (and the workflow must be deployed)")
        return BackfillAborted([Problem(self.plan.source or self.plan.name, message)])


class DeployedRun:
    """One interval: its execution started (or the one on record), polled to its end."""

    def __init__(self, runs: DeployedRuns, run_id: str, argument: dict, backfill_id: str, attempts: int = 0):
        self.runs, self.run_id, self.argument, self.backfill_id = runs, run_id, argument, backfill_id
        self.attempt = attempts  # the latest attempt's number (one per execution)
        self.execution: Optional[str] = None  # its full name, once started (or read from the record)
        self.state = ""  # the execution's state as last read, for the live view
        self._stop = threading.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds * self.runs.time_scale):
            raise Stopped()

    def _send(self, what: str, method: str, url: str, body: Optional[dict]) -> tuple[int, str]:
        return retry_transient(what, lambda: self.runs.apis.send(method, url, body, CALL_TIMEOUT_SECONDS), self._sleep)

    def run(self) -> str:
        store, job = self.runs.store, self.runs.workflow
        try:
            if self.execution is None:
                if self._stop.is_set():
                    raise Stopped()
                self.attempt += 1
                started = time.time()
                try:
                    self.execution = self._create()
                except (StepError, BackfillAborted) as exc:
                    store.begin_attempt(self.run_id, job, self.attempt, started)
                    self._end("failed", exc.problems[0].message if isinstance(exc, BackfillAborted) else str(exc))
                    if isinstance(exc, BackfillAborted):
                        raise
                    return "failed"
                store.begin_attempt(self.run_id, job, self.attempt, started, async_job_id=self.execution)
            else:
                store.resume_attempt(self.run_id, job, self.attempt)
            return self._poll(self.execution)
        except Stopped:
            store.interrupt_running(self.run_id)
            store.finish_run(self.run_id, "interrupted")
            return "interrupted"

    def _create(self) -> str:
        runs = self.runs
        # `argument` is JSON text (the Execution resource); the labels say which backfill started it
        body = {"argument": json.dumps(self.argument), "labels": {"levelflow-backfill": self.backfill_id}}
        status, text = self._send(f"starting an execution of workflow {runs.workflow}", "POST",
                                  runs.url(f"{runs.parent}/executions"), body)
        if status in (403, 404):
            raise runs.refused(status, text)
        name = _json_field(text, "name") if status == 200 else None
        if not isinstance(name, str) or not name.startswith(f"{runs.parent}/executions/"):
            raise StepError(f"could not start an execution of workflow {runs.workflow} in {runs.where}: "
                            f"HTTP {status} {_google_message(text)}")
        self.state = "ACTIVE"
        return name

    def _poll(self, name: str) -> str:
        polls = 0
        while True:
            try:
                status, text = self._send(f"reading execution {name}", "GET", self.runs.url(name), None)
            except StepError as exc:  # the API stays out of reach: the execution goes on, a resume polls it again
                return self._end("interrupted", str(exc), polls)
            polls += 1
            state = _json_field(text, "state") if status == 200 else None
            if isinstance(state, str):
                self.state = state
            if state in RUNNING_EXECUTION_STATES:
                self._sleep(POLL_SECONDS)
                continue
            if state == "SUCCEEDED":
                return self._end("succeeded", None, polls)
            if state in ("FAILED", "CANCELLED", "UNAVAILABLE"):
                return self._end("failed", f"execution {name} ended {state}{_why(text)}", polls)
            if status == 404:
                return self._end("failed", f"execution {name} is not found (HTTP 404 {_google_message(text)})", polls)
            self._end("interrupted", f"could not read execution {name}: HTTP {status} {_google_message(text)}", polls)
            if status == 403:
                raise self.runs.refused(status, text)
            return "interrupted"

    def _end(self, status: str, error: Optional[str], polls: int = 0) -> str:
        """The attempt's, the step's and the run's end (interrupted: its execution is polled again on resume)."""
        store = self.runs.store
        store.end_attempt(self.run_id, self.runs.workflow, self.attempt, status, polls, error, status)
        store.finish_run(self.run_id, status)
        return status


def _why(text: str) -> str:
    """What an ended execution says of its end: error.payload (the workflow's raised value: a
    levelflow report's message when it has one), or stateError.details."""
    error = _json_field(text, "error") or {}
    payload = error.get("payload", "") if isinstance(error, dict) else ""
    try:
        raised = json.loads(payload)
    except (TypeError, ValueError):
        raised = payload
    if isinstance(raised, dict) and isinstance(raised.get("message"), str):
        payload = raised["message"]
    state_error = _json_field(text, "stateError") or {}
    detail = payload or (state_error.get("details", "") if isinstance(state_error, dict) else "")
    return f": {_shorten(str(detail))}" if detail else ""
