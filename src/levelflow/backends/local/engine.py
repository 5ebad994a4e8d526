"""The local engine: runs a Plan with the semantics of docs/semantics.md on one machine.

Levels run in order; the threads of a level run concurrently on worker threads (at most
`max_parallel` at once, kept from level to level: a pool); the steps of a thread run in order.
Every state change is committed to the RunStore before the engine acts on it (calls an
executor, waits, or a worker leaves its level), which is what makes `--resume` safe after a
crash; the changes made between two actions are one commit (store.py says why that is safe).
Waits go through one stop event, so Ctrl-C / SIGTERM ends every wait at once.
"""
from __future__ import annotations

import contextlib
import gc
import queue
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from ...plan import SETTLED_OK, Plan, PlanLevel, PlanStep, PlanThread
from .executors import ExecutorClient, StepError
from .store import Batch, RunStore, StoreError

STOP_GRACE_SECONDS = 10.0  # after a stop, how long calls in flight may take to return


@contextlib.contextmanager
def _collector_skips_what_exists():
    """Let the garbage collector's full passes skip the objects that exist when a run starts
    (the plan, its records, the caller's own), which all outlive the run: each full pass of a
    10,000-step run would traverse them again, a twentieth of the run's time. What the run makes is
    collected as usual. Afterwards they are ordinary old objects again (for every run in the
    process, when several overlap: freezing is per process, and changes nothing but the cost)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
    call_retries: int = 0  # calls of the current attempt retried after a transient fault
    last_retry: Optional[str] = None  # what the last of them met
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


class WorkerPool:
    """Worker threads kept across levels. Starting an OS thread costs about as much as a level
    of short steps (more while other threads hold the interpreter), and a kept thread keeps its
    HTTP connections alive. Threads are started only when no idle one is left, so there are never
    more than the most workers a level asked for at once (plus any abandoned after a stop)."""

    def __init__(self, name: str = "levelflow-worker"):
        self._name = name
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, work: Callable[[], None]) -> threading.Event:
        """Run `work` on a pool thread; the event is set when it has returned (or raised)."""
        done = threading.Event()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._started += 1
                threading.Thread(target=self._serve, daemon=True, name=f"{self._name}-{self._started}").start()
        self._tasks.put((work, done))
        return done

    def _serve(self) -> None:
        while (task := self._tasks.get()) is not None:
            work, done = task
            try:
                work()
            except Exception:  # a bug: reported as an ended thread's would be; the thread serves on
                traceback.print_exc()
            finally:
                with self._lock:
                    self._idle += 1  # counted before `done`: the next level reuses this thread
                done.set()

    def close(self) -> None:
        """Let every thread end once its current work (if any) has returned."""
        with self._lock:
            count = self._started
        for _ in range(count):
            self._tasks.put(None)


class PipelineClock:
    """Seconds of pipeline time since a step's job started, against which its time-out counts:
    real time divided by --time-scale, so that a time-out keeps its meaning at any scale, or,
    at scale 0 where nothing waits, the waits the step would have made (a 45 min time-out with
    30 s polls is 90 polls, as in Cloud Workflows)."""

    def __init__(self, time_scale: float, already: float = 0.0):
        self.scale, self.already, self.start, self.waited = time_scale, already, time.monotonic(), 0.0

    def elapsed(self) -> float:
        if self.scale > 0:
            return self.already + (time.monotonic() - self.start) / self.scale
        return self.already + self.waited


class Engine:
    def __init__(self, plan: Plan, store: RunStore, run_id: str, records: dict[str, StepRecord],
                 client_factory: Callable[[Callable[[float], None]], ExecutorClient], *,
                 max_parallel: int = 20, time_scale: float = 1.0,
                 on_change: Callable[[StepRecord], None] = lambda record: None):
        self.plan, self.store, self.run_id, self.records = plan, store, run_id, records
        self.max_parallel, self.time_scale, self.on_change = max_parallel, time_scale, on_change
        self.stop_event = threading.Event()
        self.client = client_factory(self.sleep)
        self.client.on_retry = self._retried
        self.progress = Progress()
        self.started_at = time.time()
        self.status = "running"
        self.store_failure: Optional[StoreError] = None  # set: the record cannot be written, stop
        self.pool = WorkerPool()
        self._local = threading.local()  # .batch: the worker's changes not committed yet

    # -- control --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_event.set()

    def sleep(self, seconds: float) -> None:
        """Wait on the scaled clock; a stop request ends the wait at once. A worker's changes
        are committed before it waits (a back-off while starting a job shows the step running)."""
        if seconds <= 0:  # no wait (time scale 0): Event.wait(0) would still make a lock to wait on
            stopped = self.stop_event.is_set()
        else:
            batch = getattr(self._local, "batch", None)
            if batch:
                self.store.commit(batch)
            stopped = self.stop_event.wait(seconds)
        if stopped:
            raise Interrupted()

    # -- levels and threads ---------------------------------------------------------------------

    def run(self) -> str:
        """Run every level in order; returns and records succeeded, failed or interrupted.
        Raises StoreError when the run record could not be written: the run stopped at once."""
        try:
            with _collector_skips_what_exists():
                self._run_levels()
        finally:
            self.pool.close()
        if self.store_failure is not None:
            self._stop_after_store_failure()
        self._settle_running()
        if all(r.status in SETTLED_OK for r in self.records.values()):
            self.status = "succeeded"
        else:
            self.status = "interrupted" if self.stop_event.is_set() else "failed"
        if self.status == "failed":  # what the failure left unreached: not_started, as Cloud Workflows reports it
            for record in self.records.values():
                if record.status == "pending":
                    record.status = "not_started"
        self.store.finish_run(self.run_id, self.status)
        return self.status

    def _run_levels(self) -> None:
        for level in self.plan.levels:
            if self.stop_event.is_set():
                return
            if "failed" in self._run_level(level).values():
                return

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
        threads, outcomes = deque(level.threads), dict[str, str]()
        workers = [self.pool.submit(lambda: self._worker(level, threads, outcomes))
                   for _ in range(min(self.max_parallel, len(level.threads)))]
        self._join(workers)
        if "failed" in outcomes.values():
            status = "failed"
        elif len(outcomes) < len(level.threads) or "interrupted" in outcomes.values():
            status = "interrupted"
        else:
            status = "succeeded"
        self.progress.end(level.level_id, status)
        return outcomes

    def _join(self, workers: list[threading.Event]) -> None:
        """Wait for the workers; after a stop, give calls in flight a grace period, no more."""
        deadline = None
        for worker in workers:
            while not worker.wait(0.1):
                if self.stop_event.is_set():
                    deadline = deadline or time.monotonic() + STOP_GRACE_SECONDS
                    if time.monotonic() > deadline:
                        return

    def _worker(self, level: PlanLevel, threads: deque, outcomes: dict) -> None:
        batch = self._local.batch = Batch()  # committed before the worker's next action
        try:
            while not self.stop_event.is_set():
                try:
                    thread = threads.popleft()
                except IndexError:
                    return
                key = (level.level_id, thread.thread_id)
                self.progress.begin(key)
                try:
                    outcome = self._run_thread(thread, batch)
                except StoreError as exc:
                    outcome = self._store_failed(exc)
                self.progress.end(key, outcome)
                outcomes[thread.thread_id] = outcome
        finally:
            try:
                self.store.commit(batch)  # the worker leaves the level: what it did is on record
            except StoreError as exc:
                self._store_failed(exc)

    def _store_failed(self, exc: StoreError) -> str:
        """Stop everything: no step or level starts unrecorded."""
        self.store_failure = self.store_failure or exc
        self.stop_event.set()
        return "interrupted"

    def _run_thread(self, thread: PlanThread, batch: Batch) -> str:
        """Steps in order, following NEXT; a failure (not continue-if-fail) ends the thread."""
        steps, path = thread.steps, thread.executed_path()
        for k, n in enumerate(path):
            record = self.records[steps[n].job_id]
            outcome = "succeeded" if record.status == "succeeded" else self._run_step(record, batch)
            if outcome in ("failed", "interrupted"):
                return outcome
            following = path[k + 1] if k + 1 < len(path) else len(steps)  # NEXT jumps forward only
            for skipped in steps[n + 1:following]:
                self._set(self.records[skipped.job_id], "skipped", batch)
        return "succeeded"

    # -- steps ----------------------------------------------------------------------------------

    def _set(self, record: StepRecord, status: str, batch: Batch) -> None:
        record.status = status
        self.store.set_step_status(self.run_id, record.step.job_id, status, batch)
        self.on_change(record)

    def _run_step(self, record: StepRecord, batch: Batch) -> str:
        """Up to RETRIES + 1 attempts; returns succeeded, failed, continued or interrupted."""
        final_failure = "continued" if record.step.continue_if_fail else "failed"
        budget = record.step.retries + 1
        for number in range(budget):
            if self.stop_event.is_set():
                return "interrupted"
            try:
                if number == 0 and record.reopen:
                    self._poll_again(record, batch)
                else:
                    self._attempt(record, batch)
            except Interrupted:
                self._end_attempt(record, "interrupted", None, "interrupted", batch)
                return "interrupted"
            except StoreError:
                raise
            except StepError as exc:
                last = number == budget - 1
                self._end_attempt(record, "failed", str(exc), final_failure if last else None, batch)
                continue
            except Exception as exc:  # a bug or an unexpected library error must not hang the run
                self._end_attempt(record, "failed", f"unexpected error: {exc!r}", final_failure, batch)
                return final_failure
            self._end_attempt(record, "succeeded", None, "succeeded", batch)
            return "succeeded"
        return final_failure

    def _attempt(self, record: StepRecord, batch: Batch) -> None:
        step = record.step
        record.attempts += 1
        record.status, record.async_job_id, record.error, record.polls = "running", None, None, 0
        record.call_retries, record.last_retry = 0, None
        record.started_at, record.ended_at = time.time(), None
        begun = batch.mark()
        self.store.begin_attempt(self.run_id, step.job_id, record.attempts, record.started_at, batch)
        if self._past_deadline():
            raise self._deadline_error(": the step was not started")
        polled = self.client.polls(step)
        if not polled or not batch.replayable:
            # A sync call: committed before it, with what came before, so that another process
            # reading the record sees the step running through a long call. Before starting a
            # job, only what a resume could not redo (a sync step's end) must be committed first.
            self.store.commit(batch)
        self.on_change(record)
        if not polled:
            self.client.run_sync(step)
            return
        clock = PipelineClock(self.time_scale)
        job = self.client.start(step)
        # Committed before the first poll, with the attempt's start (and the previous step's end)
        # when the start call did not wait: a resume polls this job instead of starting another.
        # A crash during the start call leaves no job id on record, as before: the resume starts
        # the step again (a job the lost call may have started is the executor's, as always).
        if batch.rewind(begun):  # the attempt's start is not on record yet: recorded with its job id
            self.store.begin_attempt(self.run_id, step.job_id, record.attempts, record.started_at, batch, job)
        else:
            self.store.record_job_id(self.run_id, step.job_id, record.attempts, job, batch)
        self.store.commit(batch)
        record.async_job_id = job
        self.on_change(record)
        self._wait(step, clock)
        self._poll(record, clock)

    def _poll_again(self, record: StepRecord, batch: Batch) -> None:
        """Resume: poll the job recorded by an earlier process, on its original time-out."""
        assert record.reopen is not None  # only called for a job to poll again
        attempt, started_at = record.reopen
        record.reopen = None
        record.attempts, record.status, record.error, record.polls = attempt, "running", None, 0
        record.call_retries, record.last_retry = 0, None
        record.started_at, record.ended_at = started_at, None
        self.store.resume_attempt(self.run_id, record.step.job_id, attempt, batch)
        self.store.commit(batch)
        self.on_change(record)
        # the time the job already ran, in pipeline time (unknown at scale 0, where nothing waits)
        already = (time.time() - started_at) / self.time_scale if self.time_scale > 0 else 0.0
        self._poll(record, PipelineClock(self.time_scale, already))

    def _retried(self, step: PlanStep, problem: str) -> None:
        """A call of `step` met a transient fault and is tried again: counted, and shown."""
        record = self.records[step.job_id]
        record.call_retries, record.last_retry = record.call_retries + 1, problem
        self.on_change(record)

    def _wait(self, step: PlanStep, clock: "PipelineClock") -> None:
        self.sleep(step.wait_seconds * self.time_scale)
        clock.waited += step.wait_seconds
        self._local.waited = getattr(self._local, "waited", 0.0) + step.wait_seconds

    def _pipeline_seconds(self) -> float:
        """How long the run has gone, in pipeline time: real time over the time scale, or, at
        scale 0 (no waits), the waits this worker thread has counted (each branch its own time,
        as in the workflow)."""
        if self.time_scale > 0:
            return (time.time() - self.started_at) / self.time_scale
        return getattr(self._local, "waited", 0.0)

    def _past_deadline(self) -> bool:
        deadline = self.plan.deadline_minutes
        return deadline is not None and self._pipeline_seconds() >= deadline * 60

    def _deadline_error(self, what: str) -> StepError:
        return StepError(f"the run's deadline ({self.plan.deadline_minutes:g} min, deadline_minutes) was exceeded{what}")

    def _poll(self, record: StepRecord, clock: "PipelineClock") -> None:
        step, job = record.step, record.async_job_id
        assert job is not None  # polled only once a job id is recorded
        while True:
            record.polls += 1
            if self.client.is_done(step, job):
                return
            if self._past_deadline():
                raise self._deadline_error(f": job {job} still running{self.client.cancel(step, job)}")
            if clock.elapsed() >= step.timeout_minutes * 60:
                # a child workflow is cancelled, so that a retry never runs beside it
                cancelled = self.client.cancel(step, job)
                raise StepError(f"timed out: job {record.async_job_id} still running after "
                                f"{step.timeout_minutes:g} min (ASYNC_TIMEOUT_LOOP_IN_MINUTES){cancelled}")
            self._wait(step, clock)

    def _end_attempt(self, record: StepRecord, attempt_status: str, error: Optional[str],
                     step_status: Optional[str], batch: Batch) -> None:
        """Into the batch: committed before the engine's next action (the next attempt or step)."""
        record.error = error
        if not self.client.polls(record.step):
            batch.replayable = False  # a resume would call it again: on record before the next call
        if step_status is not None:
            record.status, record.ended_at = step_status, time.time()
        self.store.end_attempt(self.run_id, record.step.job_id, record.attempts, attempt_status,
                               record.polls, error, step_status, batch, (record.call_retries, record.last_retry))
        self.on_change(record)
