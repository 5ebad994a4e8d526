"""The local engine never goes on blind: when its run record cannot be written, the run stops
at once (no later step or level starts), says so with a located error, and can be resumed."""
import sqlite3
import threading

import pytest

import levelflow
from conftest import PARAMS, pipeline, step, run_cli
from levelflow.backends.local import LocalRunOptions, RunStore, prepare_run, run_report
from levelflow.backends.local import store as store_module
from levelflow.backends.local.store import StoreError
from levelflow.scenario import Scenario


@pytest.fixture
def plan(write_json):
    levels = [[[step("A1", WAIT_TIME_SECONDS="1"), step("A2", WAIT_TIME_SECONDS="1")], [step("B1", WAIT_TIME_SECONDS="1")]],
              [[step("C1", WAIT_TIME_SECONDS="1")]]]
    return levelflow.load_plan(write_json(pipeline(levels, name="demo")), levelflow.load_params(PARAMS))


def test_a_locked_run_record_stops_the_run_and_resume_finishes_it(plan, tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 0.2)
    state = tmp_path / "runs.db"
    store = RunStore(state)
    locker = sqlite3.connect(str(state), isolation_level=None, check_same_thread=False)
    locked = threading.Event()

    def lock_on_first_job(record):  # another process takes the database as soon as A1 has a job id
        if record.step.job_id == "A1" and record.async_job_id and not locked.is_set():
            locked.set()
            locker.execute("BEGIN EXCLUSIVE")

    options = LocalRunOptions(scenario=Scenario.model_validate({"default": {"polls": 2}}), time_scale=0.01)
    engine = prepare_run(plan, store, options, on_change=lock_on_first_job)
    with pytest.raises(StoreError) as raised:
        engine.run()
    message = str(raised.value)
    assert str(state) in message and "could not be written" in message and "--resume" in message
    calls = engine.client.transport.double.calls
    assert not [c for c in calls if c["job_name"] == "job_C1"]  # no later level started
    assert engine.status != "succeeded"
    store.close()
    locker.execute("ROLLBACK")
    locker.close()
    # the cause is gone: resume continues the same run to its end
    store = RunStore(state)
    resumed = prepare_run(plan, store, options, resume=engine.run_id)
    assert resumed.run() == "succeeded"
    report = run_report(store, engine.run_id)
    store.close()
    assert {s["job_id"]: s["status"] for s in report["steps"]} == dict.fromkeys(["A1", "A2", "B1", "C1"], "succeeded")


def test_a_run_record_that_cannot_be_opened_is_a_located_error(tmp_path, write_json):
    definition = write_json(pipeline([[[step("A")]]]))
    foreign = tmp_path / "other.db"
    other = sqlite3.connect(str(foreign))
    other.execute("CREATE TABLE invoices (id INTEGER)")
    other.commit()
    other.close()
    before = foreign.read_bytes()
    result = run_cli("run", definition, "--params", PARAMS, "--simulate", "--state", foreign)
    assert result.returncode == 1 and "not a levelflow run record (it has tables invoices)" in result.stderr
    assert foreign.read_bytes() == before and not (tmp_path / "other.db-wal").exists()  # left unchanged
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("hello")
    result = run_cli("run", definition, "--params", PARAMS, "--simulate", "--state", not_sqlite)
    assert result.returncode == 1 and "not an SQLite database" in result.stderr and "Traceback" not in result.stderr
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        result = run_cli("run", definition, "--params", PARAMS, "--simulate", "--state", read_only / "runs.db")
    finally:
        read_only.chmod(0o700)
    assert "Traceback" not in result.stderr
    if result.returncode != 0:  # root ignores directory permissions
        assert result.returncode == 1 and "run record" in result.stderr


def test_a_record_written_before_the_retry_columns_is_resumed_and_reported(tmp_path, write_json):
    """A run record from the version before attempts had call_retries / last_retry: opened,
    it gets the columns (its rows the defaults), and its run resumes and reports as any other."""
    from levelflow.backends.local import run_local

    definition = write_json(pipeline([[[step("A"), step("B")]]]))
    plan = levelflow.load_plan(definition, levelflow.load_params(PARAMS))
    db = tmp_path / "old.db"
    old_schema = store_module.SCHEMA.replace(
        "    call_retries INTEGER NOT NULL DEFAULT 0,  -- calls retried after a transient fault (429, 5xx, no connection)\n"
        "    last_retry   TEXT,                      -- what the last of them met\n", "")
    assert old_schema != store_module.SCHEMA
    with sqlite3.connect(db) as old:
        old.executescript(old_schema)
    options = LocalRunOptions(scenario=Scenario.model_validate({"jobs": {"job_B": {"outcome": "fail"}}}), time_scale=0)
    first = run_local(plan, db, options)
    assert first["status"] == "failed" and [s["call_retries"] for s in first["steps"]] == [0, 0]
    again = run_local(plan, db, LocalRunOptions(scenario=Scenario.model_validate({"jobs": {"job_B": {"transient": [1]}}}),
                                                time_scale=0), resume=first["run_id"])
    assert again["status"] == "succeeded" and [s["call_retries"] for s in again["steps"]] == [0, 1]
