"""A run's result as data, read back from the store: printed by `--format json`, `runs show`."""
from __future__ import annotations

import datetime as dt
import functools
import math
from collections import Counter
from typing import Optional

from ...errors import LevelflowError, Problem
from ...plan import STEP_STATUSES
from .store import RunStore


def iso(epoch: Optional[float]) -> Optional[str]:
    """`datetime.fromtimestamp(epoch, utc).isoformat(timespec="milliseconds")`, made from the
    second's text (the same for most steps of a report: made once) and the milliseconds."""
    if epoch is None:
        return None
    fraction, whole = math.modf(epoch)
    micro = round(fraction * 1e6)  # as fromtimestamp rounds: to the microsecond, half to even
    if micro >= 1_000_000:
        micro, whole = micro - 1_000_000, whole + 1
    elif micro < 0:  # before 1970
        micro, whole = micro + 1_000_000, whole - 1
    return f"{_second(int(whole))}.{micro // 1000:03d}+00:00"


@functools.lru_cache(maxsize=1024)
def _second(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(tzinfo=None).isoformat()


def _duration(start: Optional[float], end: Optional[float]) -> Optional[float]:
    return round(end - start, 3) if start is not None and end is not None else None


def run_report(store: RunStore, run_id: str) -> dict:
    run = store.run(run_id)
    if run is None:
        raise LevelflowError([Problem(str(store.path), f"no run {run_id!r} in this state database (see `levelflow runs list`)")])
    job_ids = store.job_ids(run_id)
    retries = store.call_retries(run_id)
    steps = [{
        "job_id": row["job_id"], "job_name": row["job_name"], "level_id": row["level_id"],
        "thread_id": row["thread_id"], "type": row["type"], "status": row["status"],
        "attempts": row["attempts"], "async_job_ids": job_ids.get(row["job_id"], []),
        "call_retries": retries.get(row["job_id"], (0, None))[0], "last_retry": retries.get(row["job_id"], (0, None))[1],
        "started_at": iso(row["started_at"]), "ended_at": iso(row["ended_at"]),
        "duration_s": _duration(row["started_at"], row["ended_at"]), "error": row["error"],
    } for row in store.steps(run_id)]
    counts = Counter(step["status"] for step in steps)
    return {
        "run_id": run_id, "pipeline": run["pipeline"], "source": run["source"], "executor": run["executor"],
        "status": run["status"], "started_at": iso(run["started_at"]), "ended_at": iso(run["ended_at"]),
        "duration_s": _duration(run["started_at"], run["ended_at"]), "resumes": run["resumes"],
        "state_db": str(store.path),
        "counts": {status: counts[status] for status in STEP_STATUSES if counts[status]},
        "failed_steps": [s["job_id"] for s in steps if s["status"] == "failed"],
        "continued_steps": [s["job_id"] for s in steps if s["status"] == "continued"],
        "steps": steps,
    }
