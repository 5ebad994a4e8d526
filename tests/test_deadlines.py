"""deadline_minutes (docs/semantics.md, "Deadlines"): a run still going after it fails, its running
jobs cancelled through their APIs, and a step that would start after it fails at once. The
native workflow runs in workflows-emulator and on the local engine against the fake Google APIs
(each parallel branch on its own clock, as on the service); the Composer DAG gets
dagrun_timeout; `levelflow plan` warns when the deadline is shorter than the critical path."""
import json

import pytest

import cloud_workflows_emulator as cwe
import levelflow
from conftest import PARAMS, pipeline, run_cli
from levelflow.backends import GenerateOptions, engine_for
from levelflow.backends.local import LocalRunOptions, run_local
from native_jobs import DATES, PROPERTIES, dataform, dataproc, stocked_fake

CANCEL = "dataform.projects.locations.repositories.workflowInvocations.cancel"
SLOW = {"WAIT_TIME_SECONDS": "60", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "60"}


def definition(tmp_path, deadline=10):
    # thread 1: a job that never ends; thread 2: one that would end after 30 polls, which
    # continues on failure, then a step that would start after the deadline; level 2 never runs
    levels = [[[dataform("J3", **SLOW)], [dataproc("J1", **SLOW, CONTINUE_IF_FAIL="true"), dataproc("J9", job_name="spark_load", **SLOW)]],
              [[dataproc("J7", **SLOW)]]]
    data = pipeline(levels, deadline_minutes=deadline)
    data["definition"][0]["THREADS"][1]["STEPS"][1]["JOB_NAME"] = "spark_load"  # same job file, another JOB_ID
    data["definition"][0]["THREADS"][1]["STEPS"][0]["JOB_NAME"] = "spark_first"
    data["definition"][1]["THREADS"][0]["STEPS"][0]["JOB_NAME"] = "spark_late"
    path = tmp_path / "native_pipe.json"
    path.write_text(json.dumps(data))
    return path


def stocked(fake):
    spark = fake.objects[next(name for name in fake.objects if name.endswith("spark_load.json"))]
    for name in ("spark_first", "spark_late"):
        fake.objects[f"my-orchestration-dev-jobs/dataproc-serverless-job-executor/{name}.json"] = spark
    fake.scenario("daily", never_finish=True)
    fake.scenario("aef-", polls=30)
    return fake


def check(statuses, errors, fake, stopped_by):
    assert statuses == {"J3": "failed", "J1": "continued", "J9": "failed", "J7": "not_started"}
    assert stopped_by in errors["J3"] and stopped_by in errors["J1"]
    assert "was not started" in errors["J9"]
    assert len(fake.calls(CANCEL)) == 1  # the Dataform invocation still running at the deadline
    assert len(fake.calls("dataproc.projects.regions.operations.cancel")) == 1  # and J1's batch
    assert len(fake.calls("dataproc.projects.locations.batches.create")) == 1  # J9 never started a batch


def test_the_workflow_fails_at_its_deadline_and_cancels_its_running_jobs(tmp_path):
    plan = levelflow.load_plan(definition(tmp_path), levelflow.load_params(PARAMS))
    files = engine_for("cloud_workflows").generate(plan, GenerateOptions(step_mode="native"))
    with stocked_fake() as fake:
        outcome = cwe.run(files, {"query_variables": DATES, "workflow_properties": PROPERTIES}, google=stocked(fake))
        assert fake.problems == []
        report = outcome.error
        assert report["message"].startswith("levelflow: the run's deadline (10 min, deadline_minutes) was exceeded; ")
        errors = {s["job_id"]: (s.get("error") or {}).get("message", "") for s in report["steps"]}
        check(outcome.statuses(), errors, fake, "timed out")  # the poll's time-out ended it; the run's message says why


def test_the_local_engine_keeps_the_same_deadline(tmp_path, monkeypatch):
    plan = levelflow.load_plan(definition(tmp_path), levelflow.load_params(PARAMS))
    with stocked_fake() as fake:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", fake.adc_file(tmp_path))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "levelflow-tests")
        report = run_local(plan, tmp_path / "runs.db", LocalRunOptions(
            step_mode="native", google_api_url=stocked(fake).base, time_scale=0,
            arguments={"query_variables": DATES, "workflow_properties": PROPERTIES}))
        assert report["status"] == "failed" and fake.problems == []
        check({s["job_id"]: s["status"] for s in report["steps"]}, {s["job_id"]: s["error"] or "" for s in report["steps"]}, fake,
              "deadline")


def test_no_deadline_no_deadline_code(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(pipeline([[[dataform()]]])))
    files = engine_for("cloud_workflows").generate(levelflow.load_plan(path, levelflow.load_params(PARAMS)), GenerateOptions())
    assert not any("deadline" in text for text in files.values())


def test_plan_warns_when_the_deadline_is_shorter_than_the_critical_path(tmp_path):
    path = definition(tmp_path, deadline=30)  # critical path: 60 + 60 + 60 min of time-outs
    result = run_cli("plan", path, "--params", PARAMS)
    assert result.returncode == 0 and "deadline_minutes 30 is shorter than the critical path, 180 min" in result.stderr
    assert "native_pipe.json:" in result.stderr
    assert run_cli("plan", path, "--params", PARAMS, "--strict").returncode == 1
    assert "critical path" not in run_cli("plan", definition(tmp_path, deadline=200), "--params", PARAMS).stderr


@pytest.mark.parametrize("value", [0, -5, "soon", 10 ** 7])
def test_a_bad_deadline_is_a_located_error(tmp_path, value):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(pipeline([[[dataform()]]], deadline_minutes=value)))
    result = run_cli("validate", path)
    assert result.returncode == 1 and "deadline_minutes: must be a number of minutes > 0" in result.stderr


@pytest.mark.parametrize("version", ["airflow3", "airflow2"])
def test_the_dag_gets_the_deadline_as_its_run_time_out(tmp_path, version):
    from airflow_support import run_harness

    path = tmp_path / "timed.json"
    path.write_text(json.dumps(pipeline([[[dataform()]]], engine="composer", deadline_minutes=90)))
    dags = tmp_path / "dags"
    levelflow.generate([path], PARAMS, dags)
    result = run_harness(version, tmp_path, "inspect", dags)
    assert result["import_errors"] == {} and result["dags"]["timed"]["dagrun_timeout"] == 90 * 60
