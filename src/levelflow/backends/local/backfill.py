"""Backfills (docs/backfills.md): one run of a pipeline per interval of a date range, each with
that interval's start_date / end_date, at most `max_concurrent` at a time, all recorded as one
backfill in the run record. What an interval's run is depends on the target (`IntervalRuns`):
a run of the local engine (`LocalRuns`), or an execution of the deployed Cloud Workflow
(`deployed.DeployedRuns`, `levelflow backfill --deployed`).

A backfill is resumable as a run is: its intervals and arguments are on record before any run
starts; `resume` skips the intervals whose run succeeded, resumes those whose run did not end
well (their succeeded steps are not run again, their jobs are polled again) and starts the
rest. A new backfill whose dates overlap one already recorded for the same pipeline is
refused, naming it (to resume it, or `force` to run those dates again).
"""
from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from ...errors import LevelflowError, Problem
from ...plan import Plan
from .runner import LocalRunOptions, describe_target, new_run_id, prepare_run, process_alive, target_label
from .store import RunStore

MAX_INTERVALS = 10_000  # a backfill is bounded: ten thousand runs is 27 years of days
EVERY = re.compile(r"([1-9]\d{0,3})(d|mo)")


def intervals(start: dt.date, end: dt.date, every: str) -> list[tuple[str, str]]:
    """[start, end] cut into intervals of `every` ("Nd": N days; "Nmo": N calendar months, the
    first and last clipped to the range), as (start_date, end_date) texts."""
    match = EVERY.fullmatch(every)
    if match is None:
        raise ValueError(f"--every must be a number of days or months, such as 1d, 7d or 1mo, got {every!r}")
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    count, unit = int(match.group(1)), match.group(2)
    found: list[tuple[str, str]] = []
    first = start
    while first <= end:
        if len(found) == MAX_INTERVALS:
            raise ValueError(f"more than {MAX_INTERVALS:,} intervals: backfill a shorter range, or longer intervals")
        last = first + dt.timedelta(days=count - 1) if unit == "d" else _month_end(first, count)
        last = min(last, end)
        found.append((first.isoformat(), last.isoformat()))
        first = last + dt.timedelta(days=1)
    return found


def _month_end(day: dt.date, months: int) -> dt.date:
    """The last day of the `months`-th calendar month counted from `day`'s (1: its own)."""
    index = day.year * 12 + day.month - 1 + months - 1
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, calendar.monthrange(year, month + 1)[1])


class IntervalWork(Protocol):
    """One interval's run, recorded and ready: a local Engine, or a deployed execution's poller."""
    run_id: str

    def run(self) -> str: ...  # to its end: succeeded | failed | interrupted

    def request_stop(self) -> None: ...


class IntervalRuns(Protocol):
    """What a backfill's intervals run on."""
    arguments: dict  # recorded with the backfill: the workflow_name / workflow_properties of every run

    def label(self) -> str: ...  # the target, as the record holds it (runs.executor)

    def prepare(self, arguments: dict, resume: Optional[str], backfill: tuple[str, int]) -> IntervalWork:
        """Record a new run of the interval (`arguments` with its dates), or reopen `resume`."""
        ...


class BackfillAborted(LevelflowError):
    """An interval's run met what every other one would meet too (the deployed workflow is not
    there, or may not be run): the backfill starts no further interval."""


@dataclass
class LocalRuns:
    """Each interval a run of the local engine, with `levelflow run`'s options."""
    plan: Plan
    store: RunStore
    options: LocalRunOptions

    @property
    def arguments(self) -> dict:
        return self.options.arguments

    @arguments.setter
    def arguments(self, value: dict) -> None:
        self.options = dataclasses.replace(self.options, arguments=value)

    def label(self) -> str:
        return target_label(self.plan, self.options)

    def prepare(self, arguments: dict, resume: Optional[str], backfill: tuple[str, int]) -> IntervalWork:
        return prepare_run(self.plan, self.store, dataclasses.replace(self.options, arguments=arguments), resume=resume,
                           force=True, backfill=backfill)


@dataclass
class IntervalState:
    """One interval, as the live view shows it."""
    position: int
    start_date: str
    end_date: str
    run_id: Optional[str] = None
    status: str = "pending"  # pending | running | succeeded | failed | interrupted
    work: Optional[IntervalWork] = None


@dataclass
class Backfill:
    plan: Plan
    store: RunStore
    runs: IntervalRuns
    max_concurrent: int = 1
    backfill_id: str = ""
    intervals: list[IntervalState] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    on_change: Callable[[IntervalState], None] = lambda interval: None
    aborted: Optional[BackfillAborted] = None  # why no further interval was started
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- recording -----------------------------------------------------------------------------

    def begin(self, start: dt.date, end: dt.date, every: str, force: bool = False) -> None:
        """Record a new backfill, refusing one that overlaps a recorded backfill of the pipeline."""
        try:
            cut = intervals(start, end, every)
        except ValueError as exc:
            raise LevelflowError([Problem(self.plan.source or self.plan.name, str(exc))]) from None
        for other in self.store.backfills(self.plan.name):
            if other["from_date"] <= end.isoformat() and start.isoformat() <= other["to_date"]:
                self._refuse_overlap(other, force)
        self.backfill_id = new_run_id("bf-")
        self.store.create_backfill(self.backfill_id, self.plan.name, self.plan.source, self.runs.label(),
                                   start.isoformat(), end.isoformat(), every, cut, self.runs.arguments)
        self.intervals = [IntervalState(n, first, last) for n, (first, last) in enumerate(cut)]

    def _refuse_overlap(self, other: dict, force: bool) -> None:
        where = f"backfill {other['backfill_id']} ({other['from_date']} to {other['to_date']}, {other['status']})"
        if other["status"] == "running" and process_alive(other["pid"]):
            raise self._problem(f"{where} overlaps these dates and is running in process {other['pid']}")
        if other["status"] != "succeeded":
            deployed = " --deployed" if _deployed(other["executor"]) else ""
            raise self._problem(f"{where} overlaps these dates and did not finish: continue it with "
                                f"`levelflow backfill {self.plan.source or self.plan.name}{deployed} --resume {other['backfill_id']}`")
        if not force:
            raise self._problem(f"{where} already ran these dates; add --force to run them again")

    def _problem(self, message: str) -> LevelflowError:
        return LevelflowError([Problem(str(self.store.path), message)])

    def reopen(self, backfill_id: str, force: bool = False) -> None:
        """Continue a recorded backfill: its intervals, arguments and target."""
        recorded = self.store.backfill(backfill_id)
        if recorded is None:
            raise self._problem(f"no backfill {backfill_id!r} in this state database (see `levelflow runs list`)")
        if recorded["pipeline"] != self.plan.name:
            raise self._problem(f"backfill {backfill_id} is of pipeline {recorded['pipeline']!r}, not {self.plan.name!r}")
        if recorded["status"] == "succeeded":
            raise self._problem(f"backfill {backfill_id} already succeeded: nothing to resume")
        if recorded["status"] == "running" and process_alive(recorded["pid"]):
            raise self._problem(f"backfill {backfill_id} is still running in process {recorded['pid']}")
        label = self.runs.label()
        if recorded["executor"] != label and (not force or _deployed(recorded["executor"]) != _deployed(label)):
            fix = ("Give the options it started with" if _deployed(recorded["executor"]) != _deployed(label) else
                   "Give the options it started with, or add --force")
            raise self._problem(f"backfill {backfill_id} started against {describe_target(recorded['executor'])}; this resume "
                                f"would use {describe_target(label)}. {fix}")
        self.backfill_id = backfill_id
        self.runs.arguments = json.loads(recorded["arguments"])
        runs = self.store.backfill_runs(backfill_id)
        self.intervals = []
        for n, (first, last) in enumerate(json.loads(recorded["intervals"])):
            run = runs.get(n)
            state = IntervalState(n, first, last, run["run_id"] if run else None, run["status"] if run else "pending")
            if state.status == "running":  # its process was killed: resumable
                state.status = "interrupted"
            self.intervals.append(state)
        self.store.reopen_backfill(backfill_id, label)

    # -- running -------------------------------------------------------------------------------

    def run(self) -> str:
        """Run every interval not yet succeeded; returns and records the backfill's status."""
        todo = [interval for interval in self.intervals if interval.status != "succeeded"]
        with ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="levelflow-backfill") as pool:
            list(pool.map(self._run_interval, todo))  # (re-raises what a run raised: a record that cannot be written)
        statuses = {interval.status for interval in self.intervals}
        status = ("succeeded" if statuses == {"succeeded"} else "failed" if self.aborted else
                  "interrupted" if self.stop_event.is_set() or statuses & {"pending", "interrupted"} else "failed")
        self.store.finish_backfill(self.backfill_id, status)
        return status

    def _run_interval(self, interval: IntervalState) -> None:
        if self.stop_event.is_set():
            return
        arguments = {**self.runs.arguments, "query_variables": {"start_date": interval.start_date,
                                                                "end_date": interval.end_date}}
        with self._lock:  # a stop asked meanwhile must reach this run too
            if self.stop_event.is_set():
                return
            work = self.runs.prepare(arguments, interval.run_id, (self.backfill_id, interval.position))
            interval.work, interval.run_id, interval.status = work, work.run_id, "running"
        self.on_change(interval)
        try:
            interval.status = work.run()
        except BackfillAborted as exc:
            interval.status = "failed"
            with self._lock:
                self.aborted = self.aborted or exc
            self.request_stop()
        self.on_change(interval)

    def request_stop(self) -> None:
        with self._lock:
            self.stop_event.set()
            for interval in self.intervals:
                if interval.work is not None:
                    interval.work.request_stop()

    def report(self) -> dict:
        report = backfill_report(self.store, self.backfill_id)
        if self.aborted is not None:
            report["error"] = self.aborted.problems[0].message
        return report


def _deployed(label: str) -> bool:
    """A target of deployed executions (deployed.DeployedRuns), not of local runs."""
    return label.startswith("workflows ")


def backfill_report(store: RunStore, backfill_id: str) -> dict:
    """A recorded backfill as data: its range and status, and each interval's run."""
    recorded = store.backfill(backfill_id)
    if recorded is None:
        raise LevelflowError([Problem(str(store.path), f"no backfill {backfill_id!r} in this state database "
                                                       "(see `levelflow runs list`)")])
    runs = store.backfill_runs(backfill_id)
    listed = []
    for n, (first, last) in enumerate(json.loads(recorded["intervals"])):
        run = runs.get(n)
        listed.append({"position": n, "start_date": first, "end_date": last, "run_id": run["run_id"] if run else None,
                       "status": run["status"] if run else "pending",
                       "steps": run["step_count"] if run else None, "succeeded_steps": run["succeeded_count"] if run else None})
        if _deployed(recorded["executor"]):  # its execution, and why it did not succeed
            listed[-1]["execution"] = run["first_job_id"] if run else None
            errors = [step["error"] for step in store.steps(run["run_id"]) if step["error"]] if run else []
            listed[-1]["error"] = errors[0] if errors and listed[-1]["status"] != "succeeded" else None
    return {"backfill_id": backfill_id, "pipeline": recorded["pipeline"], "source": recorded["source"],
            "executor": recorded["executor"], "status": recorded["status"], "from_date": recorded["from_date"],
            "to_date": recorded["to_date"], "every": recorded["every"], "resumes": recorded["resumes"],
            "state_db": str(store.path), "intervals": listed}

