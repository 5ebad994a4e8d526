"""`levelflow run` / `levelflow runs` as a user runs them: real processes, real signals, the
stub executors over HTTP, and resumes checked in the stub's call log."""
import datetime
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import PARAMS, pipeline, run_cli, step, stub_executors
from levelflow.backends.local import LocalRunOptions, run_local
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub

import levelflow


def invoke(*args):
    """The real command line, in this process (cheaper than a child process where no signal is involved)."""
    from click.testing import CliRunner

    from levelflow.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def astep(job_id, **extra):
    return step(job_id, WAIT_TIME_SECONDS="1", **extra)


def levelflow_process(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "levelflow", *map(str, args)], **kwargs)


def query(db_path, sql, args=()):
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (sqlite3.OperationalError, IndexError, KeyError):  # the run has not recorded it yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def step_statuses(db_path):
    return dict(query(db_path, "SELECT job_id, status FROM steps"))


@pytest.fixture
def stub_process(tmp_path):
    """`levelflow executors serve --log FILE` in its own process; yields (url, log path)."""
    with stub_executors(tmp_path, "default: {polls: 0}\njobs:\n  job_A2: {duration_s: 4}\n") as served:
        yield served


def read_log(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_sigkill_mid_run_then_resume_finishes_without_starting_anything_twice(tmp_path, write_json, stub_process):
    url, log = stub_process
    definition = write_json(pipeline([[[astep("A1"), astep("A2"), astep("A3")], [astep("B1")]], [[astep("C1")]]]))
    db = tmp_path / "runs.db"
    common = [definition, "--params", PARAMS, "--executor-url", url, "--state", db, "--time-scale", "0.1"]
    with open(tmp_path / "first.out", "w") as out:
        first = levelflow_process("run", *common, stdout=out, stderr=subprocess.STDOUT)
        try:
            def a2_polling():
                polled = [c for c in read_log(log) if c["job_name"] == "job_A2" and c["call_type"] == "get_status"]
                return polled and step_statuses(db).get("B1") == "succeeded"
            wait_for(a2_polling, "A1 and B1 to succeed and A2 to be polled")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
    calls_before = len([c for c in read_log(log) if c["entry"]])
    assert step_statuses(db) == {"A1": "succeeded", "A2": "running", "A3": "pending", "B1": "succeeded", "C1": "pending"}
    [(run_id, run_status)] = query(db, "SELECT run_id, status FROM runs")
    assert run_status == "running"  # what SIGKILL leaves: nothing had a chance to tidy up
    [listed] = json.loads(invoke("runs", "list", "--state", db, "--format", "json").stdout)
    assert listed["status"] == "running" and listed["process_gone"]

    resumed = run_cli("run", *common, "--resume", run_id, "--format", "json", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["run_id"] == run_id and report["status"] == "succeeded" and report["resumes"] == 1
    calls = [c for c in read_log(log) if c["entry"]]  # what levelflow sent (not the intermediate's forwards)
    get_ids = Counter(c["job_name"] for c in calls if c["call_type"] == "get_id")
    assert get_ids == dict.fromkeys(["job_A1", "job_A2", "job_A3", "job_B1", "job_C1"], 1)
    [a2_job] = [c["answer"] for c in calls if c["job_name"] == "job_A2" and c["call_type"] == "get_id"]
    after = calls[calls_before:]
    assert {c["job_name"] for c in after} == {"job_A2", "job_A3", "job_C1"}
    repolls = [c for c in after if c["job_name"] == "job_A2"]
    assert repolls and all(c["call_type"] == "get_status" and c["async_job_id"] == a2_job for c in repolls)
    assert repolls[-1]["answer"] == "success"
    a2 = next(s for s in report["steps"] if s["job_id"] == "A2")
    assert a2["attempts"] == 1 and a2["async_job_ids"] == [a2_job]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly_records_interrupted_and_resume_repolls(tmp_path, write_json, signum, code):
    definition = write_json(pipeline([[[astep("N1"), astep("N2")], [astep("Q1")]], [[astep("Z1")]]]))
    db = tmp_path / "runs.db"
    with RunningStub(Scenario.model_validate({"jobs": {"job_N1": {"outcome": "never"}}})) as stub:
        args = [definition, "--params", PARAMS, "--executor-url", stub.url, "--state", db, "--time-scale", "0.05"]
        process = levelflow_process("run", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: query(db, "SELECT async_job_id FROM steps WHERE job_id = 'N1'")[0][0]
                     and step_statuses(db)["Q1"] == "succeeded", "N1 to be started and Q1 to succeed")
        finally:
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == code, stderr
        assert "Traceback" not in stderr and "--resume" in stderr
        assert step_statuses(db) == {"N1": "interrupted", "N2": "pending", "Q1": "succeeded", "Z1": "pending"}
        [(run_id, status)] = query(db, "SELECT run_id, status FROM runs")
        assert status == "interrupted"
        [(n1_job,)] = query(db, "SELECT async_job_id FROM attempts WHERE job_id = 'N1' AND status = 'interrupted'")

        stub.state.scenario = Scenario()  # the job now finishes
        plan = levelflow.load_plan(definition, levelflow.load_params(PARAMS))
        report = run_local(plan, db, LocalRunOptions(executor_url=stub.url, time_scale=0.05), resume=run_id)
        assert report["status"] == "succeeded"
        get_ids = Counter(c["job_name"] for c in stub.state.calls if c["call_type"] == "get_id")
        assert get_ids == dict.fromkeys(["job_N1", "job_N2", "job_Q1", "job_Z1"], 1)
        assert stub.state.calls[-1]["job_name"] == "job_Z1"
        n1_polls = [c for c in stub.state.calls if c["job_name"] == "job_N1" and c["call_type"] == "get_status"]
        assert {c["async_job_id"] for c in n1_polls} == {n1_job} and n1_polls[-1]["answer"] == "success"


def test_cli_json_result_exit_status_and_runs_commands(tmp_path, write_json):
    definition = write_json(pipeline([[[astep("A"), astep("B")], [astep("F")]], [[astep("Z")]]]))
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps({"default": {"polls": 1}, "jobs": {"job_F": {"outcome": "fail"}}}))
    db = tmp_path / "runs.db"
    failed = invoke("run", definition, "--params", PARAMS, "--state", db, "--time-scale", "0.02",
                     "--format", "json", f"--simulate={scenario_file}")
    assert failed.exit_code == 1, failed.stderr
    report = json.loads(failed.stdout)
    assert report["status"] == "failed" and report["failed_steps"] == ["F"]
    assert {s["job_id"]: (s["status"], s["attempts"]) for s in report["steps"]} == {
        "A": ("succeeded", 1), "B": ("succeeded", 1), "F": ("failed", 1), "Z": ("not_started", 0)}
    assert all(s["started_at"] and s["duration_s"] is not None for s in report["steps"] if s["attempts"])

    text = invoke("run", definition, "--params", PARAMS, "--state", db, "--time-scale", "0.02", "--simulate")
    assert text.exit_code == 0, text.stderr
    assert "succeeded" in text.stdout and re.search(r"level 2 thread 1 Z \(job_Z\): succeeded", text.stderr)

    listed = invoke("runs", "list", "--state", db, "--format", "json")
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["succeeded", "failed"] and runs[1]["run_id"] == report["run_id"]
    assert runs[1]["succeeded"] == 2 and runs[1]["steps"] == 4
    shown = invoke("runs", "show", report["run_id"], "--state", db)
    assert shown.exit_code == 0 and "job_F" in shown.stdout and "failed" in shown.stdout
    assert json.loads(invoke("runs", "show", report["run_id"], "--state", db, "--format", "json").stdout) == report
    table = invoke("runs", "list", "--state", db)
    assert report["run_id"] in table.stdout
    # every column its --help promises (id, pipeline, status, start, duration, steps succeeded)
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 for r in runs)
    assert "duration" in table.stdout and re.search(r"\d+\.\d s", table.stdout)
    promised = invoke("runs", "list", "--help").stdout
    assert all(word in promised for word in ("id", "pipeline", "status", "start", "duration", "succeeded"))


def test_cli_refuses_what_it_cannot_do(tmp_path, write_json):
    definition = write_json(pipeline([[[astep("A")]]]))
    db = tmp_path / "runs.db"
    base = ["run", definition, "--params", PARAMS, "--state", db]
    both = invoke(*base, "--executor-url", "http://127.0.0.1:1", "--simulate")
    assert both.exit_code == 2 and "not both" in both.stderr
    arguments = invoke(*base, "--simulate", "--resume", "some-run", "--arguments", PARAMS)
    assert arguments.exit_code == 2 and "keeps the arguments it started with" in arguments.stderr
    unknown = invoke(*base, "--simulate", "--resume", "nope")
    assert unknown.exit_code == 1 and "no run 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    done = json.loads(invoke(*base, "--time-scale", "0", "--format", "json", "--simulate").stdout)
    again = invoke(*base, "--simulate", "--resume", done["run_id"])
    assert again.exit_code == 1 and "already succeeded" in again.stderr
    other = write_json(pipeline([[[astep("A"), astep("B")]]]), name="pipe2.json")
    done_failed = invoke("run", definition, "--params", PARAMS, "--state", db, "--format", "json",
                          "--executor-url", "http://127.0.0.1:1", "--time-scale", "0")
    assert done_failed.exit_code == 1 and "cannot reach" in json.loads(done_failed.stdout)["steps"][0]["error"]
    changed = invoke("run", other, "--params", PARAMS, "--state", db, "--simulate",
                      "--resume", json.loads(done_failed.stdout)["run_id"])
    assert changed.exit_code == 1 and "differ from run" in changed.stderr
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("these are not runs\n" * 100)
    wrong_state = invoke("runs", "list", "--state", not_a_db)
    assert wrong_state.exit_code == 1 and "not a levelflow run record" in wrong_state.stderr
    bad_scenario = tmp_path / "bad.yaml"
    bad_scenario.write_text("jobs:\n  a: {outcome: explode}\n")
    located = invoke(*base, f"--simulate={bad_scenario}")
    assert located.exit_code == 1 and f"{bad_scenario}:2:" in located.stderr


def test_help_explains_the_commands():
    help_text = invoke("run", "--help").stdout
    for words in ("--executor-url", "--simulate", "--resume", "--time-scale", "--max-parallel", "SIGKILL"):
        assert words in help_text
    assert "list" in invoke("runs", "--help").stdout


def test_arguments_file_reaches_the_executors(tmp_path, write_json):
    definition = write_json(pipeline([[[astep("A")]]]))
    arguments = tmp_path / "arguments.yaml"
    arguments.write_text("workflow_name: nightly\nquery_variables: {start_date: '2026-01-01'}\n"
                         "workflow_properties: {dataset: sales, jobs_definitions_bucket: other}\n")
    with RunningStub() as stub:
        result = invoke("run", definition, "--params", PARAMS, "--executor-url", stub.url, "--state", tmp_path / "runs.db",
                        "--time-scale", "0", "--arguments", arguments)
        assert result.exit_code == 0, result.stderr
        bodies = [c["body"] for c in stub.state.calls if c["hop"] == "intermediate"]
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    for body in bodies:
        assert body["workflow_name"] == "nightly"
        assert body["query_variables"] == {"start_date": "2026-01-01", "end_date": today}
        assert body["workflow_properties"] == {"dataset": "sales", "jobs_definitions_bucket": "other"}
        # STEP_PROPERTIES (here the default, the platform's jobs bucket) merged over the workflow properties
        assert body["step_properties"] == {"dataset": "sales", "jobs_definitions_bucket": "my-orchestration-dev-jobs"}
    arguments.write_text("query_variables: {}\nworkflow_propertes: {}\n")
    typo = invoke("run", definition, "--params", PARAMS, "--simulate", "--arguments", arguments)
    assert typo.exit_code == 1 and f"{arguments}:2:" in typo.stderr and "workflow_propertes: unknown key" in typo.stderr


def test_the_printed_resume_line_continues_against_the_same_target_and_nothing_else(tmp_path, write_json):
    """A run against the stub is interrupted; pasted as printed, the `resume with:` line resumes
    it against the same stub (the header says which target), and no job starts twice. The same
    resume without the executor options is refused before any call: it would have gone to the
    deployed functions, where the run's jobs do not exist."""
    import shlex

    definition = write_json(pipeline([[[astep("N1"), astep("N2")], [astep("Q1")]]]))
    db = tmp_path / "runs.db"
    with RunningStub(Scenario.model_validate({"jobs": {"job_N1": {"outcome": "never"}}})) as stub:
        process = levelflow_process("run", definition, "--params", PARAMS, "--executor-url", stub.url, "--state", db,
                                    "--time-scale", "0.05", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: query(db, "SELECT async_job_id FROM steps WHERE job_id = 'N1'")[0][0], "N1 to be started")
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        assert f"calling the executors at {stub.url}/" in stderr and "(this machine: a stub or local double)" in stderr
        [line] = [line for line in stderr.splitlines() if line.startswith("resume with: ")]
        words = shlex.split(line.removeprefix("resume with: "))
        assert words[:2] == ["levelflow", "run"] and "--executor-url" in words and "--state" in words
        [(run_id,)] = query(db, "SELECT run_id FROM runs")
        calls_before = len(stub.state.calls)

        elsewhere = run_cli("run", definition, "--params", PARAMS, "--state", db, "--resume", run_id)
        assert elsewhere.returncode == 1 and "Traceback" not in elsewhere.stderr
        assert f"run {run_id} started against the executors at {stub.url}/" in elsewhere.stderr
        assert "would use the deployed functions on Google Cloud (https://" in elsewhere.stderr and "--force" in elsewhere.stderr
        assert len(stub.state.calls) == calls_before and query(db, "SELECT status FROM runs") == [("interrupted",)]
        assert run_cli("run", definition, "--params", PARAMS, "--state", db, "--force").returncode == 2  # --force needs --resume

        stub.state.scenario = Scenario()  # the job now finishes
        resumed = run_cli(*words[1:], timeout=60)  # the line as printed ("levelflow" is run_cli's own)
        assert resumed.returncode == 0, resumed.stderr
        assert Counter(c["job_name"] for c in stub.state.calls if c["call_type"] == "get_id") == \
            dict.fromkeys(["job_N1", "job_N2", "job_Q1"], 1)
        assert query(db, "SELECT status, resumes FROM runs") == [("succeeded", 1)]


def test_time_scale_zero_skips_waits_and_keeps_time_outs(tmp_path, write_json):
    """--time-scale 0: no waits, and a time-out still means its minutes of pipeline time (the
    polls it takes at WAIT_TIME_SECONDS), not an immediate failure; --simulate skips waits by
    default and says so."""
    definition = write_json(pipeline([[[step("SLOW", WAIT_TIME_SECONDS="30", ASYNC_TIMEOUT_LOOP_IN_MINUTES="2"),
                                        step("OK", WAIT_TIME_SECONDS="30")]]]))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("jobs:\n  job_OK: {polls: 3}\n  job_SLOW: {polls: 3}\n")
    done = run_cli("run", definition, "--params", PARAMS, "--state", tmp_path / "a.db", f"--simulate={scenario}",
                   "--format", "json", timeout=60)
    assert done.returncode == 0, done.stderr  # 3 polls of 30 s fit the 2 min of SLOW
    report = json.loads(done.stdout)
    assert [s["status"] for s in report["steps"]] == ["succeeded", "succeeded"]
    scenario.write_text("jobs:\n  job_SLOW: {outcome: never}\n")
    text = run_cli("run", definition, "--params", PARAMS, "--state", tmp_path / "b.db", f"--simulate={scenario}", timeout=60)
    assert text.returncode == 1
    assert "waits skipped" in text.stderr and "calling the built-in simulator" in text.stderr
    timed_out = run_cli("run", definition, "--params", PARAMS, "--state", tmp_path / "c.db", f"--simulate={scenario}",
                        "--time-scale", "0", "--format", "json", timeout=60)
    [slow, ok] = json.loads(timed_out.stdout)["steps"]
    assert slow["status"] == "failed" and "still running after 2 min" in slow["error"] and ok["status"] == "not_started"
    polls = query(tmp_path / "c.db", "SELECT polls FROM attempts WHERE job_id = 'SLOW'")
    assert polls == [(4,)], polls  # polls after 30, 60, 90 and 120 s of pipeline time: the 4th finds the 2 min over


def test_scenario_entries_merge_over_default_and_unknown_names_are_said(tmp_path, write_json):
    """A job's entry changes only what it gives (the rest from `default`); an entry that names no
    job of the pipeline is a located warning with the closest name; a misspelt key gets a
    "did you mean"."""
    definition = write_json(pipeline([[[step("A"), step("B")]]]))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("default: {polls: 2}\njobs:\n  job_A: {latency_ms: 1}\n  job_Bx: {outcome: fail}\n")
    result = run_cli("run", definition, "--params", PARAMS, "--state", tmp_path / "r.db", f"--simulate={scenario}",
                     "--format", "json", timeout=60)
    assert result.returncode == 0, result.stderr  # job_Bx names no job: B keeps the default and succeeds
    assert f"warning: {scenario}:4:11: jobs.job_Bx: names no job of pipeline pipe; did you mean job_B? (this entry" in result.stderr
    polls = dict(query(tmp_path / "r.db", "SELECT job_id, polls FROM attempts"))
    assert polls == {"A": 3, "B": 3}  # the entry of job_A kept default's 2 "running" answers (then success)
    scenario.write_text("jobs:\n  job_A: {outcom: fail}\n")
    typo = run_cli("run", definition, "--params", PARAMS, "--state", tmp_path / "r.db", f"--simulate={scenario}")
    assert typo.returncode == 1 and "jobs.job_A.outcom: unknown key 'outcom'; did you mean outcome?" in typo.stderr


def test_a_retried_call_shows_in_the_log_the_summary_and_the_record(tmp_path, write_json):
    """Scenario {transient: [1]}: the job's first call answers HTTP 503 and is retried; the
    step succeeds in one attempt, and the retry is in the progress lines, the summary, the
    JSON result and `runs show` (it is recorded)."""
    definition = write_json(pipeline([[[step("A"), step("B")]]]))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("jobs:\n  job_A: {transient: [1]}\n")
    db = tmp_path / "r.db"
    text = run_cli("run", definition, "--params", PARAMS, "--state", db, f"--simulate={scenario}", timeout=60)
    assert text.returncode == 0, text.stderr
    assert re.search(r"A \(job_A\): retrying a call: get_id: HTTP 503", text.stderr)
    assert "1 (1 call retried)" in text.stdout  # the summary's attempts column
    assert "A (job_A): 1 call retried, the last after get_id: HTTP 503" in text.stdout
    [(run_id,)] = query(db, "SELECT run_id FROM runs")
    report = json.loads(run_cli("runs", "show", run_id, "--state", db, "--format", "json").stdout)
    a, b = report["steps"]
    assert (a["attempts"], a["call_retries"], a["last_retry"].startswith("get_id: HTTP 503")) == (1, 1, True)
    assert (b["call_retries"], b["last_retry"]) == (0, None)
    assert "1 call retried" in run_cli("runs", "show", run_id, "--state", db).stdout
