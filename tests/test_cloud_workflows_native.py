"""Cloud Workflows native step mode: what generation accepts, refuses and embeds (the runs of
the generated workflows against the fake Google APIs are in test_cloud_workflows_native_runs.py)."""
import json

import pytest
import yaml

from conftest import PARAMS, pipeline, run_cli, step

DATAPROC_JOB = {"dataproc_serverless_project_id": "proc-project", "dataproc_serverless_region": "europe-west1",
                "jar_file_location": "gs://jars/app.jar", "spark_app_main_class": "com.example.Main",
                "spark_args": ["--day", "1"], "dataproc_serverless_runtime_version": "2.2",
                "dataproc_service_account": "spark@proc-project.iam.gserviceaccount.com",
                "spark_app_properties": '{"spark.executor.cores": "4"}', "subnetwork": "regions/europe-west1/subnetworks/default"}


def native_definition(tmp_path, steps, name="native_pipe"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pipeline([[steps]])))
    return path


def generate(definition, out, *extra):
    return run_cli("generate", definition, "--params", PARAMS, "--step-mode", "native", "--out", out, *extra)


def step_data(out, name="native_pipe") -> list[dict]:
    doc = yaml.safe_load((out / f"{name}.yaml").read_text())
    return [job for level in doc["main"]["steps"][0]["init"]["assign"][0]["pipeline"]["levels"]
            for thread in level["threads"] for job in thread["jobs"]]


def test_each_known_executor_becomes_a_native_step_with_its_api_and_job_file(tmp_path):
    definition = native_definition(tmp_path, [
        step("1", FUNCTION_ID_NAME="dataproc-serverless-job-executor"),
        step("2", FUNCTION_ID_NAME="dataflow-flextemplate-job-executor", JOB_NAME="Load_Orders_2"),
        step("3", FUNCTION_ID_NAME="dataform-tag-executor"),
        step("4", FUNCTION_ID_NAME="bq-saved-query-executor"),
        {"JOB_ID": "5", "JOB_NAME": "job_5", "TYPE": "workflows", "workflows_name": "child-flow",
         "WAIT_TIME_SECONDS": "10", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "5"}])
    result = generate(definition, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    jobs = step_data(tmp_path / "out")
    assert [(j["type"], j.get("api"), j.get("file")) for j in jobs] == [
        ("native", "dataproc", "dataproc-serverless-job-executor/job_1.json"),
        ("native", "dataflow", "dataflow-flextemplate-job-executor/Load_Orders_2.json"),
        ("native", "dataform", "dataform-tag-executor/job_3.json"),
        ("native", "bigquery", None),  # its query comes from Dataform, it has no job file
        ("workflows", None, None)]
    assert jobs[1]["df_name"] == "loadorders2"
    text = (tmp_path / "out" / "native_pipe.yaml").read_text()
    assert "cloudfunctions.net" not in text and "intermediate" not in text
    assert "OIDC" not in text and "call_executor" not in text  # no function is called


def test_a_sync_step_an_unknown_executor_and_a_status_function_are_located_errors(tmp_path):
    definition = native_definition(tmp_path, [
        {"JOB_ID": "1", "JOB_NAME": "job_1", "TYPE": "sync", "FUNCTION_NAME": "pipeline-notifier"},
        step("2", FUNCTION_ID_NAME="my-own-executor"),
        step("3", FUNCTION_ID_NAME="dataform-tag-executor", FUNCTION_STATUS_NAME="dataform-status")])
    result = generate(definition, tmp_path / "out")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert "definition[0].THREADS[0].STEPS[0].TYPE: step '1': a sync step" in errors[0]
    assert "STEPS[1].FUNCTION_ID_NAME: step '2': unknown executor 'my-own-executor' for native mode" in errors[1]
    assert "dataproc-serverless-job-executor" in errors[1] and "--step-mode functions" in errors[1]
    assert "STEPS[2].FUNCTION_STATUS_NAME" in errors[2]
    checked = run_cli("validate", definition, "--step-mode", "native")  # the pre-commit hook sees the same
    assert checked.returncode == 1 and [line for line in checked.stderr.splitlines() if line.startswith("error:")] == errors


def test_jobs_dir_embeds_checked_aef_format_job_files(tmp_path):
    jobs = tmp_path / "jobs" / "dataproc-serverless-job-executor"
    jobs.mkdir(parents=True)
    (jobs / "job_1.json").write_text(json.dumps(DATAPROC_JOB))
    (jobs / "job_2.json").write_text(json.dumps({**DATAPROC_JOB, "spark_args": ["${not_an_expression}"]}))
    definition = native_definition(tmp_path, [step("1", FUNCTION_ID_NAME="dataproc-serverless-job-executor"),
                                              step("2", FUNCTION_ID_NAME="dataproc-serverless-job-executor")])
    result = generate(definition, tmp_path / "out", "--jobs-dir", tmp_path / "jobs")
    assert result.returncode == 0, result.stderr
    first, second = step_data(tmp_path / "out")
    assert first["params"] == DATAPROC_JOB and "file" not in first
    assert json.loads(second["params_json"]) == {**DATAPROC_JOB, "spark_args": ["${not_an_expression}"]}
    assert "${not_an" not in (tmp_path / "out" / "native_pipe.yaml").read_text()  # data never becomes an expression


@pytest.mark.parametrize("content, message", [
    (None, "job parameter file not found in --jobs-dir"),
    ("{not json", "cannot read job parameters"),
    ('{"dataproc_serverless_project_id": NaN}', "NaN is not a JSON number"),
    (json.dumps({"project_id": "p", "region": "r", "batch": {}}), "only Composer operators mode reads"),
    (json.dumps({"dataproc_serverless_project_id": "p"}), "missing job parameters"),
])
def test_a_bad_embedded_job_file_is_an_error_naming_the_file(tmp_path, content, message):
    jobs = tmp_path / "jobs" / "dataproc-serverless-job-executor"
    jobs.mkdir(parents=True)
    if content is not None:
        (jobs / "job_1.json").write_text(content)
    definition = native_definition(tmp_path, [step("1", FUNCTION_ID_NAME="dataproc-serverless-job-executor")])
    result = generate(definition, tmp_path / "out", "--jobs-dir", tmp_path / "jobs")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert str(jobs / "job_1.json") in result.stderr and message in result.stderr, result.stderr


def test_jobs_dir_means_nothing_in_functions_mode(tmp_path):
    (tmp_path / "jobs").mkdir()
    definition = native_definition(tmp_path, [step("1")])
    result = run_cli("generate", definition, "--params", PARAMS, "--out", tmp_path / "out", "--jobs-dir", tmp_path / "jobs")
    assert result.returncode == 1 and "--jobs-dir is for native mode only" in result.stderr


def test_plan_lists_the_roles_of_the_workflows_service_account_per_project(tmp_path):
    jobs = tmp_path / "jobs" / "dataproc-serverless-job-executor"
    jobs.mkdir(parents=True)
    (jobs / "job_1.json").write_text(json.dumps(DATAPROC_JOB))
    definition = native_definition(tmp_path, [
        step("1", FUNCTION_ID_NAME="dataproc-serverless-job-executor"),
        step("2", FUNCTION_ID_NAME="bq-saved-query-executor", STEP_PROPERTIES={"dataform_project_id": "sql-project"}),
        {"JOB_ID": "3", "JOB_NAME": "job_3", "TYPE": "workflows", "workflows_name": "child-flow",
         "WAIT_TIME_SECONDS": "10", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "5"}])
    result = run_cli("plan", definition, "--params", PARAMS, "--step-mode", "native", "--jobs-dir", tmp_path / "jobs", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    own = "projects/" + next(p["ParameterValue"] for p in json.loads(PARAMS.read_text()) if p["ParameterKey"] == "pProjectID")
    assert report["step_mode"] == "native"
    assert [(g["role"], g["on"], g["steps"]) for g in report["iam"]] == sorted([
        ("roles/dataproc.editor", "projects/proc-project", ["1"]),
        ("roles/iam.serviceAccountUser", "serviceAccounts/spark@proc-project.iam.gserviceaccount.com", ["1"]),
        ("roles/bigquery.jobUser", own, ["2"]),
        ("roles/dataform.viewer", "projects/sql-project", ["2"]),
        ("roles/workflows.invoker", own, ["3"]),
    ], key=lambda g: (g[1], g[0]))  # embedded job files: no bucket to read them from
    text = run_cli("plan", definition, "--params", PARAMS, "--step-mode", "native")
    assert "roles/storage.objectViewer on buckets/" in text.stdout and "projects/<dataproc_serverless_project_id of" in text.stdout
    functions = run_cli("plan", definition, "--params", PARAMS, "--jobs-dir", tmp_path / "jobs")
    assert functions.returncode == 1 and "--jobs-dir is for native mode only" in functions.stderr
