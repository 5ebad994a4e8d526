"""`levelflow run --step-mode native`: the local engine calls Google's APIs itself, here the
fake Google APIs (fake_google_api, written from Google's discovery documents), with
application-default credentials whose access tokens the fake's OAuth 2.0 endpoint issues.
The requests equal, field by field, those of the native Cloud Workflows workflow (run in the
emulator against the same fake) and what the AEF executors build from the same job files."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import cloud_workflows_emulator as cwe
import levelflow
from conftest import PARAMS, pipeline, run_cli, step
from levelflow.backends import GenerateOptions, engine_for
from levelflow.backends.local import LocalRunOptions, run_local
from native_jobs import (BUCKET, CANCELS, DATES, JOBS, PROJECT, PROPERTIES, bigquery, dataflow, dataform, dataproc,
                         stocked_fake)

ARGUMENTS = {"query_variables": DATES, "workflow_properties": PROPERTIES}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    with stocked_fake() as google:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", google.adc_file(tmp_path))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)  # else google-auth warns it found none
        yield google


def definition(tmp_path, levels, name="native_pipe"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pipeline(levels)))
    return path


def run_native(tmp_path, levels, fake, **options):
    plan = levelflow.load_plan(definition(tmp_path, levels), levelflow.load_params(PARAMS))
    report = run_local(plan, tmp_path / "runs.db", LocalRunOptions(
        step_mode="native", google_api_url=fake.base, time_scale=0, arguments=ARGUMENTS, **options))
    assert fake.problems == [], fake.problems  # every request was one Google's discovery documents accept
    return report


def statuses(report):
    return {s["job_id"]: s["status"] for s in report["steps"]}


def comparable(record):
    """A request with its generated ids (batch, job, compilation result) replaced by their kind."""
    text = json.dumps({"method": record.method_id, "path": record.path, "query": record.query, "body": record.body})
    for pattern, kind in ((r"aef-[0-9a-f-]{36}", "<batch id>"), (r"aef_[0-9a-f_]{36}", "<job id>"),
                          (r"compilationResults/c\d+", "compilationResults/<id>"), (r"op-\d+", "op-<id>"),
                          (r"workflowInvocations/i\d+", "workflowInvocations/<id>"), (r"_00-\d+", "_00-<id>")):
        text = re.sub(pattern, kind, text)
    return json.loads(text)


def test_every_kind_sends_what_the_native_workflow_sends(tmp_path, fake):
    levels = [[[dataproc(), dataflow()]], [[dataform()], [bigquery()]]]
    report = run_native(tmp_path, levels, fake)
    assert report["status"] == "succeeded", [s["error"] for s in report["steps"]]
    assert set(statuses(report).values()) == {"succeeded"}
    assert report["executor"] == f"google {fake.base}"
    local = sorted((comparable(r) for r in fake.requests if r.method_id != "oauth2.token"), key=json.dumps)

    with stocked_fake() as other:  # the same definition as a native workflow, in the emulator
        plan = levelflow.load_plan(definition(tmp_path, levels), levelflow.load_params(PARAMS))
        files = engine_for("cloud_workflows").generate(plan, GenerateOptions(step_mode="native"))
        outcome = cwe.run(files, ARGUMENTS, google=other)
        assert outcome.statuses() == statuses(report) and other.problems == []
        workflow = sorted((comparable(r) for r in other.requests), key=json.dumps)
    assert local == workflow
    assert len(local) == 3 + 6 + 4 * 3 and fake.calls("oauth2.token")  # job files; creates and a readFile; 3 polls a job


def test_a_failed_job_fails_its_step_with_its_state_and_message(tmp_path, fake):
    fake.scenario("aef-", final="failure", message="Spark driver exited 1")
    [record] = run_native(tmp_path, [[[dataproc()]]], fake)["steps"]
    assert record["status"] == "failed" and "ended FAILED: Spark driver exited 1" in record["error"]
    assert record["async_job_ids"][0].startswith("projects/proc-project/locations/europe-west1/batches/aef-")


@pytest.mark.parametrize("make, match, poll, cancel, cancel_body", CANCELS, ids=[row[0].__name__ for row in CANCELS])
def test_a_job_outliving_its_time_out_is_cancelled_through_its_api(tmp_path, fake, make, match, poll, cancel, cancel_body):
    fake.scenario(match, never_finish=True)
    [record] = run_native(tmp_path, [[[make(WAIT_TIME_SECONDS="60", ASYNC_TIMEOUT_LOOP_IN_MINUTES="5")]]], fake)["steps"]
    assert record["status"] == "failed" and record["error"].startswith("timed out: ")
    assert record["error"].endswith("; it was cancelled through its API")
    [cancelled] = fake.calls(cancel)
    assert cancelled.body == cancel_body and cancelled.status == 200
    polls = [r for r in fake.calls(poll) if r.path.endswith(record["async_job_ids"][0].split("?")[0].rsplit("/", 1)[1])]
    assert len(polls) >= 5  # one a minute for five minutes (Dataproc reads the batch once more for its operation)


def test_transient_api_faults_are_retried_with_the_same_request(tmp_path, fake):
    fake.fail_method("dataproc.projects.locations.batches.create", (1, 2), 503)
    fake.fail_method("dataform.projects.locations.repositories.workflowInvocations.get", (1,), 429)
    report = run_native(tmp_path, [[[dataproc()], [dataform()]]], fake)
    assert statuses(report) == {"J1": "succeeded", "J3": "succeeded"}
    creates = fake.calls("dataproc.projects.locations.batches.create")
    assert [r.status for r in creates] == [503, 503, 200] and len({r.query["batchId"] for r in creates}) == 1
    assert {s["job_id"]: s["call_retries"] for s in report["steps"]} == {"J1": 2, "J3": 1}


def test_retries_and_continue_if_fail_behave_as_in_functions_mode(tmp_path, fake):
    fake.scenario("copyorders2", final="failure")
    report = run_native(tmp_path, [[[dataflow(RETRIES="1", CONTINUE_IF_FAIL="true"), dataproc()]]], fake)
    assert statuses(report) == {"J2": "continued", "J1": "succeeded"} and report["steps"][0]["attempts"] == 2
    assert len(fake.calls("dataflow.projects.locations.flexTemplates.launch")) == 2


def test_a_missing_or_operator_native_job_file_fails_the_step_naming_it(tmp_path, fake):
    del fake.objects[f"{BUCKET}/dataform-tag-executor/daily_marts.json"]
    fake.objects[f"{BUCKET}/dataproc-serverless-job-executor/spark_load.json"] = json.dumps(
        {"project_id": "p", "region": "r", "batch": {}}).encode()
    report = run_native(tmp_path, [[[dataform()], [dataproc()]]], fake)
    errors = {s["job_id"]: s["error"] for s in report["steps"]}
    assert errors["J3"].startswith(f"reading gs://{BUCKET}/dataform-tag-executor/daily_marts.json") and "HTTP 404" in errors["J3"]
    assert "No such object" in errors["J3"]
    assert "operator-native job file, which only Composer operators mode reads" in errors["J1"]
    assert not fake.calls("dataproc.projects.locations.batches.create")


def test_jobs_dir_is_read_instead_of_the_bucket(tmp_path, fake):
    jobs = tmp_path / "jobs"
    for name, job in JOBS.items():
        (jobs / name).parent.mkdir(parents=True, exist_ok=True)
        (jobs / name).write_text(json.dumps({**job, "branch": "release"} if "dataform" in name else job))
    report = run_native(tmp_path, [[[dataform()]]], fake, jobs_dir=jobs)
    assert report["status"] == "succeeded" and not fake.calls("storage.objects.get")
    [compiled] = fake.calls("dataform.projects.locations.repositories.compilationResults.create")
    assert compiled.body["gitCommitish"] == "release"


def test_sync_steps_and_unknown_executors_are_refused_before_anything_runs(tmp_path, fake):
    levels = [[[dataproc(), step("S1", TYPE="sync", FUNCTION_NAME="notifier"),
                step("U1", FUNCTION_ID_NAME="my-own-executor")]]]
    result = run_cli("run", definition(tmp_path, levels), "--params", PARAMS, "--step-mode", "native",
                     "--google-api-url", fake.base, "--state", tmp_path / "runs.db")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "native_pipe.json:" in result.stderr and "STEPS[1].TYPE: step 'S1': a sync step" in result.stderr
    assert "STEPS[2].FUNCTION_ID_NAME: step 'U1': unknown executor 'my-own-executor'" in result.stderr
    assert fake.requests == [] and not (tmp_path / "runs.db").exists()


@pytest.mark.parametrize("extra, message", [
    (["--step-mode", "native", "--simulate"], "--step-mode native calls Google's APIs, not executor functions: drop --simulate"),
    (["--step-mode", "native", "--executor-url", "http://127.0.0.1:9"], "drop --executor-url"),
    (["--google-api-url", "http://127.0.0.1:9"], "--google-api-url goes with --step-mode native"),
    (["--step-mode", "native", "--google-api-url", "ftp://x"], "--google-api-url must be an http:// or https:// URL"),
])
def test_options_that_mean_nothing_together_are_usage_errors(tmp_path, extra, message):
    result = run_cli("run", definition(tmp_path, [[[dataproc()]]]), "--params", PARAMS, *extra)
    assert result.returncode == 2 and message in result.stderr


def test_the_cli_runs_natively_and_a_killed_run_resumes_polling_the_same_job(tmp_path, fake):
    """End to end in a child process: a Dataproc batch that keeps running; the process is killed
    while it polls; the batch then ends and `--resume` polls it to success: one batch created."""
    running = fake.scenario("aef-", never_finish=True)
    state = tmp_path / "runs.db"
    command = [sys.executable, "-m", "levelflow", "run", str(definition(tmp_path, [[[dataproc(WAIT_TIME_SECONDS="1")]], [[dataform()]]])),
               "--params", str(PARAMS), "--step-mode", "native", "--google-api-url", fake.base, "--state", str(state),
               "--time-scale", "0.05", "--format", "json"]
    arguments = tmp_path / "arguments.json"
    arguments.write_text(json.dumps(ARGUMENTS))
    child = subprocess.Popen([*command, "--arguments", str(arguments)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while len(fake.calls("dataproc.projects.locations.batches.get")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    [run_id] = [row[0] for row in sqlite3.connect(state).execute("select run_id from runs")]
    running.never_finish = False
    resumed = subprocess.run([*command, "--resume", run_id], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "succeeded" and report["resumes"] == 1
    assert len(fake.calls("dataproc.projects.locations.batches.create")) == 1
    assert report["executor"] == f"google {fake.base}" and fake.problems == []
