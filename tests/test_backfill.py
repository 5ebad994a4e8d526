"""`levelflow backfill` as a user runs it: real processes against the stub executors over HTTP
(`levelflow executors serve`, whose call log says which dates each run sent), a SIGKILL and a
resume, the run record read back by `levelflow runs list`."""
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import PARAMS, pipeline, run_cli, step, stub_executors
from levelflow.backends.local.backfill import MAX_INTERVALS, intervals

DAYS = [f"2026-11-{day:02d}" for day in range(1, 11)]


def levelflow_process(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "levelflow", *map(str, args)], **kwargs)


def query(db_path, sql, args=()):
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()


@pytest.fixture
def stub(tmp_path):
    """The stub executors in their own process: each job polled once, job_slow's for 1.5 s."""
    with stub_executors(tmp_path, "default: {polls: 1}\njobs:\n  job_slow: {duration_s: 1.5}\n") as served:
        yield served


def starts_by_date(log) -> Counter:
    """get_id calls the intermediate received, by (job name, start_date): one per job started."""
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Counter((c["job_name"], c["body"]["query_variables"]["start_date"]) for c in calls
                   if c["hop"] == "intermediate" and c["call_type"] == "get_id")


def definition(tmp_path):
    path = tmp_path / "daily_sales.json"
    path.write_text(json.dumps(pipeline([[[step("A", JOB_NAME="job_fast", WAIT_TIME_SECONDS="1")],
                                          [step("B", JOB_NAME="job_slow", WAIT_TIME_SECONDS="1")]]])))
    return path


def test_ten_days_run_ten_runs_with_their_dates_survive_a_kill_and_list_as_one_backfill(tmp_path, stub):
    url, log = stub
    db = tmp_path / "runs.db"
    common = [definition(tmp_path), "--params", PARAMS, "--executor-url", url, "--state", db, "--time-scale", "0.1",
              "--format", "json"]
    first = levelflow_process("backfill", *common, "--from", DAYS[0], "--to", DAYS[-1], "--max-concurrent", "2",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                done = query(db, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'")[0][0] if db.exists() else 0
            except sqlite3.OperationalError:  # the record is being created: its tables are not there yet
                done = 0
            if done >= 3:
                break
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    [(backfill_id, status)] = query(db, "SELECT backfill_id, status FROM backfills")
    assert status == "running"  # what SIGKILL leaves
    succeeded_before = {row[0] for row in query(db, "SELECT run_id FROM runs WHERE status = 'succeeded'")}
    assert 3 <= len(succeeded_before) < 10

    resumed = subprocess.run([sys.executable, "-m", "levelflow", "backfill", *map(str, common), "--resume", backfill_id],
                             capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "succeeded" and report["resumes"] == 1
    assert [(i["start_date"], i["end_date"]) for i in report["intervals"]] == [(day, day) for day in DAYS]
    assert {i["status"] for i in report["intervals"]} == {"succeeded"}
    runs = {i["run_id"] for i in report["intervals"]}
    assert len(runs) == 10 and succeeded_before <= runs  # the runs that had succeeded were kept, not run again
    assert query(db, "SELECT COUNT(*) FROM runs")[0][0] == 10  # one run per interval, resumed ones included
    # every day's jobs were started with that day's dates, and none of a succeeded run twice
    starts = starts_by_date(log)
    assert {day for _job, day in starts} == set(DAYS)
    assert all(count <= 2 for count in starts.values())  # a start cut off by the kill may be sent again, no more
    for run_id in succeeded_before:
        [(arguments,)] = query(db, "SELECT arguments FROM runs WHERE run_id = ?", (run_id,))
        day = json.loads(arguments)["query_variables"]["start_date"]
        assert starts[("job_fast", day)] == 1 and starts[("job_slow", day)] == 1

    listed = json.loads(run_cli("runs", "list", "--state", db, "--format", "json").stdout)
    assert len(listed) == 1 and listed[0]["kind"] == "backfill" and listed[0]["backfill_id"] == backfill_id
    assert (listed[0]["succeeded"], listed[0]["intervals"], sorted(listed[0]["runs"])) == (10, 10, sorted(runs))
    text = run_cli("runs", "list", "--state", db).stdout
    assert backfill_id in text and "10/10 runs (2026-11-01..2026-11-10, every 1d)" in text
    shown = json.loads(run_cli("runs", "show", backfill_id, "--state", db, "--format", "json").stdout)
    assert [i["run_id"] for i in shown["intervals"]] == [i["run_id"] for i in report["intervals"]]


def test_overlapping_backfills_are_refused_and_force_runs_the_dates_again(tmp_path):
    db = tmp_path / "runs.db"
    base = ["backfill", definition(tmp_path), "--params", PARAMS, "--state", db, "--simulate", "--format", "json"]
    first = run_cli(*base[:-2], "--from", "2026-01-01", "--to", "2026-01-05", "--format", "json")
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["backfill_id"]
    again = run_cli(*base, "--from", "2026-01-05", "--to", "2026-01-09")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"backfill {first_id} (2026-01-01 to 2026-01-05, succeeded) already ran these dates; add --force" in again.stderr
    assert query(db, "SELECT COUNT(*) FROM backfills")[0][0] == 1  # nothing recorded for the refused one
    apart = run_cli(*base, "--from", "2026-01-06", "--to", "2026-01-09")
    assert apart.returncode == 0 and len(json.loads(apart.stdout)["intervals"]) == 4
    forced = run_cli(*base, "--from", "2026-01-03", "--to", "2026-01-04", "--force")
    assert forced.returncode == 0, forced.stderr
    # an unfinished overlapping backfill must be resumed, not duplicated: --force does not override that
    query_db = sqlite3.connect(db)
    query_db.execute("UPDATE backfills SET status = 'interrupted' WHERE backfill_id = ?", (first_id,))
    query_db.commit()
    query_db.close()
    unfinished = run_cli(*base, "--from", "2026-01-02", "--to", "2026-01-02", "--force")
    assert unfinished.returncode == 1 and f"--resume {first_id}" in unfinished.stderr


def test_monthly_backfills_give_each_run_its_month(tmp_path):
    db = tmp_path / "runs.db"
    result = run_cli("backfill", definition(tmp_path), "--params", PARAMS, "--state", db, "--simulate", "--format", "json",
                     "--from", "2027-12-15", "--to", "2028-03-10", "--every", "1mo")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(i["start_date"], i["end_date"]) for i in report["intervals"]] == [
        ("2027-12-15", "2027-12-31"), ("2028-01-01", "2028-01-31"), ("2028-02-01", "2028-02-29"), ("2028-03-01", "2028-03-10")]
    for interval in report["intervals"]:
        [(arguments,)] = query(db, "SELECT arguments FROM runs WHERE run_id = ?", (interval["run_id"],))
        assert json.loads(arguments)["query_variables"] == {"start_date": interval["start_date"],
                                                           "end_date": interval["end_date"]}


def test_intervals_of_days_and_months():
    day = dt.date
    assert intervals(day(2026, 2, 27), day(2026, 3, 2), "1d") == [
        ("2026-02-27", "2026-02-27"), ("2026-02-28", "2026-02-28"), ("2026-03-01", "2026-03-01"), ("2026-03-02", "2026-03-02")]
    assert intervals(day(2026, 1, 1), day(2026, 1, 20), "7d") == [
        ("2026-01-01", "2026-01-07"), ("2026-01-08", "2026-01-14"), ("2026-01-15", "2026-01-20")]
    assert intervals(day(2026, 1, 31), day(2026, 6, 30), "2mo") == [
        ("2026-01-31", "2026-02-28"), ("2026-03-01", "2026-04-30"), ("2026-05-01", "2026-06-30")]
    with pytest.raises(ValueError, match="more than 10,000 intervals"):
        intervals(day(2000, 1, 1), day(2000, 1, 1) + dt.timedelta(days=MAX_INTERVALS), "1d")


@pytest.mark.parametrize("extra, status, message", [
    (["--from", "2026-01-05", "--to", "2026-01-01"], 2, "--to 2026-01-01 is before --from 2026-01-05"),
    (["--from", "2026-01-01", "--to", "2026-01-05", "--every", "2w"], 2, "--every must be a number of days or months"),
    (["--from", "1990-01-01", "--to", "2026-01-05"], 2, "more than 10,000 intervals"),
    (["--from", "2026-01-01"], 2, "give --from and --to"),
    (["--from", "2026-13-01", "--to", "2026-01-05"], 2, "'2026-13-01' does not match the format '%Y-%m-%d'"),
    (["--resume", "bf-x", "--from", "2026-01-01"], 2, "drop --from"),
    (["--resume", "bf-nope"], 1, "no backfill 'bf-nope'"),
])
def test_bad_backfill_requests_are_clear_errors(tmp_path, extra, status, message):
    result = run_cli("backfill", definition(tmp_path), "--params", PARAMS, "--state", tmp_path / "runs.db", "--simulate", *extra)
    assert result.returncode == status and message in result.stderr and "Traceback" not in result.stderr
    if status == 2:
        assert not (tmp_path / "runs.db").exists()  # a refused request writes nothing
