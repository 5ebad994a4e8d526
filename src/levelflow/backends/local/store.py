"""The run record: an embedded SQLite database, written ahead of the engine's actions.

Every state change is on record before the engine does anything that depends on it (WAL
mode), so a process killed with SIGKILL leaves a record that `--resume` can trust: a step
marked succeeded never runs again, and a job whose id was recorded is polled again rather
than started twice. Commits are few and shared (they are most of the engine's own cost):

- **Batches.** A worker gathers its changes in a `Batch` and commits them in one transaction
  (`commit(batch)`) before its next action: before a sync call (so another process reading
  the record sees the step running through a long call, and every earlier step's end), before
  a wait (a poll's, or a back-off's), before its first poll of a job (with the job id), and
  when it leaves a level. The end of a step, the steps a NEXT skips and the next attempt's
  start are so one commit with the job id of that attempt.
- **The start of an async (or workflows) attempt** is committed with its job id, after the
  start call returns, when nothing before it needs recording first. A crash during the start
  call therefore leaves the record as it was before the attempt: the previous step's end, if
  that step was async, is not on record yet, and neither is the attempt. What a resume does
  is the same as when the attempt had been recorded without a job id: the previous step's job
  id is on record, so it is polled again (it answers that it ended: nothing runs twice); the
  step whose start was cut off is started again, as before (a job the lost call may have
  started is the executor's: its id never came back). The end of a *sync* step is committed
  before any later call (`Batch.replayable`), since a resume would call it again. Until the
  start call returns, another process sees the previous step running and this one pending.
- **Group commit.** Writes that several engine threads make at the same time go into one
  transaction: a writer queues its statements, and whichever writer holds the connection
  commits everything queued so far. Every writer returns only once its statements are
  committed (or raises StoreError), so sharing a transaction changes nothing it can see.

The `steps` table is a contract with `levelflow graph --run`: `run_id`, `job_id` (the
definition's JOB_ID) and `status`, one of levelflow.plan.STEP_STATUSES.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

from ...errors import LevelflowError, Problem


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    pipeline     TEXT NOT NULL,
    source       TEXT,
    executor     TEXT NOT NULL,             -- "http <base url>" or "simulate <scenario>"
    status       TEXT NOT NULL,             -- running | succeeded | failed | interrupted
    structure    TEXT NOT NULL,             -- JSON [[level, thread, job_id, job_name, type, executors...], ...]
    arguments    TEXT NOT NULL,             -- JSON execution arguments, kept for resumes
    pid          INTEGER,                   -- process running it, while status = running
    started_at   REAL NOT NULL,             -- epoch seconds
    ended_at     REAL,
    resumes      INTEGER NOT NULL DEFAULT 0,
    backfill_id  TEXT,                      -- the backfill this run is an interval of, if any
    backfill_position INTEGER               -- its interval's place in the backfill (0-based)
);
CREATE TABLE IF NOT EXISTS backfills (
    backfill_id  TEXT PRIMARY KEY,
    pipeline     TEXT NOT NULL,
    source       TEXT,
    executor     TEXT NOT NULL,             -- as runs.executor: every run of it has this target
    from_date    TEXT NOT NULL,
    to_date      TEXT NOT NULL,
    every        TEXT NOT NULL,             -- "1d", "7d", "1mo", ...
    intervals    TEXT NOT NULL,             -- JSON [[start_date, end_date], ...]
    arguments    TEXT NOT NULL,             -- JSON workflow_name / workflow_properties of every run
    status       TEXT NOT NULL,             -- running | succeeded | failed | interrupted
    pid          INTEGER,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    resumes      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    run_id       TEXT NOT NULL REFERENCES runs(run_id),
    job_id       TEXT NOT NULL,             -- the definition's JOB_ID
    job_name     TEXT NOT NULL,
    level_id     TEXT NOT NULL,
    thread_id    TEXT NOT NULL,
    position     INTEGER NOT NULL,          -- order in the whole pipeline
    type         TEXT NOT NULL,
    status       TEXT NOT NULL,             -- pending | running | succeeded | failed | continued | skipped | not_started | interrupted
    attempts     INTEGER NOT NULL DEFAULT 0,
    async_job_id TEXT,                      -- id answered by get_id for the latest attempt
    error        TEXT,
    started_at   REAL,
    ended_at     REAL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id       TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    attempt      INTEGER NOT NULL,          -- 1-based, counted over the run's whole life
    status       TEXT NOT NULL,             -- running | succeeded | failed | interrupted
    async_job_id TEXT,
    polls        INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    call_retries INTEGER NOT NULL DEFAULT 0,  -- calls retried after a transient fault (429, 5xx, no connection)
    last_retry   TEXT,                      -- what the last of them met
    started_at   REAL NOT NULL,
    ended_at     REAL,
    PRIMARY KEY (run_id, job_id, attempt)
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started_at);
"""


OUR_TABLES = {"runs", "steps", "attempts", "backfills"}
LOCK_WAIT_SECONDS = 10  # a write waits this long for another process's lock before it fails


class StoreError(LevelflowError):
    """The run record could not be written: the engine must stop at once, never go on blind."""


def default_state_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("levelflow", appauthor=False)) / "runs.db"


Statement = tuple[str, "tuple | list[tuple]"]  # (sql, arguments), or (sql, list of argument tuples): run for each (executemany)


class _Queued:
    """One writer's statements waiting for a transaction (see RunStore._write)."""

    __slots__ = ("statements", "done", "error")

    def __init__(self, statements: list[Statement]):
        self.statements = statements
        self.done = False
        self.error: Optional[str] = None


# SQLite copies the WAL into the database (and syncs both files) inside the commit that finds
# this many pages in it: 1,000 by default, every 250 or so of the engine's commits. A run's
# commits rewrite the same few pages over and over, so a checkpoint's cost hardly grows with
# the WAL: 4,000 pages (4 MiB at most, of RECORD_PAGE_BYTES) make it a quarter as often, for
# the same work each time. A killed process loses nothing either way: the WAL holds every commit.
WAL_CHECKPOINT_PAGES = 4000
# Each commit appends every page it changed to the WAL, whole: a step's commit changes a few
# rows of 100-300 bytes on about three pages (steps, attempts and its key). At SQLite's default
# 4 KiB, a 1,000-step run writes some 11 MiB of WAL, which the checkpoint (or the last close)
# must first sync to disk: tens of milliseconds, as long as the steps themselves. 1 KiB pages
# (SQLite's default until 3.12) write, checksum and sync a quarter of that; reading a run back
# (its report, `runs show`) costs about the same either way.
RECORD_PAGE_BYTES = 1024


class Batch:
    """Changes one engine thread made since its last action, committed together by
    RunStore.commit just before its next one (see the module's docstring)."""

    __slots__ = ("statements", "replayable", "commits")

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        # True while a resume could redo everything here by polling recorded jobs; the end of a
        # sync call makes it False: that must be on record before anything else is called.
        self.replayable = True
        self.commits = 0

    def __bool__(self) -> bool:
        return bool(self.statements)

    def mark(self) -> tuple[int, int]:
        return self.commits, len(self.statements)

    def rewind(self, mark: tuple[int, int]) -> bool:
        """Drop what was added since `mark`, when nothing was committed meanwhile; True if done."""
        if mark[0] != self.commits:
            return False
        del self.statements[mark[1]:]
        return True


class RunStore:
    """One connection shared by the engine's threads; writes made at the same time share a
    transaction (group commit); a writer returns once its own statements are committed."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # the connection: held by the one writer committing, or a reader
        self._queue: list[_Queued] = []  # statements waiting for the next transaction
        self._queue_lock = threading.Lock()
        self._closed = False
        self._refuse_foreign_database()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=LOCK_WAIT_SECONDS)
        except (OSError, sqlite3.Error) as exc:
            raise LevelflowError([Problem(str(self.path), f"cannot open the run record: {exc}")]) from None
        self._db.row_factory = sqlite3.Row
        try:
            # A new record only (an existing file keeps its pages): see RECORD_PAGE_BYTES.
            self._db.execute(f"PRAGMA page_size={RECORD_PAGE_BYTES}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process in WAL mode; only power loss can drop the tail.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._db.executescript(SCHEMA)
            self._add_new_columns()
            self._cursor = self._db.cursor()  # the writes' (Connection.execute makes a cursor every time)
        except sqlite3.Error as exc:
            self._db.close()
            raise LevelflowError([Problem(str(self.path), f"cannot use this file as the run record (SQLite: {exc}); "
                                                          "is it read-only, locked by another process, or not levelflow's?")]) from None

    def _add_new_columns(self) -> None:
        """A record written by an earlier levelflow gets the columns added since (SQLite's ADD
        COLUMN with the default every old row takes)."""
        added = {"attempts": (("call_retries", "INTEGER NOT NULL DEFAULT 0"), ("last_retry", "TEXT")),
                 "runs": (("backfill_id", "TEXT"), ("backfill_position", "INTEGER"))}
        for table, columns in added.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, declaration in columns:
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def _refuse_foreign_database(self) -> None:
        """Never change another application's file (WAL mode, tables) before refusing it."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        if not self.path.is_file():
            raise LevelflowError([Problem(str(self.path), "the run record must be a regular file")])
        try:
            with self.path.open("rb") as handle:
                header = handle.read(16)
        except OSError as exc:
            raise LevelflowError([Problem(str(self.path), f"cannot read the run record: {exc.strerror}")]) from None
        if header != b"SQLite format 3\x00":
            raise LevelflowError([Problem(str(self.path), "not a levelflow run record (not an SQLite database); give another --state")])
        try:
            probe = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=LOCK_WAIT_SECONDS)
            try:
                tables = {row[0] for row in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                probe.close()
        except sqlite3.Error as exc:
            raise LevelflowError([Problem(str(self.path), f"cannot read the run record (SQLite: {exc})")]) from None
        if tables and not tables <= OUR_TABLES:
            foreign = ", ".join(sorted(tables - OUR_TABLES))
            raise LevelflowError([Problem(str(self.path), f"not a levelflow run record (it has tables {foreign}); "
                                                          "left unchanged; give another --state")])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()  # the last connection to close checkpoints the whole WAL and removes it

    def _write(self, statements: Iterable[Statement], batch: Optional[Batch] = None) -> None:
        """Commit `statements` (in one transaction, maybe shared with other threads' writes), or
        with a `batch` only add them to it, for `commit(batch)` before the engine's next action.
        A write that fails (locked past LOCK_WAIT_SECONDS, disk full, read-only) raises
        StoreError, which stops the run: nothing may happen that the record does not hold."""
        if batch is not None:
            batch.statements.extend(statements)
            return
        queued = _Queued(list(statements))
        with self._queue_lock:
            self._queue.append(queued)
        with self._lock:
            if not queued.done:  # no other writer took it into its transaction meanwhile: commit all queued
                with self._queue_lock:
                    group, self._queue = self._queue, []
                error = self._transaction([statement for member in group for statement in member.statements])
                for member in group:
                    member.done, member.error = True, error
        if queued.error is not None:
            raise StoreError([Problem(str(self.path), queued.error)]) from None

    def commit(self, batch: Batch) -> None:
        """Commit the changes gathered in `batch` (emptied first: a failed commit is not retried)."""
        statements, batch.statements, batch.replayable = batch.statements, [], True
        batch.commits += 1
        if statements:
            self._write(statements)

    def _transaction(self, statements: list[Statement]) -> Optional[str]:
        """Run `statements` as one transaction (the caller holds the connection); why it failed, or None."""
        if self._closed:  # a worker abandoned after a stop's grace period: the run is over
            return None
        cursor = self._cursor
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    if isinstance(args, list):
                        cursor.executemany(sql, args)
                    else:
                        cursor.execute(sql, args)
                cursor.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            return (f"the run record could not be written (SQLite: {exc}); "
                    "the run stopped; once the cause is gone, continue it with --resume")
        return None

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _read_dicts(self, sql: str, args: tuple = ()) -> list[dict]:
        """Rows as dicts, made straight from plain tuples: a run's steps are read back whole
        (its report), and an sqlite3.Row made first only to be copied costs a third more."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            rows = cursor.execute(sql, args).fetchall()
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in rows]

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, run_id: str, pipeline: str, source: str | None, executor: str,
                   structure: list, arguments: dict, steps: list[dict],
                   backfill: tuple[Optional[str], Optional[int]] = (None, None)) -> None:
        now = time.time()
        statements: list[Statement] = [("INSERT INTO runs (run_id, pipeline, source, executor, status, structure, arguments, pid, "
                       "started_at, backfill_id, backfill_position) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                       (run_id, pipeline, source, executor, json.dumps(structure), json.dumps(arguments),
                        os.getpid(), now, *backfill))]
        statements.append(("INSERT INTO steps (run_id, job_id, job_name, level_id, thread_id, position, type, status) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                           [(run_id, s["job_id"], s["job_name"], s["level_id"], s["thread_id"], s["position"], s["type"])
                            for s in steps]))  # one executemany: a large run's steps in a fraction of the time
        self._write(statements)

    def reopen_run(self, run_id: str, executor: str) -> None:
        self._write([("UPDATE runs SET status = 'running', pid = ?, executor = ?, ended_at = NULL, "
                      "resumes = resumes + 1 WHERE run_id = ?", (os.getpid(), executor, run_id))])

    def finish_run(self, run_id: str, status: str) -> None:
        """The run's end; a failed run's steps still pending are not_started (an interrupted
        run's stay pending: a resume runs them)."""
        statements: list[Statement] = [("UPDATE runs SET status = ?, pid = NULL, ended_at = ? WHERE run_id = ?",
                                        (status, time.time(), run_id))]
        if status == "failed":
            statements.append(("UPDATE steps SET status = 'not_started' WHERE run_id = ? AND status = 'pending'", (run_id,)))
        self._write(statements)

    def run(self, run_id: str) -> Optional[dict]:
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return dict(rows[0]) if rows else None

    # -- backfills ------------------------------------------------------------------------------

    def create_backfill(self, backfill_id: str, pipeline: str, source: str | None, executor: str, from_date: str,
                        to_date: str, every: str, intervals: list[tuple[str, str]], arguments: dict) -> None:
        self._write([("INSERT INTO backfills (backfill_id, pipeline, source, executor, from_date, to_date, every, intervals, "
                      "arguments, status, pid, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                      (backfill_id, pipeline, source, executor, from_date, to_date, every, json.dumps(intervals),
                       json.dumps(arguments), os.getpid(), time.time()))])

    def reopen_backfill(self, backfill_id: str, executor: str) -> None:
        self._write([("UPDATE backfills SET status = 'running', pid = ?, executor = ?, ended_at = NULL, "
                      "resumes = resumes + 1 WHERE backfill_id = ?", (os.getpid(), executor, backfill_id))])

    def finish_backfill(self, backfill_id: str, status: str) -> None:
        self._write([("UPDATE backfills SET status = ?, pid = NULL, ended_at = ? WHERE backfill_id = ?",
                      (status, time.time(), backfill_id))])

    def backfill(self, backfill_id: str) -> Optional[dict]:
        rows = self._read("SELECT * FROM backfills WHERE backfill_id = ?", (backfill_id,))
        return dict(rows[0]) if rows else None

    def backfills(self, pipeline: Optional[str] = None) -> list[dict]:
        if pipeline is None:
            return self._read_dicts("SELECT * FROM backfills ORDER BY started_at DESC")
        return self._read_dicts("SELECT * FROM backfills WHERE pipeline = ? ORDER BY started_at DESC", (pipeline,))

    def backfill_runs(self, backfill_id: str) -> dict[int, dict]:
        """The runs of a backfill by interval position (the latest, should one be recorded twice);
        `first_job_id`: the job id of its first step's latest attempt (a deployed interval's execution)."""
        rows = self._read_dicts(
            "SELECT r.*, (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id) AS step_count, "
            "(SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id AND s.status = 'succeeded') AS succeeded_count, "
            "(SELECT s.async_job_id FROM steps s WHERE s.run_id = r.run_id ORDER BY s.position LIMIT 1) AS first_job_id "
            "FROM runs r WHERE backfill_id = ? ORDER BY started_at", (backfill_id,))
        return {row["backfill_position"]: row for row in rows}

    def runs(self, limit: int = 50) -> list[dict]:
        rows = self._read(
            "SELECT r.*, (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id) AS step_count, "
            "(SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id AND s.status = 'succeeded') AS succeeded_count "
            "FROM runs r ORDER BY started_at DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    # -- steps and attempts -------------------------------------------------------------------

    def steps(self, run_id: str) -> list[dict]:
        return self._read_dicts("SELECT * FROM steps WHERE run_id = ? ORDER BY position", (run_id,))

    def call_retries(self, run_id: str) -> dict[str, tuple[int, Optional[str]]]:
        """JOB_ID -> (calls retried over all its attempts, what the latest retry met), for steps with any."""
        rows = self._read("SELECT job_id, SUM(call_retries), MAX(attempt) FROM attempts WHERE run_id = ? "
                          "GROUP BY job_id HAVING SUM(call_retries) > 0", (run_id,))
        last = {row[0]: row[1] for row in self._read(
            "SELECT job_id, last_retry FROM attempts WHERE run_id = ? AND last_retry IS NOT NULL ORDER BY attempt", (run_id,))}
        return {row[0]: (row[1], last.get(row[0])) for row in rows}

    def attempts(self, run_id: str) -> list[dict]:
        return self._read_dicts("SELECT * FROM attempts WHERE run_id = ? ORDER BY job_id, attempt", (run_id,))

    def job_ids(self, run_id: str) -> dict[str, list[str]]:
        """JOB_ID -> the job ids its attempts were answered, in order (a report's async_job_ids)."""
        job_ids: dict[str, list[str]] = {}
        for job_id, async_job_id in self._read(
                "SELECT job_id, async_job_id FROM attempts WHERE run_id = ? ORDER BY job_id, attempt", (run_id,)):
            if async_job_id:
                job_ids.setdefault(job_id, []).append(async_job_id)
        return job_ids

    # The engine's per-step writes take a `batch` (see _write): committed with its next action.

    def set_step_status(self, run_id: str, job_id: str, status: str, batch: Optional[Batch] = None) -> None:
        self._write([("UPDATE steps SET status = ? WHERE run_id = ? AND job_id = ?", (status, run_id, job_id))], batch)

    def begin_attempt(self, run_id: str, job_id: str, attempt: int, started_at: float, batch: Optional[Batch] = None,
                      async_job_id: Optional[str] = None) -> None:
        """A new attempt, running; with its job id when the start call had answered before it was committed."""
        self._write([
            ("UPDATE steps SET status = 'running', attempts = ?, async_job_id = ?, error = NULL, "
             "started_at = ?, ended_at = NULL WHERE run_id = ? AND job_id = ?",
             (attempt, async_job_id, started_at, run_id, job_id)),
            ("INSERT INTO attempts (run_id, job_id, attempt, status, async_job_id, started_at) VALUES (?, ?, ?, 'running', ?, ?)",
             (run_id, job_id, attempt, async_job_id, started_at)),
        ], batch)

    def record_job_id(self, run_id: str, job_id: str, attempt: int, async_job_id: str, batch: Optional[Batch] = None) -> None:
        self._write([
            ("UPDATE steps SET async_job_id = ? WHERE run_id = ? AND job_id = ?", (async_job_id, run_id, job_id)),
            ("UPDATE attempts SET async_job_id = ? WHERE run_id = ? AND job_id = ? AND attempt = ?",
             (async_job_id, run_id, job_id, attempt)),
        ], batch)

    def resume_attempt(self, run_id: str, job_id: str, attempt: int, batch: Optional[Batch] = None) -> None:
        """A job left running (or interrupted) is polled again under its original attempt."""
        self._write([
            ("UPDATE steps SET status = 'running', ended_at = NULL WHERE run_id = ? AND job_id = ?", (run_id, job_id)),
            ("UPDATE attempts SET status = 'running', ended_at = NULL WHERE run_id = ? AND job_id = ? AND attempt = ?",
             (run_id, job_id, attempt)),
        ], batch)

    def end_attempt(self, run_id: str, job_id: str, attempt: int, status: str, polls: int,
                    error: str | None, step_status: str | None, batch: Optional[Batch] = None,
                    retries: tuple[int, Optional[str]] = (0, None)) -> None:
        """Close an attempt; `step_status` also settles the step (None: another attempt follows);
        `retries`: how many of its calls were retried, and what the last one met."""
        now = time.time()
        statements: list[Statement] = [("UPDATE attempts SET status = ?, polls = polls + ?, error = ?, ended_at = ?, "
                       "call_retries = call_retries + ?, last_retry = COALESCE(?, last_retry) "
                       "WHERE run_id = ? AND job_id = ? AND attempt = ?",
                       (status, polls, error, now, *retries, run_id, job_id, attempt))]
        if step_status is not None:
            statements.append(("UPDATE steps SET status = ?, error = ?, ended_at = ? WHERE run_id = ? AND job_id = ?",
                               (step_status, error, now, run_id, job_id)))
        self._write(statements, batch)

    def interrupt_running(self, run_id: str) -> None:
        """Steps still marked running when the engine stops are recorded as interrupted."""
        now = time.time()
        self._write([
            ("UPDATE attempts SET status = 'interrupted', ended_at = ? WHERE run_id = ? AND status = 'running'", (now, run_id)),
            ("UPDATE steps SET status = 'interrupted', ended_at = ? WHERE run_id = ? AND status = 'running'", (now, run_id)),
        ])

    def open_jobs(self, run_id: str) -> dict[str, tuple[int, str, float]]:
        """Steps whose latest attempt started a job that never ended: JOB_ID -> (attempt, job id, start)."""
        rows = self._read(
            "SELECT a.job_id, a.attempt, a.async_job_id, a.started_at FROM attempts a "
            "WHERE a.run_id = ? AND a.status IN ('running', 'interrupted') AND a.async_job_id IS NOT NULL "
            "AND a.attempt = (SELECT MAX(b.attempt) FROM attempts b WHERE b.run_id = a.run_id AND b.job_id = a.job_id)",
            (run_id,))
        return {row["job_id"]: (row["attempt"], row["async_job_id"], row["started_at"]) for row in rows}

    def reset_unfinished(self, run_id: str) -> None:
        """A resumed run starts every step that did not succeed from pending again."""
        self._write([("UPDATE steps SET status = 'pending', error = NULL, ended_at = NULL "
                      "WHERE run_id = ? AND status != 'succeeded'", (run_id,))])
