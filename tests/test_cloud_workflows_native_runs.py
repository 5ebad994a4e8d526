"""Native-mode workflows run in workflows-emulator, their Google API calls routed to the fake
Google APIs (fake_google_api, written from Google's discovery documents and REST reference):
success, failure, time-out with cancel, transient faults, continue-if-fail, a split pipeline.
The requests that reach the fake are compared field by field with what the AEF executors
send for the same job files (docs/step-modes.md, from the AEF contract's job file table)."""
import base64
import json

import pytest

import cloud_workflows_emulator as cwe
import levelflow
from conftest import PARAMS, pipeline
from levelflow.backends.local.native import camel
from native_jobs import BUCKET, CANCELS, DATES, JOBS, PROJECT, REPOSITORY, bigquery, dataflow, dataform, dataproc, stocked_fake
from levelflow.backends import GenerateOptions, engine_for

def native_files(tmp_path, levels, name="native_pipe") -> dict[str, str]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pipeline(levels)))
    plan = levelflow.load_plan(path, levelflow.load_params(PARAMS))
    return engine_for("cloud_workflows").generate(plan, GenerateOptions(step_mode="native"))


@pytest.fixture
def fake():
    with stocked_fake() as google:
        yield google


def run(files, fake, **arguments):
    args = {"query_variables": DATES, "workflow_properties": {
        "dataform_project_id": "sql-project", "dataform_location": "europe-west1", "repository_name": "warehouse"}, **arguments}
    outcome = cwe.run(files, args, google=fake)
    assert fake.problems == [], fake.problems  # every request was one Google's discovery documents accept
    return outcome


def bodies(fake, method_id):
    return [r.body for r in fake.calls(method_id)]


def test_every_executor_kind_sends_the_request_the_aef_executor_builds(tmp_path, fake):
    files = native_files(tmp_path, [[[dataproc(), dataflow()]], [[dataform()], [bigquery()]]])
    outcome = run(files, fake)
    assert outcome.statuses() == {"J1": "succeeded", "J2": "succeeded", "J3": "succeeded", "J4": "succeeded"}

    reads = sorted(urllib_unquote(r.path.rsplit("/o/", 1)[1]) for r in fake.calls("storage.objects.get"))
    assert reads == sorted(JOBS) and all(r.query.get("alt") == "media" for r in fake.calls("storage.objects.get"))

    [create] = fake.calls("dataproc.projects.locations.batches.create")
    assert create.path == "/v1/projects/proc-project/locations/europe-west1/batches"
    assert create.query["batchId"].startswith("aef-") and len(create.query["batchId"]) == 40
    assert create.body == {
        "sparkBatch": {"jarFileUris": ["gs://jars/app.jar"], "mainClass": "com.example.Main", "args": ["--day", "1"]},
        "runtimeConfig": {"version": "2.2", "properties": {"spark.executor.cores": "4"}},
        "environmentConfig": {
            "executionConfig": {"serviceAccount": "spark@proc-project.iam.gserviceaccount.com",
                                "subnetworkUri": "projects/proc-project/regions/europe-west1/subnetworks/default"},
            "peripheralsConfig": {"sparkHistoryServerConfig": {
                "dataprocCluster": "projects/proc-project/regions/europe-west1/clusters/history"}}}}

    assert bodies(fake, "dataflow.projects.locations.flexTemplates.launch") == [{"launchParameter": {
        "jobName": "copyorders2", "parameters": {"query": "select 1"},
        "containerSpecGcsPath": "gs://dataflow-templates-europe-west1/latest/flex/Jdbc_to_BigQuery",
        "environment": {"tempLocation": "gs://flow-temp/dataflow/temp", "maxWorkers": 5, "network": "default",
                        "subnetwork": "regions/europe-west1/subnetworks/default"}}}]

    assert bodies(fake, "dataform.projects.locations.repositories.compilationResults.create") == [
        {"gitCommitish": "main", "codeCompilationConfig": {"vars": {"start_date": "'2026-11-30'", "end_date": "'2026-12-01'"}}}]
    [invocation] = bodies(fake, "dataform.projects.locations.repositories.workflowInvocations.create")
    assert invocation["invocationConfig"] == {"includedTags": ["daily"]}
    assert invocation["compilationResult"].startswith(REPOSITORY + "/compilationResults/")

    [read] = fake.calls("dataform.projects.locations.repositories.readFile")
    assert read.query["path"] == "definitions/native_pipe/orders_summary.sqlx"
    [insert] = fake.calls("bigquery.jobs.insert")
    assert insert.path == f"/bigquery/v2/projects/{PROJECT}/jobs"
    assert insert.body["jobReference"]["jobId"].startswith("aef_") and insert.body["jobReference"]["projectId"] == PROJECT
    assert insert.body["configuration"] == {"query": {
        "query": "select * from t where d between '2026-11-30' and '2026-12-01'\n", "useLegacySql": False, "priority": "BATCH"}}
    assert all(r.method_id for r in fake.requests)  # nothing but documented methods was called


def urllib_unquote(text):
    import urllib.parse

    return urllib.parse.unquote(text)


def test_a_failed_job_fails_its_step_with_the_state_and_its_message(tmp_path, fake):
    fake.scenario("aef-", final="failure", message="Spark driver exited 1")
    outcome = run(native_files(tmp_path, [[[dataproc()]]]), fake)
    [record] = outcome.report["steps"]
    assert record["status"] == "failed" and "ended FAILED" in record["error"]["message"]
    assert "Spark driver exited 1" in record["error"]["message"]


@pytest.mark.parametrize("make, match, poll, cancel, cancel_body", CANCELS, ids=[row[0].__name__ for row in CANCELS])
def test_a_job_outliving_its_time_out_is_cancelled_through_its_api(tmp_path, fake, make, match, poll, cancel, cancel_body):
    fake.scenario(match, never_finish=True)
    outcome = run(native_files(tmp_path, [[[make(WAIT_TIME_SECONDS="60", ASYNC_TIMEOUT_LOOP_IN_MINUTES="5")]]]), fake)
    [record] = outcome.report["steps"]
    assert record["status"] == "failed" and record["error"]["message"].startswith("timed out: ")
    [cancelled] = fake.calls(cancel)
    assert cancelled.body == cancel_body
    assert len(fake.calls(poll)) == 5  # one a minute for five minutes, then the cancel


def test_transient_api_faults_are_retried_with_the_same_request(tmp_path, fake):
    fake.fail_method("dataproc.projects.locations.batches.create", (1, 2), 503)
    fake.fail_method("dataform.projects.locations.repositories.workflowInvocations.get", (1,), 429)
    outcome = run(native_files(tmp_path, [[[dataproc()], [dataform()]]]), fake)
    assert outcome.statuses() == {"J1": "succeeded", "J3": "succeeded"}
    creates = fake.calls("dataproc.projects.locations.batches.create")
    assert [r.status for r in creates] == [503, 503, 200] and len({r.query["batchId"] for r in creates}) == 1


def test_retries_and_continue_if_fail_behave_as_in_functions_mode(tmp_path, fake):
    fake.scenario("copyorders2", final="failure")
    files = native_files(tmp_path, [[[dataflow(RETRIES="1", CONTINUE_IF_FAIL="true"), dataproc()]]])
    outcome = run(files, fake)
    assert outcome.statuses() == {"J2": "continued", "J1": "succeeded"}
    assert outcome.report["steps"][0]["attempts"] == 2
    assert len(fake.calls("dataflow.projects.locations.flexTemplates.launch")) == 2


def test_a_split_native_pipeline_runs_its_parts_in_order(tmp_path, fake):
    padding = {"jobs_definitions_bucket": BUCKET, "note": "x" * 2000}  # big step properties: over 128 KB with few steps
    levels = [[[dataproc(f"L{li}T{ti}", f"spark_{li}_{ti}", STEP_PROPERTIES=padding)] for ti in range(10)] for li in range(8)]
    spark = fake.objects[f"{BUCKET}/dataproc-serverless-job-executor/spark_load.json"]
    for li in range(8):
        for ti in range(10):
            fake.objects[f"{BUCKET}/dataproc-serverless-job-executor/spark_{li}_{ti}.json"] = spark
    files = native_files(tmp_path, levels, name="big_native")
    assert len(files) >= 3, list(files)  # a parent and its parts
    outcome = run(files, fake)
    assert outcome.error is None and outcome.result["status"] == "succeeded", outcome.error
    assert set(outcome.statuses().values()) == {"succeeded"} and len(outcome.statuses()) == 80
    creates = fake.calls("dataproc.projects.locations.batches.create")
    assert len(creates) == 80 and len({r.query["batchId"] for r in creates}) == 80


def test_a_missing_job_file_fails_the_step_naming_the_file(tmp_path, fake):
    del fake.objects[f"{BUCKET}/dataform-tag-executor/daily_marts.json"]
    outcome = run(native_files(tmp_path, [[[dataform()]]]), fake)
    [record] = outcome.report["steps"]
    assert record["status"] == "failed" and record["error"]["code"] == 404


def test_the_sqlx_config_block_is_dropped_and_the_dates_quoted(tmp_path, fake):
    fake.dataform_files[REPOSITORY]["definitions/native_pipe/orders_summary.sqlx"] = base64.b64decode(
        base64.b64encode(b"select ${start_date} as s, '${end_date}' as e"))
    run(native_files(tmp_path, [[[bigquery()]]]), fake)
    [insert] = bodies(fake, "bigquery.jobs.insert")
    assert insert["configuration"]["query"]["query"] == "select '2026-11-30' as s, ''2026-12-01'' as e"


def test_native_requests_equal_what_composer_operators_mode_builds_from_the_same_job_files(tmp_path, fake):
    """One job file, three modes: the native workflow's request bodies are the ones Composer's
    operators send (levelflow.executors' request functions), in the APIs' JSON spelling."""
    from levelflow import executors

    run(native_files(tmp_path, [[[dataproc(), dataflow(), dataform()]]]), fake)
    job = {name.split("/")[1].removesuffix(".json"): params for name, params in JOBS.items()}
    run_data = {"dates": DATES, "workflow_properties": {}, "workflow_name": "native_pipe", "project_id": PROJECT}
    proc = executors.dataproc_request("aef", job["spark_load"], {"job_name": "spark_load"}, run_data)
    [create] = fake.calls("dataproc.projects.locations.batches.create")
    assert create.body == camel(proc["batch"], keep=("properties",))
    flow = executors.dataflow_request("aef", job["Copy_Orders_2"], {"dataflow_job_name": "copyorders2"}, run_data)
    [launch] = bodies(fake, "dataflow.projects.locations.flexTemplates.launch")
    expected = flow["body"]
    expected["launchParameter"]["environment"]["maxWorkers"] = int(expected["launchParameter"]["environment"]["maxWorkers"])
    assert launch == expected  # the operator sends "5", which the API's int32 field also reads as 5
    form = executors.dataform_request("aef", job["daily_marts"], {}, run_data)
    [compiled] = bodies(fake, "dataform.projects.locations.repositories.compilationResults.create")
    assert compiled == camel(form["compilation_result"], keep=("vars",))
    [invoked] = bodies(fake, "dataform.projects.locations.repositories.workflowInvocations.create")
    assert invoked["invocationConfig"] == camel(form["invocation_config"])
