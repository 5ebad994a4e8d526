"""The local engine: runs a Plan with the semantics of docs/semantics.md on one machine.

Levels run in order; the threads of a level run concurrently on worker threads (at most
`max_parallel` at once); the steps of a thread run in order. Every state change is committed
to the RunStore before the engine goes on, which is what makes `--resume` safe after a crash.
Waits go through one stop event, so Ctrl-C / SIGTERM ends every wait at once.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from ...plan import SETTLED_OK, Plan, PlanLevel, PlanStep, PlanThread
from .executors import ExecutorClient, StepError
from .store import RunStore, StoreError

STOP_GRACE_SECONDS = 10.0  # after a stop, how long calls in flight may take to return


class Interrupted(Exception):
    """The run was asked to stop while this step was under way."""


@dataclass
class StepRecord:
    """The live state of one step, mirrored in the store's `steps` row."""

    step: PlanStep
    level_id: str
    thread_id: str
    status: str = "pending"
    attempts: int = 0
    async_job_id: Optional[str] = None
    error: Optional[str] = None
    started_at: Optional[float] = None  # epoch seconds, latest attempt
    ended_at: Optional[float] = None
    polls: int = 0  # status polls of the current attempt
    reopen: Optional[tuple[int, float]] = None  # (attempt, its start) of a job to poll again on resume


@dataclass
class Progress:
    """Per level and per thread: status and times, for the progress view."""

    status: dict = field(default_factory=dict)  # level_id or (level_id, thread_id) -> status
    started: dict = field(default_factory=dict)
    ended: dict = field(default_factory=dict)

    def begin(self, key) -> None:
        self.status[key], self.started[key] = "running", time.time()

    def end(self, key, status: str) -> None:
        self.status[key], self.ended[key] = status, time.time()


class Engine:
    def __init__(self, plan: Plan, store: RunStore, run_id: str, records: dict[str, StepRecord],
                 client_factory: Callable[[Callable[[float], None]], ExecutorClient], *,
                 max_parallel: int = 20, time_scale: float = 1.0,
                 on_change: Callable[[StepRecord], None] = lambda record: None):
        self.plan, self.store, self.run_id, self.records = plan, store, run_id, records
        self.max_parallel, self.time_scale, self.on_change = max_parallel, time_scale, on_change
        self.stop_event = threading.Event()
        self.client = client_factory(self.sleep)
        self.progress = Progress()
        self.started_at = time.time()
        self.status = "running"
        self.store_failure: Optional[StoreError] = None  # set: the record cannot be written, stop

    # -- control --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_event.set()

    def sleep(self, seconds: float) -> None:
        """Wait on the scaled clock; a stop request ends the wait at once."""
        if self.stop_event.wait(max(seconds, 0.0)):
            raise Interrupted()

    # -- levels and threads ---------------------------------------------------------------------

    def run(self) -> str:
        """Run every level in order; returns and records succeeded, failed or interrupted.
        Raises StoreError when the run record could not be written: the run stopped at once."""
        for level in self.plan.levels:
            if self.stop_event.is_set():
                break
            if "failed" in self._run_level(level).values():
                break
        if self.store_failure is not None:
            self._stop_after_store_failure()
        self._settle_running()
        if all(r.status in SETTLED_OK for r in self.records.values()):
            self.status = "succeeded"
        else:
            self.status = "interrupted" if self.stop_event.is_set() else "failed"
        self.store.finish_run(self.run_id, self.status)
        return self.status

    def _stop_after_store_failure(self) -> None:
        """Record what can still be recorded (running steps interrupted), then raise."""
        self.status = "interrupted"
        try:
            self._settle_running()
            self.store.finish_run(self.run_id, "interrupted")
        except StoreError:
            pass  # the record keeps status running; its process is gone, so --resume accepts it
        assert self.store_failure is not None
        raise self.store_failure

    def _settle_running(self) -> None:
        for record in self.records.values():
            if record.status == "running":
                record.status, record.ended_at = "interrupted", time.time()
                self.on_change(record)
        self.store.interrupt_running(self.run_id)

    def _run_level(self, level: PlanLevel) -> dict[str, str]:
        """Run the level's threads on at most max_parallel workers; thread id -> outcome."""
        self.progress.begin(level.level_id)
        queue, outcomes = deque(level.threads), dict[str, str]()
        workers = [threading.Thread(target=self._worker, args=(level, queue, outcomes), daemon=True,
                                    name=f"levelflow-{level.level_id}-{n}")
                   for n in range(min(self.max_parallel, len(level.threads)))]
        for worker in workers:
            worker.start()
        self._join(workers)
        if "failed" in outcomes.values():
            status = "failed"
        elif len(outcomes) < len(level.threads) or "interrupted" in outcomes.values():
            status = "interrupted"
        else:
            status = "succeeded"
        self.progress.end(level.level_id, status)
        return outcomes

    def _join(self, workers: list[threading.Thread]) -> None:
        """Wait for the workers; after a stop, give calls in flight a grace period, no more."""
        deadline = None
        for worker in workers:
            while worker.is_alive():
                worker.join(0.1)
                if self.stop_event.is_set():
                    deadline = deadline or time.monotonic() + STOP_GRACE_SECONDS
                    if time.monotonic() > deadline:
                        return

    def _worker(self, level: PlanLevel, queue: deque, outcomes: dict) -> None:
        while not self.stop_event.is_set():
            try:
                thread = queue.popleft()
            except IndexError:
                return
            key = (level.level_id, thread.thread_id)
            self.progress.begin(key)
            try:
                outcome = self._run_thread(thread)
            except StoreError as exc:  # stop everything: no step or level starts unrecorded
                self.store_failure = self.store_failure or exc
                self.stop_event.set()
                outcome = "interrupted"
            self.progress.end(key, outcome)
            outcomes[thread.thread_id] = outcome

    def _run_thread(self, thread: PlanThread) -> str:
        """Steps in order, following NEXT; a failure (not continue-if-fail) ends the thread."""
        steps, path = thread.steps, thread.executed_path()
        for k, n in enumerate(path):
            record = self.records[steps[n].job_id]
            outcome = "succeeded" if record.status == "succeeded" else self._run_step(record)
            if outcome in ("failed", "interrupted"):
                return outcome
            following = path[k + 1] if k + 1 < len(path) else len(steps)  # NEXT jumps forward only
            for skipped in steps[n + 1:following]:
                self._set(self.records[skipped.job_id], "skipped")
        return "succeeded"

    # -- steps ----------------------------------------------------------------------------------

    def _set(self, record: StepRecord, status: str) -> None:
        record.status = status
        self.store.set_step_status(self.run_id, record.step.job_id, status)
        self.on_change(record)

    def _run_step(self, record: StepRecord) -> str:
        """Up to RETRIES + 1 attempts; returns succeeded, failed, continued or interrupted."""
        final_failure = "continued" if record.step.continue_if_fail else "failed"
        budget = record.step.retries + 1
        for number in range(budget):
            if self.stop_event.is_set():
                return "interrupted"
            try:
                if number == 0 and record.reopen:
                    self._poll_again(record)
                else:
                    self._attempt(record)
            except Interrupted:
                self._end_attempt(record, "interrupted", None, "interrupted")
                return "interrupted"
            except StoreError:
                raise
            except StepError as exc:
                last = number == budget - 1
                self._end_attempt(record, "failed", str(exc), final_failure if last else None)
                continue
            except Exception as exc:  # a bug or an unexpected library error must not hang the run
                self._end_attempt(record, "failed", f"unexpected error: {exc!r}", final_failure)
                return final_failure
            self._end_attempt(record, "succeeded", None, "succeeded")
            return "succeeded"
        return final_failure

    def _attempt(self, record: StepRecord) -> None:
        step = record.step
        record.attempts += 1
        record.status, record.async_job_id, record.error, record.polls = "running", None, None, 0
        record.started_at, record.ended_at = time.time(), None
        self.store.begin_attempt(self.run_id, step.job_id, record.attempts, record.started_at)
        self.on_change(record)
        if not self.client.polls(step):
            self.client.run_sync(step)
            return
        deadline = time.monotonic() + self._timeout(step)
        job = self.client.start(step)
        # Committed before the first poll: a resume polls this job instead of starting another.
        self.store.record_job_id(self.run_id, step.job_id, record.attempts, job)
        record.async_job_id = job
        self.on_change(record)
        self.sleep(step.wait_seconds * self.time_scale)
        self._poll(record, deadline)

    def _poll_again(self, record: StepRecord) -> None:
        """Resume: poll the job recorded by an earlier process, on its original time-out."""
        assert record.reopen is not None  # only called for a job to poll again
        attempt, started_at = record.reopen
        record.reopen = None
        record.attempts, record.status, record.error, record.polls = attempt, "running", None, 0
        record.started_at, record.ended_at = started_at, None
        self.store.resume_attempt(self.run_id, record.step.job_id, attempt)
        self.on_change(record)
        elapsed = time.time() - started_at
        self._poll(record, time.monotonic() + self._timeout(record.step) - elapsed)

    def _timeout(self, step: PlanStep) -> float:
        return step.timeout_minutes * 60 * self.time_scale

    def _poll(self, record: StepRecord, deadline: float) -> None:
        step, job = record.step, record.async_job_id
        assert job is not None  # polled only once a job id is recorded
        while True:
            record.polls += 1
            if self.client.is_done(step, job):
                return
            if time.monotonic() >= deadline:
                # a child workflow is cancelled, so that a retry never runs beside it
                cancelled = self.client.cancel(step, job)
                raise StepError(f"timed out: job {record.async_job_id} still running after "
                                f"{step.timeout_minutes:g} min (ASYNC_TIMEOUT_LOOP_IN_MINUTES){cancelled}")
            self.sleep(step.wait_seconds * self.time_scale)

    def _end_attempt(self, record: StepRecord, attempt_status: str, error: Optional[str],
                     step_status: Optional[str]) -> None:
        record.error = error
        if step_status is not None:
            record.status, record.ended_at = step_status, time.time()
        self.store.end_attempt(self.run_id, record.step.job_id, record.attempts, attempt_status,
                               record.polls, error, step_status)
        self.on_change(record)
