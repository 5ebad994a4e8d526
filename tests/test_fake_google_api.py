"""fake_google_api over real HTTP: each lifecycle, cancel, duplicates, validation, auth, transient
errors, Cloud Storage names."""
import base64

import pytest
import requests

from fake_google_api import FakeGoogle

TOKEN = {"Authorization": "Bearer test-token"}
DATAPROC = "https://dataproc.googleapis.com/v1/projects/p/locations/europe-west1"
DATAFLOW = "https://dataflow.googleapis.com/v1b3/projects/p/locations/europe-west1"
REPO = "projects/p/locations/europe-west1/repositories/repo"
DATAFORM = f"https://dataform.googleapis.com/v1/{REPO}"
BQ = "https://bigquery.googleapis.com/bigquery/v2/projects/p"
SPARK = {"sparkBatch": {"mainClass": "com.acme.Main", "jarFileUris": ["gs://b/app.jar"]}}


@pytest.fixture
def fake():
    with FakeGoogle() as running:
        yield running


def call(fake, verb, url, body=None, headers=TOKEN):
    return requests.request(verb, fake.url_for(url), json=body, headers=headers, timeout=10)


def ok(fake, verb, url, body=None) -> dict:
    answer = call(fake, verb, url, body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_url_for_maps_google_hosts_under_the_fake(fake):
    assert fake.url_for("https://dataproc.googleapis.com/v1/x?batchId=a") == f"{fake.base}/dataproc.googleapis.com/v1/x?batchId=a"
    assert fake.base.startswith("http://127.0.0.1:")


def test_dataproc_batch_lifecycle(fake):
    operation = ok(fake, "POST", f"{DATAPROC}/batches?batchId=aef-1", SPARK)
    assert operation["name"].startswith("projects/p/regions/europe-west1/operations/") and operation["done"] is False
    assert operation["metadata"]["@type"] == "type.googleapis.com/google.cloud.dataproc.v1.BatchOperationMetadata"
    assert operation["metadata"]["batch"] == "projects/p/locations/europe-west1/batches/aef-1"
    states = [ok(fake, "GET", f"{DATAPROC}/batches/aef-1")["state"] for _ in range(4)]
    assert states == ["PENDING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    done = ok(fake, "GET", f"https://dataproc.googleapis.com/v1/{operation['name']}")
    assert done["done"] is True and done["response"]["state"] == "SUCCEEDED"
    assert [r.method_id for r in fake.requests][:2] == ["dataproc.projects.locations.batches.create", "dataproc.projects.locations.batches.get"]
    assert fake.requests[0].query == {"batchId": "aef-1"} and fake.requests[0].body == SPARK
    assert fake.problems == []


def test_dataproc_failure_carries_the_state_message(fake):
    fake.scenario("aef-bad", polls=0, final="failure", message="Job failed with exit code 1")
    operation = ok(fake, "POST", f"{DATAPROC}/batches?batchId=aef-bad", SPARK)
    batch = ok(fake, "GET", f"{DATAPROC}/batches/aef-bad")
    assert (batch["state"], batch["stateMessage"]) == ("FAILED", "Job failed with exit code 1")
    assert ok(fake, "GET", f"https://dataproc.googleapis.com/v1/{operation['name']}")["error"]["message"] == "Job failed with exit code 1"


def test_dataproc_cancel_through_the_operation(fake):
    fake.scenario("aef-slow", never_finish=True)
    operation = ok(fake, "POST", f"{DATAPROC}/batches?batchId=aef-slow", SPARK)
    assert [ok(fake, "GET", f"{DATAPROC}/batches/aef-slow")["state"] for _ in range(5)][-1] == "RUNNING"
    assert ok(fake, "POST", f"https://dataproc.googleapis.com/v1/{operation['name']}:cancel") == {}
    assert [ok(fake, "GET", f"{DATAPROC}/batches/aef-slow")["state"] for _ in range(2)] == ["CANCELLING", "CANCELLED"]
    assert ok(fake, "GET", f"https://dataproc.googleapis.com/v1/{operation['name']}")["error"]["code"] == 1  # Code.CANCELLED
    assert len(fake.calls("dataproc.projects.regions.operations.cancel")) == 1
    again = call(fake, "POST", f"https://dataproc.googleapis.com/v1/{operation['name']}:cancel")
    assert again.status_code == 400 and again.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_dataproc_duplicate_and_invalid_batch_ids(fake):
    ok(fake, "POST", f"{DATAPROC}/batches?batchId=aef-1", SPARK)
    duplicate = call(fake, "POST", f"{DATAPROC}/batches?batchId=aef-1", SPARK)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["status"] == "ALREADY_EXISTS"
    assert call(fake, "POST", f"{DATAPROC}/batches?batchId=AEF_1", SPARK).status_code == 400
    assert call(fake, "POST", f"{DATAPROC}/batches?batchId=aef-2", {}).status_code == 400  # no batch config


def test_dataflow_flex_template_lifecycle_and_cancel(fake):
    body = {"launchParameter": {"jobName": "salesdaily", "containerSpecGcsPath": "gs://dataflow-templates-europe-west1/latest/flex/X"}}
    job = ok(fake, "POST", f"{DATAFLOW}/flexTemplates:launch", body)["job"]
    assert {k: job[k] for k in ("projectId", "name", "location")} == {"projectId": "p", "name": "salesdaily", "location": "europe-west1"}
    states = [ok(fake, "GET", f"{DATAFLOW}/jobs/{job['id']}")["currentState"] for _ in range(3)]
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_DONE"]

    fake.scenario("stuck", never_finish=True)
    stuck = ok(fake, "POST", f"{DATAFLOW}/flexTemplates:launch", {"launchParameter": {"jobName": "stuck"}})["job"]
    again = ok(fake, "POST", f"{DATAFLOW}/flexTemplates:launch", {"launchParameter": {"jobName": "stuck"}})["job"]
    assert again["id"] == stuck["id"]  # an active job of that name is returned, not duplicated
    ok(fake, "PUT", f"{DATAFLOW}/jobs/{stuck['id']}", {"requestedState": "JOB_STATE_CANCELLED"})
    assert [ok(fake, "GET", f"{DATAFLOW}/jobs/{stuck['id']}")["currentState"] for _ in range(2)] == ["JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"]
    assert call(fake, "POST", f"{DATAFLOW}/flexTemplates:launch", {"launchParameter": {"jobName": "Sales_Daily"}}).status_code == 400


def test_dataflow_failure(fake):
    fake.default.final = "failure"
    job = ok(fake, "POST", f"{DATAFLOW}/flexTemplates:launch", {"launchParameter": {"jobName": "j"}})["job"]
    assert [ok(fake, "GET", f"{DATAFLOW}/jobs/{job['id']}")["currentState"] for _ in range(3)][-1] == "JOB_STATE_FAILED"


def test_dataform_compile_invoke_poll_and_cancel(fake):
    vars_ = {"start_date": "'2026-01-01'", "end_date": "'2026-01-01'"}
    compiled = ok(fake, "POST", f"{DATAFORM}/compilationResults", {"gitCommitish": "main", "codeCompilationConfig": {"vars": vars_}})
    assert compiled["name"].startswith(f"{REPO}/compilationResults/")
    assert fake.compilations[0]["codeCompilationConfig"]["vars"] == vars_
    invocation = ok(fake, "POST", f"{DATAFORM}/workflowInvocations",
                    {"compilationResult": compiled["name"], "invocationConfig": {"includedTags": ["daily"]}})
    assert invocation["state"] == "RUNNING" and invocation["name"].startswith(f"{REPO}/workflowInvocations/")
    name = invocation["name"]
    assert [ok(fake, "GET", f"https://dataform.googleapis.com/v1/{name}")["state"] for _ in range(3)] == ["RUNNING", "RUNNING", "SUCCEEDED"]

    fake.scenario("hourly", never_finish=True)
    slow = ok(fake, "POST", f"{DATAFORM}/workflowInvocations", {"compilationResult": compiled["name"], "invocationConfig": {"includedTags": ["hourly"]}})
    assert ok(fake, "POST", f"https://dataform.googleapis.com/v1/{slow['name']}:cancel", {}) == {}
    assert [ok(fake, "GET", f"https://dataform.googleapis.com/v1/{slow['name']}")["state"] for _ in range(2)] == ["CANCELING", "CANCELLED"]
    unknown = call(fake, "POST", f"{DATAFORM}/workflowInvocations", {"compilationResult": f"{REPO}/compilationResults/nope"})
    assert unknown.status_code == 404


def test_dataform_read_file_answers_base64_contents(fake):
    fake.dataform_files[REPO] = {"definitions/wf/JOB.sqlx": "config { type: 'operations' }\nSELECT ${start_date}"}
    answer = ok(fake, "GET", f"{DATAFORM}:readFile?path=definitions/wf/JOB.sqlx")
    assert base64.b64decode(answer["contents"]).decode().endswith("SELECT ${start_date}")
    assert call(fake, "GET", f"{DATAFORM}:readFile?path=definitions/wf/OTHER.sqlx").status_code == 404


def test_bigquery_job_lifecycle_failure_and_cancel(fake):
    body = {"jobReference": {"projectId": "p", "jobId": "aef_1", "location": "EU"},
            "configuration": {"query": {"query": "SELECT 1", "useLegacySql": False, "priority": "BATCH"}}}
    job = ok(fake, "POST", f"{BQ}/jobs", body)
    assert job["jobReference"] == {"projectId": "p", "jobId": "aef_1", "location": "EU"} and job["status"]["state"] == "PENDING"
    assert [ok(fake, "GET", f"{BQ}/jobs/aef_1?location=EU")["status"]["state"] for _ in range(3)] == ["PENDING", "RUNNING", "DONE"]
    assert call(fake, "POST", f"{BQ}/jobs", body).status_code == 409

    fake.scenario("aef_bad", polls=1, final="failure", message="Syntax error: Unexpected keyword")
    ok(fake, "POST", f"{BQ}/jobs", {**body, "jobReference": {"projectId": "p", "jobId": "aef_bad"}})
    statuses = [ok(fake, "GET", f"{BQ}/jobs/aef_bad")["status"] for _ in range(2)]  # a US job: no location needed
    assert statuses[-1]["state"] == "DONE" and statuses[-1]["errorResult"]["message"] == "Syntax error: Unexpected keyword"

    fake.scenario("aef_slow", never_finish=True)
    ok(fake, "POST", f"{BQ}/jobs", {**body, "jobReference": {"projectId": "p", "jobId": "aef_slow", "location": "europe-west1"}})
    assert call(fake, "GET", f"{BQ}/jobs/aef_slow").status_code == 404  # a single-region job needs its location
    assert ok(fake, "POST", f"{BQ}/jobs/aef_slow/cancel?location=europe-west1")["kind"] == "bigquery#jobCancelResponse"
    final = [ok(fake, "GET", f"{BQ}/jobs/aef_slow?location=europe-west1")["status"] for _ in range(2)][-1]
    assert final["state"] == "DONE" and final["errorResult"]["reason"] == "stopped"


def test_storage_media_download_with_an_encoded_name(fake):
    fake.objects["bucket/dataproc-serverless-job-executor/JOB.json"] = b'{"spark_args": []}'
    url = "https://storage.googleapis.com/storage/v1/b/bucket/o/dataproc-serverless-job-executor%2FJOB.json"
    media = call(fake, "GET", url + "?alt=media")
    assert media.status_code == 200 and media.content == b'{"spark_args": []}'
    assert ok(fake, "GET", url)["name"] == "dataproc-serverless-job-executor/JOB.json"
    missing = call(fake, "GET", url.replace("JOB", "OTHER") + "?alt=media")
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    raw_slash = call(fake, "GET", "https://storage.googleapis.com/storage/v1/b/bucket/o/dataproc-serverless-job-executor/JOB.json?alt=media")
    assert raw_slash.status_code == 404  # not encoded: no such method


def test_pubsub_publish_records_messages(fake):
    answer = ok(fake, "POST", "https://pubsub.googleapis.com/v1/projects/p/topics/alerts:publish",
                {"messages": [{"data": base64.b64encode(b"step failed").decode(), "attributes": {"run": "r1"}}]})
    assert len(answer["messageIds"]) == 1
    assert fake.published == [{"topic": "projects/p/topics/alerts", "data": b"step failed", "attributes": {"run": "r1"}}]


def test_a_bad_body_is_400_and_recorded_as_a_problem(fake):
    answer = call(fake, "POST", f"{DATAPROC}/batches?batchId=aef-1", {"sparkBatch": {"mainClazz": "M"}})
    assert answer.status_code == 400
    assert answer.json()["error"] == {"code": 400, "status": "INVALID_ARGUMENT", "message": "body.sparkBatch.mainClazz: no such field in SparkBatch"}
    assert fake.problems == ["dataproc.projects.locations.batches.create: body.sparkBatch.mainClazz: no such field in SparkBatch"]
    assert fake.requests[-1].status == 400


def test_unknown_paths_are_404(fake):
    answer = call(fake, "GET", f"{DATAPROC}/batchez/x")
    assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND"
    assert fake.problems and "no such method" in fake.problems[0]


def test_requests_without_a_token_are_401_unless_told(fake):
    answer = call(fake, "GET", f"{DATAPROC}/batches/x", headers={})
    assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert fake.problems == ["dataproc.projects.locations.batches.get: no Authorization: Bearer header"]
    with FakeGoogle(require_auth=False) as lax:
        assert call(lax, "GET", f"{DATAPROC}/batches/x", headers={}).status_code == 404  # past auth: no such batch


def test_transient_errors_by_resource_and_by_method(fake):
    fake.scenario("aef-flaky", transient=(1, 3), transient_status=429)
    assert call(fake, "POST", f"{DATAPROC}/batches?batchId=aef-flaky", SPARK).json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    ok(fake, "POST", f"{DATAPROC}/batches?batchId=aef-flaky", SPARK)  # the retry creates it: no 409
    assert call(fake, "GET", f"{DATAPROC}/batches/aef-flaky").status_code == 429
    assert ok(fake, "GET", f"{DATAPROC}/batches/aef-flaky")["state"] == "PENDING"  # a refused get did not advance it

    fake.fail_method("bigquery.jobs.get", ordinals=(2,), status=503)
    ok(fake, "POST", f"{BQ}/jobs", {"configuration": {"query": {"query": "SELECT 1"}}, "jobReference": {"jobId": "j1"}})
    assert [call(fake, "GET", f"{BQ}/jobs/j1").status_code for _ in range(3)] == [200, 503, 200]
    assert fake.problems == []


EXECUTIONS = "https://workflowexecutions.googleapis.com/v1/projects/p/locations/europe-west1/workflows"
GREETER = {"greeter.yaml": """main:
  params: [args]
  steps:
    - check:
        switch:
          - condition: ${args.name == "nobody"}
            raise: {message: "nobody to greet"}
    - greet:
        return: ${"hello " + args.name}
"""}


def test_workflow_executions_run_the_deployed_source_and_answer_active_first(fake):
    fake.deploy_workflows("p", "europe-west1", GREETER)
    created = ok(fake, "POST", f"{EXECUTIONS}/greeter/executions", {"argument": '{"name": "ada"}'})
    failing = ok(fake, "POST", f"{EXECUTIONS}/greeter/executions", {"argument": '{"name": "nobody"}'})
    assert created["state"] == "ACTIVE" and created["name"].startswith("projects/p/locations/europe-west1/workflows/greeter/executions/")
    for execution in fake.executions.values():
        execution.thread.join(30)
    url = f"https://workflowexecutions.googleapis.com/v1/{created['name']}"
    states = [ok(fake, "GET", url)["state"] for _ in range(fake.active_polls + 1)]
    assert states == ["ACTIVE"] * fake.active_polls + ["SUCCEEDED"]
    assert ok(fake, "GET", url)["result"] == '"hello ada"'
    for _ in range(fake.active_polls):
        ok(fake, "GET", f"https://workflowexecutions.googleapis.com/v1/{failing['name']}")
    failed = ok(fake, "GET", f"https://workflowexecutions.googleapis.com/v1/{failing['name']}")
    assert failed["state"] == "FAILED" and "nobody to greet" in failed["error"]["payload"]
    assert fake.problems == []


def test_workflow_executions_hold_cancel_and_errors(fake):
    fake.deploy_workflows("p", "europe-west1", GREETER)
    fake.hold(lambda argument: argument["name"] == "bob")
    held = ok(fake, "POST", f"{EXECUTIONS}/greeter/executions", {"argument": '{"name": "bob"}'})
    url = f"https://workflowexecutions.googleapis.com/v1/{held['name']}"
    fake.executions[held["name"]].thread.join(30)
    assert {ok(fake, "GET", url)["state"] for _ in range(5)} == {"ACTIVE"}
    assert ok(fake, "POST", f"{url}:cancel", {})["state"] == "CANCELLED"
    assert ok(fake, "GET", url)["state"] == "CANCELLED"
    again = call(fake, "POST", f"{url}:cancel", {})
    assert again.status_code == 400 and again.json()["error"]["status"] == "FAILED_PRECONDITION"
    missing = call(fake, "POST", f"{EXECUTIONS}/other/executions", {"argument": "{}"})
    assert missing.status_code == 404 and missing.json() == {"error": {
        "code": 404, "message": "Resource 'projects/p/locations/europe-west1/workflows/other' was not found",
        "status": "NOT_FOUND"}}
    not_json = call(fake, "POST", f"{EXECUTIONS}/greeter/executions", {"argument": "{name"})
    assert not_json.status_code == 400 and not_json.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert call(fake, "GET", f"{url}x").status_code == 404
    assert fake.problems == []
