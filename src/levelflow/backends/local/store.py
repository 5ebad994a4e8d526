"""The run record: an embedded SQLite database, written ahead of every state change.

Every change is committed before the engine acts on it (WAL mode), so a process killed with
SIGKILL leaves a record that `--resume` can trust: a step marked succeeded never runs again,
and a job whose id was recorded is polled again rather than started twice.

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
    status       TEXT NOT NULL,             -- pending | running | succeeded | failed | continued | skipped | interrupted
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
    started_at   REAL NOT NULL,
    ended_at     REAL,
    PRIMARY KEY (run_id, job_id, attempt)
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started_at);
"""


OUR_TABLES = {"runs", "steps", "attempts"}
LOCK_WAIT_SECONDS = 10  # a write waits this long for another process's lock before it fails


class StoreError(LevelflowError):
    """The run record could not be written: the engine must stop at once, never go on blind."""


def default_state_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("levelflow", appauthor=False)) / "runs.db"


class RunStore:
    """One connection shared by the engine's threads; every write is its own transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        self._refuse_foreign_database()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=LOCK_WAIT_SECONDS)
        except (OSError, sqlite3.Error) as exc:
            raise LevelflowError([Problem(str(self.path), f"cannot open the run record: {exc}")]) from None
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process in WAL mode; only power loss can drop the tail.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise LevelflowError([Problem(str(self.path), f"cannot use this file as the run record (SQLite: {exc}); "
                                                          "is it read-only, locked by another process, or not levelflow's?")]) from None

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
            self._db.close()

    def _write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        """One transaction; a write that fails (locked past LOCK_WAIT_SECONDS, disk full, read-only)
        raises StoreError, which stops the run: nothing may happen that the record does not hold."""
        with self._lock:
            if self._closed:  # a worker abandoned after a stop's grace period: the run is over
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, args in statements:
                        self._db.execute(sql, args)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError([Problem(str(self.path), f"the run record could not be written (SQLite: {exc}); "
                                                          "the run stopped; once the cause is gone, continue it with --resume")]) from None

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, run_id: str, pipeline: str, source: str | None, executor: str,
                   structure: list, arguments: dict, steps: list[dict]) -> None:
        now = time.time()
        statements: list[tuple[str, tuple]] = [("INSERT INTO runs (run_id, pipeline, source, executor, status, structure, arguments, pid, "
                       "started_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                       (run_id, pipeline, source, executor, json.dumps(structure), json.dumps(arguments),
                        os.getpid(), now))]
        statements += [("INSERT INTO steps (run_id, job_id, job_name, level_id, thread_id, position, type, status) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                        (run_id, s["job_id"], s["job_name"], s["level_id"], s["thread_id"], s["position"], s["type"]))
                       for s in steps]
        self._write(statements)

    def reopen_run(self, run_id: str, executor: str) -> None:
        self._write([("UPDATE runs SET status = 'running', pid = ?, executor = ?, ended_at = NULL, "
                      "resumes = resumes + 1 WHERE run_id = ?", (os.getpid(), executor, run_id))])

    def finish_run(self, run_id: str, status: str) -> None:
        self._write([("UPDATE runs SET status = ?, pid = NULL, ended_at = ? WHERE run_id = ?",
                      (status, time.time(), run_id))])

    def run(self, run_id: str) -> Optional[dict]:
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return dict(rows[0]) if rows else None

    def runs(self, limit: int = 50) -> list[dict]:
        rows = self._read(
            "SELECT r.*, (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id) AS step_count, "
            "(SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id AND s.status = 'succeeded') AS succeeded_count "
            "FROM runs r ORDER BY started_at DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    # -- steps and attempts -------------------------------------------------------------------

    def steps(self, run_id: str) -> list[dict]:
        return [dict(row) for row in self._read("SELECT * FROM steps WHERE run_id = ? ORDER BY position", (run_id,))]

    def attempts(self, run_id: str) -> list[dict]:
        return [dict(row) for row in self._read(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY job_id, attempt", (run_id,))]

    def set_step_status(self, run_id: str, job_id: str, status: str) -> None:
        self._write([("UPDATE steps SET status = ? WHERE run_id = ? AND job_id = ?", (status, run_id, job_id))])

    def begin_attempt(self, run_id: str, job_id: str, attempt: int, started_at: float) -> None:
        self._write([
            ("UPDATE steps SET status = 'running', attempts = ?, async_job_id = NULL, error = NULL, "
             "started_at = ?, ended_at = NULL WHERE run_id = ? AND job_id = ?",
             (attempt, started_at, run_id, job_id)),
            ("INSERT INTO attempts (run_id, job_id, attempt, status, started_at) VALUES (?, ?, ?, 'running', ?)",
             (run_id, job_id, attempt, started_at)),
        ])

    def record_job_id(self, run_id: str, job_id: str, attempt: int, async_job_id: str) -> None:
        self._write([
            ("UPDATE steps SET async_job_id = ? WHERE run_id = ? AND job_id = ?", (async_job_id, run_id, job_id)),
            ("UPDATE attempts SET async_job_id = ? WHERE run_id = ? AND job_id = ? AND attempt = ?",
             (async_job_id, run_id, job_id, attempt)),
        ])

    def resume_attempt(self, run_id: str, job_id: str, attempt: int) -> None:
        """A job left running (or interrupted) is polled again under its original attempt."""
        self._write([
            ("UPDATE steps SET status = 'running', ended_at = NULL WHERE run_id = ? AND job_id = ?", (run_id, job_id)),
            ("UPDATE attempts SET status = 'running', ended_at = NULL WHERE run_id = ? AND job_id = ? AND attempt = ?",
             (run_id, job_id, attempt)),
        ])

    def end_attempt(self, run_id: str, job_id: str, attempt: int, status: str, polls: int,
                    error: str | None, step_status: str | None) -> None:
        """Close an attempt; `step_status` also settles the step (None: another attempt follows)."""
        now = time.time()
        statements: list[tuple[str, tuple]] = [("UPDATE attempts SET status = ?, polls = polls + ?, error = ?, ended_at = ? "
                       "WHERE run_id = ? AND job_id = ? AND attempt = ?",
                       (status, polls, error, now, run_id, job_id, attempt))]
        if step_status is not None:
            statements.append(("UPDATE steps SET status = ?, error = ?, ended_at = ? WHERE run_id = ? AND job_id = ?",
                               (step_status, error, now, run_id, job_id)))
        self._write(statements)

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
