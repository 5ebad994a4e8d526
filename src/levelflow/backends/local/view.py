"""What a person watching a local run sees: a live view on a terminal, log lines elsewhere,
and a summary table at the end."""
from __future__ import annotations

import time
from collections import Counter
from typing import Optional

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .engine import Engine, StepRecord

STYLE = {"pending": "dim", "running": "cyan", "succeeded": "green", "failed": "bold red",
         "continued": "yellow", "skipped": "dim", "not_started": "dim", "interrupted": "magenta"}
ICON = {"pending": "·", "running": "▶", "succeeded": "✔", "failed": "✘", "continued": "!",
        "skipped": "↷", "not_started": "–", "interrupted": "■"}
DETAILED_STEPS = 40  # up to this many steps, the live view lists every one
THREADS_SHOWN = 12  # a big level lists its running threads, up to this many


def elapsed(start: Optional[float], end: Optional[float] = None) -> str:
    if start is None:
        return ""
    seconds = int((end or time.time()) - start)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def status_text(status: str) -> Text:
    return Text(f"{ICON.get(status, '?')} {status}", style=STYLE.get(status, ""))


def counts_text(records) -> str:
    counts = Counter(r.status for r in records)
    return ", ".join(f"{counts[s]} {s}" for s in STYLE if counts[s])


STATE_WIDTH = max(len(f"{ICON[s]} {s}") for s in STYLE)  # the state column never cuts a status word

Row = tuple  # (what, state, time, detail): one line of the live view


class LiveView:
    """Renders the engine's state on demand (rich Live calls `render` a few times a second),
    within the terminal's height: when everything does not fit, finished levels fold into one
    line, then the levels still to come, then the running level's quiet threads, so that the
    running level and its running steps stay in view."""

    def __init__(self, engine: Engine, console: Optional[Console] = None):
        self.engine, self.console = engine, console
        self.by_thread: dict[tuple[str, str], list[StepRecord]] = {}
        for record in engine.records.values():
            self.by_thread.setdefault((record.level_id, record.thread_id), []).append(record)
        self.detailed = len(engine.records) <= DETAILED_STEPS

    def render(self) -> Group:
        engine = self.engine
        header = Text.assemble((f"levelflow run {engine.run_id}", "bold"), f"  {engine.plan.name}  ",
                               elapsed(engine.started_at), "  ", counts_text(engine.records.values()))
        header.truncate(self.console.width if self.console else 10_000, overflow="ellipsis")
        budget = self.console.height - 2 if self.console else None  # the header, and the cursor's line
        rows = self._rows(budget)
        # names keep their width (up to 32), the state and time theirs; the detail takes what is left
        names = min(32, max((len(str(row[0])) for row in rows), default=8))
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1), expand=self.console is not None)
        table.add_column("what", no_wrap=True, overflow="ellipsis", min_width=names, max_width=32)
        table.add_column("state", no_wrap=True, min_width=STATE_WIDTH)
        table.add_column("time", justify="right", no_wrap=True, min_width=5)
        table.add_column("detail", overflow="ellipsis", no_wrap=True, ratio=1)
        for row in rows:
            table.add_row(*row)
        return Group(header, table)

    def _rows(self, budget: Optional[int]) -> list[Row]:
        progress = self.engine.progress
        levels = self.engine.plan.levels
        state = {level.level_id: progress.status.get(level.level_id, "pending") for level in levels}
        ended = [level for level in levels if state[level.level_id] not in ("running", "pending")]
        running = [level for level in levels if state[level.level_id] == "running"]
        waiting = [level for level in levels if state[level.level_id] == "pending"]
        details = {level.level_id: self._level_details(level) if self.detailed or state[level.level_id] == "running" else []
                   for level in levels}
        everything = sum(1 + len(details[level.level_id]) for level in levels)
        if budget is None or everything <= budget:
            return [row for level in levels for row in (self._level_row(level), *details[level.level_id])]
        before = [self._level_row(level) for level in ended]
        after = [self._level_row(level) for level in waiting]
        room = budget - len(running) - len(before) - len(after)
        if room < 0 and len(before) > 1:
            before, room = [self._levels_row(ended)], room + len(before) - 1
        if room < 0 and len(after) > 1:
            after, room = [self._levels_row(waiting)], room + len(after) - 1
        rows = list(before)
        for level in running:
            fitted = self._level_details(level, max(room, 1))
            rows += [self._level_row(level), *fitted]
            room -= len(fitted)
        return rows + after

    def _level_row(self, level) -> Row:
        progress, key = self.engine.progress, level.level_id
        threads = [self.by_thread[(key, t.thread_id)] for t in level.threads]
        done = sum(1 for t in level.threads if progress.status.get((key, t.thread_id)) not in (None, "running"))
        return (Text(f"LEVEL {key}", style="bold"), status_text(progress.status.get(key, "pending")),
                elapsed(progress.started.get(key), progress.ended.get(key)),
                f"{done}/{len(threads)} threads ended; {counts_text(r for t in threads for r in t)}")

    def _levels_row(self, levels) -> Row:
        """Several levels on one line: their ids and their steps' counts."""
        records = [r for level in levels for t in level.threads for r in self.by_thread[(level.level_id, t.thread_id)]]
        ids = f"{levels[0].level_id} to {levels[-1].level_id}" if len(levels) > 2 else " and ".join(level.level_id for level in levels)
        statuses = Counter(self.engine.progress.status.get(level.level_id, "pending") for level in levels)
        common = statuses.most_common(1)[0][0]
        return (Text(f"LEVELS {ids}", style="bold"), status_text(common), "", f"{len(levels)} levels; {counts_text(records)}")

    def _level_details(self, level, room: Optional[int] = None) -> list[Row]:
        """The rows under a level: its threads (a big level's running ones) and their steps.

        With `room`, at most that many lines, giving up detail in this order until they fit:
        the steps of a thread that are not running; then each thread's own line (a running step
        then names its thread on its line); then the running steps that do not fit, counted on
        the last line with the threads not listed."""
        progress, key = self.engine.progress, level.level_id

        def running(thread) -> bool:
            return progress.status.get((key, thread.thread_id)) == "running"

        candidates = list(level.threads) if self.detailed else [t for t in level.threads if running(t)][:THREADS_SHOWN]
        if room is None:
            return self._listed(level, candidates, lambda thread: self._thread_rows(key, thread))
        candidates.sort(key=lambda thread: not running(thread))
        full = self._listed(level, candidates, lambda thread: self._thread_rows(key, thread))
        if len(full) <= room:
            return full
        active = [t for t in candidates if running(t)]
        brief = self._listed(level, active, lambda thread: self._thread_rows(key, thread, only_running=True))
        if len(brief) <= room:
            return brief
        shown: list = []
        rows: list[Row] = []
        for thread in active:
            steps = self._running_step_rows(key, thread)
            if len(rows) + len(steps) > room - 1:  # keep a line for the count of the others
                break
            rows += steps
            shown.append(thread)
        return rows + ([self._more_threads(level, shown)] if len(shown) < len(level.threads) else [])

    def _listed(self, level, threads, rows_of) -> list[Row]:
        rows = [row for thread in threads for row in rows_of(thread)]
        return rows + ([self._more_threads(level, threads)] if len(threads) < len(level.threads) else [])

    def _more_threads(self, level, shown) -> Row:
        progress, key = self.engine.progress, level.level_id
        hidden = Counter(progress.status.get((key, t.thread_id), "pending") for t in level.threads if t not in shown)
        listed = ", ".join(f"{n} {status}" for status, n in sorted(hidden.items()))
        return ("", "", "", Text(f"… {len(level.threads) - len(shown)} more threads ({listed})", style="dim"))

    def _thread_rows(self, level_id: str, thread, only_running: bool = False) -> list[Row]:
        progress = self.engine.progress
        key = (level_id, thread.thread_id)
        records = self.by_thread[key]
        rows: list[Row] = [(f"  thread {thread.thread_id}", status_text(progress.status.get(key, "pending")),
                            elapsed(progress.started.get(key), progress.ended.get(key)), counts_text(records))]
        for record in records if self.detailed and not only_running else [r for r in records if r.status == "running"]:
            rows.append(self._step_row(record, "    "))
        return rows

    def _running_step_rows(self, level_id: str, thread) -> list[Row]:
        """A thread's running steps, one line each, without the thread's own line."""
        return [self._step_row(record, "  ", f"thread {thread.thread_id} · ")
                for record in self.by_thread[(level_id, thread.thread_id)] if record.status == "running"]

    def _step_row(self, record: StepRecord, indent: str, context: str = "") -> Row:
        return (f"{indent}{record.step.job_id}", status_text(record.status), elapsed(record.started_at, record.ended_at),
                context + self._detail(record))

    @staticmethod
    def _detail(record: StepRecord) -> str:
        parts = [record.step.job_name]
        if record.attempts > 1:
            parts.append(f"attempt {record.attempts}")
        if record.async_job_id and record.status == "running":
            parts.append(f"{record.async_job_id}, {record.polls} poll{'' if record.polls == 1 else 's'}")
        if record.call_retries and record.status == "running":
            parts.append(f"{_retried(record.call_retries)} ({record.last_retry})")
        if record.error and record.status in ("failed", "continued"):
            parts.append(record.error)
        return " · ".join(parts)


class LogLines:
    """Off a terminal (CI logs), one line per step that starts or ends."""

    def __init__(self, console: Console):
        self.console = console
        self.start = time.time()
        self.retries: dict[str, int] = {}  # JOB_ID -> retries already printed

    def __call__(self, record: StepRecord) -> None:
        if record.status == "running" and record.last_retry and self.retries.get(record.step.job_id) != record.call_retries:
            self.retries[record.step.job_id] = record.call_retries
            self._print(record, f"retrying a call: {record.last_retry}")
            return
        if record.status == "running" and record.async_job_id:
            return  # the job id line would double every start
        extra = f" attempt {record.attempts}" if record.attempts > 1 and record.status == "running" else ""
        if record.error and record.status in ("failed", "continued"):
            extra += f": {record.error}"
        self._print(record, f"{record.status}{extra}")

    def _print(self, record: StepRecord, what: str) -> None:
        where = f"level {record.level_id} thread {record.thread_id} {record.step.job_id} ({record.step.job_name})"
        self.console.print(f"[{time.time() - self.start:7.1f}s] {where}: {what}", markup=False, highlight=False, soft_wrap=True)


def summary(report: dict, console: Console, full_rows: int = 60) -> None:
    """The end-of-run table: every step for small runs, per level counts otherwise; then the errors."""
    steps = report["steps"]
    table = Table(title=f"run {report['run_id']} · {report['pipeline']} · {report['status']}", title_justify="left")
    if len(steps) <= full_rows:
        for column in ("level", "thread", "JOB_ID", "job name", "status", "attempts", "job id", "time"):
            table.add_column(column, overflow="fold", no_wrap=column in ("status", "attempts", "time"))
        for step in steps:
            attempts = str(step["attempts"]) + (f" ({_retried(step['call_retries'])})" if step["call_retries"] else "")
            table.add_row(step["level_id"], step["thread_id"], step["job_id"], step["job_name"],
                          status_text(step["status"]), attempts, ", ".join(step["async_job_ids"][-1:]),
                          _seconds(step["duration_s"]))
    else:
        table.add_column("level")
        for status in STYLE:
            table.add_column(status, justify="right")
        levels: dict[str, Counter] = {}
        for step in steps:
            levels.setdefault(step["level_id"], Counter())[step["status"]] += 1
        for level_id, counts in levels.items():
            table.add_row(level_id, *(str(counts[s] or "") for s in STYLE))
    console.print(table)
    for step in steps:
        if step["call_retries"]:
            console.print(f"{step['job_id']} ({step['job_name']}): {_retried(step['call_retries'])}, the last after "
                          f"{step['last_retry']}", markup=False, highlight=False)
        if step["error"]:
            console.print(Text.assemble(status_text(step["status"]), f" {step['job_id']} ({step['job_name']}): {step['error']}"))


def _retried(count: int) -> str:
    return f"{count} call{'' if count == 1 else 's'} retried"


def _seconds(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.1f}s"
