"""`levelflow backfill --deployed` as a user runs it: real processes calling the Workflow
Executions API of the Google fake (fake_google_api, with application-default credentials whose
tokens its OAuth endpoint issues), whose executions run the workflow `levelflow generate` wrote
in workflows-emulator, whose steps call the stub executors (`levelflow executors serve`) over
HTTP: their call log says which dates each execution sent."""
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

import google_discovery
from conftest import PARAMS, pipeline, run_cli, step, stub_executors
from fake_google_api import FakeGoogle
from levelflow import load_params

DAYS = [f"2026-11-{day:02d}" for day in range(1, 11)]
PROJECT, REGION, WORKFLOW = "my-orchestration-dev", "us-central1", "daily_sales"
PARENT = f"projects/{PROJECT}/locations/{REGION}/workflows/{WORKFLOW}"
CREATE = "workflowexecutions.projects.locations.workflows.executions.create"
GET = "workflowexecutions.projects.locations.workflows.executions.get"


def query(db_path, sql, args=()):
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    with FakeGoogle() as google:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", google.adc_file(tmp_path))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        yield google


@pytest.fixture
def stub(tmp_path):
    with stub_executors(tmp_path, "default: {polls: 1}\n") as served:
        yield served


def definition(tmp_path, engine="cloud_workflows"):
    path = tmp_path / f"{WORKFLOW}.json"
    path.write_text(json.dumps(pipeline([[[step("A", JOB_NAME="job_fast", WAIT_TIME_SECONDS="1")],
                                          [step("B", JOB_NAME="job_slow", WAIT_TIME_SECONDS="1")]]], engine=engine)))
    return path


def params_file(tmp_path, executors_url, name="params.json"):
    """The platform parameters, the functions under `executors_url` (a stub)."""
    path = tmp_path / name
    path.write_text(json.dumps({**load_params(PARAMS).as_mapping(), "pFunctionsBaseUrl": executors_url}))
    return path


def generated(tmp_path, params, out="generated") -> dict[str, str]:
    """What `levelflow generate` writes: the workflows to deploy."""
    result = run_cli("generate", definition(tmp_path), "--params", params, "--out", tmp_path / out)
    assert result.returncode == 0, result.stderr
    return {path.name: path.read_text() for path in sorted((tmp_path / out).glob("*.yaml"))}


@pytest.fixture
def deployed(tmp_path, fake, stub):
    """The pipeline generated against the stub executors and deployed in the fake; the backfill's options."""
    params = params_file(tmp_path, stub[0])
    fake.deploy_workflows(PROJECT, REGION, generated(tmp_path, params))
    return ["backfill", definition(tmp_path), "--params", params, "--deployed", "--google-api-url", fake.base,
            "--state", tmp_path / "runs.db", "--time-scale", "0.01"]


def arguments_by_day(fake) -> Counter:
    """Executions created, by the start_date of their argument."""
    return Counter(json.loads(r.body["argument"])["query_variables"]["start_date"] for r in fake.calls(CREATE) if r.status == 200)


def executor_starts(log) -> Counter:
    """get_id calls the intermediate received, by (job name, start_date, execution id)."""
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Counter((c["job_name"], c["body"]["query_variables"]["start_date"], c["body"]["execution_id"]) for c in calls
                   if c["hop"] == "intermediate" and c["call_type"] == "get_id")


def most_at_once(fake) -> int:
    """The most executions being polled at one time: overlaps of their first to last reads, in request order."""
    reads: dict[str, list[int]] = {}
    for n, record in enumerate(fake.requests):
        if record.method_id == GET:
            reads.setdefault(record.path, []).append(n)
    return max(sum(first <= n <= last for first, *_, last in reads.values()) for n in range(len(fake.requests)))


def test_ten_days_make_ten_executions_with_their_dates_through_the_documented_api(tmp_path, fake, stub, deployed):
    url, log = stub
    fake.fail_method(CREATE, (1, 2), 503)  # transient: retried with back-off
    fake.fail_method(GET, (3,), 429)
    result = run_cli(*deployed, "--from", DAYS[0], "--to", DAYS[-1], "--max-concurrent", "3", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded" and report["executor"] == f"workflows {fake.base}/workflowexecutions.googleapis.com/v1/{PARENT}"
    assert [(i["start_date"], i["end_date"], i["status"]) for i in report["intervals"]] == [(d, d, "succeeded") for d in DAYS]

    creates = [r for r in fake.calls(CREATE) if r.status == 200]
    assert len(creates) == 10 and len(fake.executions) == 10 and arguments_by_day(fake) == Counter(DAYS)
    for record in creates:  # the scheduler job's argument, and the interval's dates as query_variables
        argument = json.loads(record.body["argument"])
        day = argument["query_variables"]["start_date"]
        assert argument == {"workflow_name": WORKFLOW, "workflow_properties": {},
                            "query_variables": {"start_date": day, "end_date": day}}
        assert record.body["labels"] == {"levelflow-backfill": report["backfill_id"]}
    assert {i["execution"] for i in report["intervals"]} == set(fake.executions)
    assert most_at_once(fake) == 3

    # each execution ran the deployed workflow, whose executor calls carried its day and its id
    starts = executor_starts(log)
    ids = {name.rsplit("/", 1)[-1]: e.argument["query_variables"]["start_date"] for name, e in fake.executions.items()}
    assert sorted(starts) == sorted((job, day, execution) for execution, day in ids.items() for job in ("job_fast", "job_slow"))
    assert set(starts.values()) == {1}

    # the create request is the discovery document's method, path and body
    method = google_discovery.find_method("POST", f"https://workflowexecutions.googleapis.com{creates[0].path}")
    assert method is not None and method.id == CREATE and method.path_params == {"parent": PARENT}
    execution = google_discovery.document("workflowexecutions", "v1")["schemas"]["Execution"]["properties"]
    assert set(creates[0].body) <= {key for key, spec in execution.items() if not spec.get("readOnly")}
    assert execution["argument"]["type"] == "string" and isinstance(creates[0].body["argument"], str)
    assert fake.problems == [] and fake.calls("oauth2.token")  # real ADC: a service account's token, on every call

    listed = json.loads(run_cli("runs", "list", "--state", tmp_path / "runs.db", "--format", "json").stdout)
    assert [(row["kind"], row["succeeded"], row["intervals"]) for row in listed] == [("backfill", 10, 10)]
    shown = run_cli("runs", "show", report["backfill_id"], "--state", tmp_path / "runs.db")
    assert f"execution: {PARENT}/executions/<id>" in shown.stdout
    for interval in report["intervals"]:  # each interval's row names its run and execution
        assert re.search(rf"{interval['start_date']} .* {interval['run_id']} .* succeeded .* "
                         rf"{interval['execution'].rsplit('/', 1)[-1]}", shown.stdout), shown.stdout


def test_a_failed_execution_fails_the_backfill_naming_it_and_resume_starts_a_new_one_for_it_only(tmp_path, fake, deployed):
    (tmp_path / "failing").mkdir()
    with stub_executors(tmp_path / "failing", "default: {outcome: fail}\n") as (failing_url, _):
        broken = generated(tmp_path, params_file(tmp_path, failing_url, "broken.json"), "broken")
        fake.deploy_workflows(PROJECT, REGION, broken, when=lambda a: a["query_variables"]["start_date"] == DAYS[3])
        first = run_cli(*deployed, "--from", DAYS[0], "--to", DAYS[4], "--max-concurrent", "2")
    assert first.returncode == 1 and "Traceback" not in first.stderr
    [failed_name] = [n for n, e in fake.executions.items() if e.argument["query_variables"]["start_date"] == DAYS[3]]
    assert f"{DAYS[3]}..{DAYS[3]} failed: execution {failed_name} ended FAILED" in first.stderr
    assert "4 succeeded" in first.stderr and "1 failed" in first.stderr
    [(backfill_id,)] = query(tmp_path / "runs.db", "SELECT backfill_id FROM backfills")
    assert f"resume with: levelflow backfill {deployed[1]} --params {deployed[3]} --deployed --google-api-url {fake.base}" \
           in first.stderr and f"--resume {backfill_id}" in first.stderr

    overlapping = run_cli(*deployed, "--from", DAYS[2], "--to", DAYS[6])  # refused as for local backfills
    assert overlapping.returncode == 1 and f"did not finish: continue it with `levelflow backfill {deployed[1]} --deployed " \
                                           f"--resume {backfill_id}`" in " ".join(overlapping.stderr.split())
    assert len(fake.executions) == 5

    fake.deploy_workflows(PROJECT, REGION, generated(tmp_path, deployed[3], "fixed"))  # the fix, deployed
    resumed = run_cli(*deployed, "--resume", backfill_id, "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "succeeded" and report["resumes"] == 1
    assert arguments_by_day(fake) == Counter({**{day: 1 for day in DAYS[:5]}, DAYS[3]: 2})
    day4 = report["intervals"][3]
    assert day4["execution"] != failed_name and day4["execution"] in fake.executions
    run = json.loads(run_cli("runs", "show", day4["run_id"], "--state", tmp_path / "runs.db", "--format", "json").stdout)
    assert run["steps"][0]["async_job_ids"] == [failed_name, day4["execution"]]  # one run, an attempt per execution
    assert fake.problems == []


def test_a_killed_backfill_resumes_polling_the_executions_it_started(tmp_path, fake, deployed):
    db = tmp_path / "runs.db"
    fake.hold(lambda argument: argument["query_variables"]["start_date"] >= DAYS[3])  # days 4.. stay ACTIVE
    first = subprocess.Popen([sys.executable, "-m", "levelflow", *map(str, deployed), "--from", DAYS[0], "--to", DAYS[-1],
                              "--max-concurrent", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, recorded = time.monotonic() + 90, 0
        while time.monotonic() < deadline:
            try:  # days 1-3 done, days 4-6 started and on record: nothing else can start until one ends
                done = query(db, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'")[0][0] if db.exists() else 0
                recorded = query(db, "SELECT COUNT(*) FROM attempts WHERE async_job_id IS NOT NULL")[0][0] if done else 0
            except sqlite3.OperationalError:  # the record is being created: its tables are not there yet
                done = 0
            if done == 3 and recorded == 6:
                break
            time.sleep(0.05)
        assert first.poll() is None and (done, recorded) == (3, 6), first.communicate()
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    active = {n for n, e in fake.executions.items() if e.argument["query_variables"]["start_date"] in DAYS[3:6]}
    assert len(active) == 3 and len(fake.executions) == 6
    [(backfill_id, status)] = query(db, "SELECT backfill_id, status FROM backfills")
    assert status == "running"  # what SIGKILL leaves

    fake.release()
    resumed = run_cli(*deployed, "--max-concurrent", "3", "--resume", backfill_id, "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "succeeded" and [i["status"] for i in report["intervals"]] == ["succeeded"] * 10
    assert arguments_by_day(fake) == Counter(DAYS)  # one execution per interval: the active ones were polled again
    assert {i["execution"] for i in report["intervals"][3:6]} == active
    assert query(db, "SELECT COUNT(*) FROM runs")[0][0] == 10 and fake.problems == []


def test_sigterm_stops_the_polling_not_the_executions(tmp_path, fake, deployed):
    db = tmp_path / "runs.db"
    fake.hold(lambda argument: True)
    first = subprocess.Popen([sys.executable, "-m", "levelflow", *map(str, deployed), "--from", DAYS[0], "--to", DAYS[3],
                              "--max-concurrent", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fake.calls(GET)) < 4 and time.monotonic() < deadline:  # both executions started, recorded and polled
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    _out, err = first.communicate(timeout=60)
    assert first.returncode == 143 and "Traceback" not in err and "--resume bf-" in err
    assert not fake.calls("workflowexecutions.projects.locations.workflows.executions.cancel")
    assert {execution.cancelled for execution in fake.executions.values()} == {False} and len(fake.executions) == 2
    assert query(db, "SELECT status FROM backfills") == [("interrupted",)]
    assert sorted(query(db, "SELECT status, async_job_id FROM attempts")) == sorted(
        ("interrupted", name) for name in fake.executions)


def test_a_workflow_not_deployed_is_a_clear_error(tmp_path, fake, stub):
    params = params_file(tmp_path, stub[0])
    fake.deploy_workflows("another-project", REGION, generated(tmp_path, params))
    result = run_cli("backfill", definition(tmp_path), "--params", params, "--deployed", "--google-api-url", fake.base,
                     "--state", tmp_path / "runs.db", "--from", DAYS[0], "--to", DAYS[-1], "--max-concurrent", "2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"error: workflow {WORKFLOW} is not deployed in projects/{PROJECT}/locations/{REGION} (the Workflow "
            f"Executions API answered HTTP 404 NOT_FOUND: Resource '{PARENT}' was not found)") in result.stderr
    assert len(fake.calls(CREATE)) <= 2 and fake.executions == {}  # no further interval was started
    assert query(tmp_path / "runs.db", "SELECT status FROM backfills") == [("failed",)]


@pytest.mark.parametrize("extra, message", [
    (["--executor-url", "http://127.0.0.1:9"], "--deployed starts executions of the deployed workflow, which calls what it "
                                               "was deployed with: drop --executor-url"),
    (["--simulate"], "drop --simulate"),
    (["--step-mode", "native", "--jobs-dir", "."], "drop --step-mode, --jobs-dir"),
    (["--max-parallel", "5"], "drop --max-parallel"),
    (["--google-api-url", "ftp://x"], "--google-api-url must be an http:// or https:// URL"),
])
def test_local_options_with_deployed_are_usage_errors(tmp_path, extra, message):
    result = run_cli("backfill", definition(tmp_path), "--params", PARAMS, "--deployed", "--state", tmp_path / "runs.db",
                     "--from", DAYS[0], "--to", DAYS[1], *extra)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs.db").exists()


def test_composer_pipelines_are_backfilled_by_airflow(tmp_path):
    result = run_cli("backfill", definition(tmp_path, engine="composer"), "--params", PARAMS, "--deployed",
                     "--state", tmp_path / "runs.db", "--from", DAYS[0], "--to", DAYS[1])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{WORKFLOW} is a composer pipeline: backfill its DAG with Airflow's own backfill (`airflow dags backfill" \
           in " ".join(result.stderr.split())
    assert not (tmp_path / "runs.db").exists()


def test_a_local_backfill_is_not_resumed_as_a_deployed_one(tmp_path):
    db = tmp_path / "runs.db"
    local = run_cli("backfill", definition(tmp_path), "--params", PARAMS, "--state", db, "--simulate", "--format", "json",
                    "--from", DAYS[0], "--to", DAYS[1])
    assert local.returncode == 0, local.stderr
    connection = sqlite3.connect(db)
    connection.execute("UPDATE backfills SET status = 'interrupted'")
    connection.commit()
    connection.close()
    backfill_id = json.loads(local.stdout)["backfill_id"]
    resumed = run_cli("backfill", definition(tmp_path), "--params", PARAMS, "--state", db, "--deployed", "--force",
                      "--google-api-url", "http://127.0.0.1:9", "--resume", backfill_id)
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr
    assert f"backfill {backfill_id} started against the built-in simulator" in resumed.stderr
    assert "this resume would use the deployed workflow" in resumed.stderr and "add --force" not in resumed.stderr
