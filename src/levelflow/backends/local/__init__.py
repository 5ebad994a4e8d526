"""The local engine: run a pipeline on this machine, recorded in SQLite, resumable.

    engine.py     levels, threads (worker threads) and steps, with docs/semantics.md
    executors.py  the executor protocol over HTTP, or over the built-in simulator
    store.py      the SQLite run record (runs, steps, attempts), written ahead of every change
    runner.py     new and resumed runs, signal handling
    native.py     native step mode: the steps call Google's APIs with application-default credentials
    backfill.py   one run per interval of a date range, recorded as one backfill
    deployed.py   a backfill's intervals as executions of the deployed Cloud Workflow (--deployed)
    report.py     a run's result as data;  view.py  live progress and the summary table
"""
from .engine import Engine, StepRecord
from .executors import Endpoints, ExecutorClient, HttpTransport, SimulatedTransport, StepError
from .report import run_report
from .runner import DEFAULT_MAX_PARALLEL, LocalRunOptions, describe_target, prepare_run, stop_on_signals, target_label
from ...plan import STEP_STATUSES
from .store import RunStore, default_state_path

__all__ = [
    "DEFAULT_MAX_PARALLEL", "Endpoints", "Engine", "ExecutorClient", "HttpTransport", "LocalRunOptions",
    "RunStore", "STEP_STATUSES", "SimulatedTransport", "StepError", "StepRecord", "default_state_path",
    "describe_target", "prepare_run", "run_local", "run_report", "stop_on_signals", "target_label",
]


def run_local(plan, state_path, options: LocalRunOptions | None = None, *, resume: str | None = None,
              on_change=lambda record: None) -> dict:
    """Run (or resume) a plan to its end and return its report (see `run_report`)."""
    store = RunStore(state_path)
    try:
        engine = prepare_run(plan, store, options or LocalRunOptions(), resume=resume, on_change=on_change)
        with stop_on_signals(engine):
            engine.run()
        return run_report(store, engine.run_id)
    finally:
        store.close()
