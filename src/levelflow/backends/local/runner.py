"""Setting up a local run (new or resumed) and stopping it on signals."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import secrets
import signal
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

from ...errors import LevelflowError, Problem
from ...plan import Plan
from ...protocol import is_loopback
from ...scenario import Scenario
from ...native import native_problems
from .engine import Engine, StepRecord
from .executors import (EXECUTIONS_API, Endpoints, ExecutorClient, HttpTransport, RunArguments, SimulatedTransport,
                        WorkflowExecutionsApi)
from .native import GoogleApis, NativeClient
from .store import RunStore

DEFAULT_MAX_PARALLEL = 20


class Stoppable(Protocol):
    def request_stop(self) -> None: ...
GOOGLE_APIS = "https://googleapis.com"  # how a native run's target is recorded: Google's own APIs


@dataclass(frozen=True)
class LocalRunOptions:
    executor_url: Optional[str] = None  # base URL replacing https://<region>-<project>.cloudfunctions.net
    scenario: Optional[Scenario] = None  # set: the built-in simulator instead of HTTP
    scenario_label: str = "default scenario"
    max_parallel: int = DEFAULT_MAX_PARALLEL
    time_scale: float = 1.0
    arguments: dict = field(default_factory=dict)  # workflow_name, query_variables, workflow_properties
    executions_api: str = EXECUTIONS_API  # workflows steps on Google Cloud
    step_mode: str = "functions"  # or "native": steps call Google's APIs themselves (native.py)
    google_api_url: Optional[str] = None  # native: a base URL replacing https://<host> of Google's APIs (a fake)
    jobs_dir: Optional[Path] = None  # native: a local copy of the jobs bucket, read instead of Cloud Storage

    @property
    def native(self) -> bool:
        return self.step_mode == "native"

    @property
    def simulated(self) -> bool:
        return self.scenario is not None


def new_run_id(prefix: str = "") -> str:
    return f"{prefix}{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def structure(plan: Plan) -> list[list]:
    """What a resumed run must still match: every step's level, thread, JOB_ID, JOB_NAME, TYPE
    and executors (a job recorded for one executor is never polled through another)."""
    return [[level.level_id, thread.thread_id, step.job_id, step.job_name, step.type, step.executor,
             step.status_executor, step.workflow_id]
            for level in plan.levels for thread in level.threads for step in thread.steps]


def _problem(plan: Plan, message: str) -> LevelflowError:
    return LevelflowError([Problem(plan.source or plan.name, message)])


def check_runnable(plan: Plan, options: LocalRunOptions) -> None:
    if plan.params is None:
        raise _problem(plan, "platform parameters are needed to run a pipeline (--params FILE)")
    if options.native and (problems := native_problems(plan, options.jobs_dir)):
        raise LevelflowError(problems)


def target_label(plan: Plan, options: LocalRunOptions) -> str:
    """What a run talks to, as recorded with it: `simulate <scenario>`, `http <intermediate URL>`
    or, in native mode, `google <the APIs' base URL>`."""
    if options.simulated:
        return f"simulate {options.scenario_label}"
    if options.native:
        return f"google {options.google_api_url or GOOGLE_APIS}"
    return f"http {Endpoints(plan, options.executor_url).intermediate}"


def describe_target(label: str) -> str:
    """A recorded target in words: the simulator, a local double, or the deployed functions."""
    kind, _, where = label.partition(" ")
    if kind == "workflows":  # a deployed backfill's executions (deployed.py)
        return f"the deployed workflow {where} (Workflow Executions API{'; this machine: a fake' if is_loopback(where) else ''})"
    if kind == "simulate":
        return f"the built-in simulator ({where})"
    if kind == "google":
        if where == GOOGLE_APIS:
            return "Google's APIs, with application-default credentials (native mode)"
        return f"Google's APIs under {where} (native mode{': this machine, a fake' if is_loopback(where) else ''})"
    host = urllib.parse.urlsplit(where).hostname or ""
    if is_loopback(where):
        return f"the executors at {where} (this machine: a stub or local double)"
    if host.endswith(".cloudfunctions.net") or host.endswith(".run.app"):
        return f"the deployed functions on Google Cloud ({where})"
    return f"the executors at {where}"


def _fresh_records(plan: Plan) -> dict[str, StepRecord]:
    return {step.job_id: StepRecord(step, level.level_id, thread.thread_id)
            for level in plan.levels for thread in level.threads for step in thread.steps}


def _new_run(plan: Plan, store: RunStore, label: str, arguments: RunArguments,
             backfill: tuple[Optional[str], Optional[int]]) -> tuple[str, dict[str, StepRecord]]:
    run_id = new_run_id()
    records = _fresh_records(plan)
    rows = [{"job_id": r.step.job_id, "job_name": r.step.job_name, "level_id": r.level_id,
             "thread_id": r.thread_id, "position": n, "type": r.step.type}
            for n, r in enumerate(records.values())]
    store.create_run(run_id, plan.name, plan.source, label, structure(plan), dataclasses.asdict(arguments), rows, backfill)
    return run_id, records


def process_alive(pid: Optional[int]) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _resumed_run(plan: Plan, store: RunStore, run_id: str, label: str, force: bool) -> dict[str, StepRecord]:
    """Succeeded steps stay done; jobs with a recorded id are polled again; the rest re-run.
    Against the target the run started with: its jobs exist there only (another target would
    be asked about job ids it never gave, and would start the other steps for real)."""
    run = store.run(run_id)
    where = str(store.path)
    if run is None:
        raise LevelflowError([Problem(where, f"no run {run_id!r} in this state database (see `levelflow runs list`)")])
    if run["status"] == "succeeded":
        raise LevelflowError([Problem(where, f"run {run_id} already succeeded: nothing to resume")])
    if run["status"] == "running" and process_alive(run["pid"]):
        raise LevelflowError([Problem(where, f"run {run_id} is still running in process {run['pid']}")])
    if json.loads(run["structure"]) != structure(plan):
        raise _problem(plan, f"this definition's levels, threads or steps differ from run {run_id}'s "
                             f"(pipeline {run['pipeline']!r}); a run can only be resumed with the definition it started with")
    if run["executor"] != label and not force:
        raise LevelflowError([Problem(where, f"run {run_id} started against {describe_target(run['executor'])}; this resume "
                                             f"would use {describe_target(label)}. Give the options it started with (the "
                                             "`resume with:` line it printed), or add --force to continue it there "
                                             "(the jobs it started are unknown to another target)")])
    store.interrupt_running(run_id)  # what a killed process left running
    open_jobs = store.open_jobs(run_id)
    store.reset_unfinished(run_id)
    store.reopen_run(run_id, label)
    records = _fresh_records(plan)
    for row in store.steps(run_id):
        record = records[row["job_id"]]
        record.attempts = row["attempts"]
        if row["status"] == "succeeded":
            record.status, record.async_job_id = "succeeded", row["async_job_id"]
            record.started_at, record.ended_at = row["started_at"], row["ended_at"]
        elif row["job_id"] in open_jobs:
            attempt, job, started_at = open_jobs[row["job_id"]]
            record.reopen, record.async_job_id = (attempt, started_at), job
    return records


def prepare_run(plan: Plan, store: RunStore, options: LocalRunOptions, *, resume: Optional[str] = None,
                force: bool = False, on_change: Callable[[StepRecord], None] = lambda record: None,
                backfill: tuple[Optional[str], Optional[int]] = (None, None)) -> Engine:
    """Record a new run (or reopen `resume`; `force`: even against another target than the
    one it started with) and return the engine ready to run it; `backfill`: (backfill id,
    interval position) of a run a backfill starts."""
    check_runnable(plan, options)
    label = target_label(plan, options)
    if resume:
        run_id, records = resume, _resumed_run(plan, store, resume, label, force)
        # The dates and properties the run started with, even when resumed another day.
        recorded = store.run(resume)
        assert recorded is not None  # _resumed_run checked it exists
        arguments = RunArguments(**json.loads(recorded["arguments"]))
    else:
        try:
            arguments = RunArguments.resolve(plan, options.arguments)
        except ValueError as exc:
            raise _problem(plan, f"execution arguments: {exc}") from None
        run_id, records = _new_run(plan, store, label, arguments, backfill)

    endpoints = Endpoints(plan, options.executor_url)

    def client_factory(sleep):
        if options.native:
            apis = GoogleApis(options.google_api_url)
            return NativeClient(HttpTransport(), endpoints, run_id, sleep, arguments, options.time_scale,
                                WorkflowExecutionsApi(apis.url(options.executions_api)), apis=apis, jobs_dir=options.jobs_dir)
        if options.simulated:
            transport = SimulatedTransport(options.scenario, options.time_scale, plan.platform().pFunctionIntermediateName)
            executions = WorkflowExecutionsApi(EXECUTIONS_API, sender=transport)
        else:
            transport = HttpTransport()
            executions = WorkflowExecutionsApi(_executions_root(endpoints, options))
        return ExecutorClient(transport, endpoints, run_id, sleep, arguments, options.time_scale, executions)

    return Engine(plan, store, run_id, records, client_factory, max_parallel=options.max_parallel,
                  time_scale=options.time_scale, on_change=on_change)


def _executions_root(endpoints: Endpoints, options: LocalRunOptions) -> str:
    """Google's Workflow Executions API, or the double's under a base URL (`<base>/v1`)."""
    if options.executions_api != EXECUTIONS_API or endpoints.base is None:
        return options.executions_api
    return endpoints.base + "/v1"


@contextlib.contextmanager
def stop_on_signals(engine: Stoppable) -> Iterator[list[int]]:
    """SIGINT / SIGTERM ask the engine (or a backfill, which stops each of its runs) to stop
    cleanly; yields the signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, _frame):
        received.append(signum)
        engine.request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
