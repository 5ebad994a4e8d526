"""Hand-written workflows calling Google APIs in the patched emulator, against FakeGoogle:
connectors (skip_polling, LRO polling, retries, OperationError, time-out) and OAuth2 HTTP."""
import textwrap

import pytest

from cloud_workflows_emulator import EPOCH, run
from fake_google_api import FakeGoogle

PARENT = "projects/p/locations/europe-west1"
BATCH = {"sparkBatch": {"mainClass": "com.acme.Main", "jarFileUris": ["gs://b/app.jar"]},
         "runtimeConfig": {"properties": {"spark.executor.cores": "4"}}}


@pytest.fixture
def fake():
    with FakeGoogle() as running:
        yield running


def workflow(steps: str) -> dict[str, str]:
    return {"main.yaml": "main:\n  params: [args]\n  steps:\n" + textwrap.indent(textwrap.dedent(steps), "    ")}


CREATE_THEN_POLL = workflow("""
    - create:
        call: googleapis.dataproc.v1.projects.locations.batches.create
        args:
          parent: ${args.parent}
          batchId: ${args.batch_id}
          body: ${args.batch}
          connector_params:
            skip_polling: true
        result: operation
    - init:
        assign:
          - states: []
    - poll:
        call: http.get
        args:
          url: ${"https://dataproc.googleapis.com/v1/" + operation.metadata.batch}
          auth:
            type: OAuth2
        result: batch
    - keep:
        assign:
          - states: ${list.concat(states, batch.body.state)}
    - again:
        switch:
          - condition: ${batch.body.state == "PENDING" or batch.body.state == "RUNNING"}
            steps:
              - wait:
                  call: sys.sleep
                  args:
                    seconds: 30
                  next: poll
    - done:
        return:
          operation: ${operation.name}
          states: ${states}
          now: ${sys.now()}
""")


def test_skip_polling_connector_then_oauth2_http_polls(fake):
    outcome = run(CREATE_THEN_POLL, {"parent": PARENT, "batch_id": "aef-1767225600", "batch": BATCH}, google=fake)
    assert outcome.error is None, outcome.error
    assert outcome.result["states"] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert outcome.result["operation"].startswith("projects/p/regions/europe-west1/operations/")
    assert outcome.result["now"] == EPOCH + 60  # two virtual waits of 30 s
    first, *gets = fake.requests
    assert (first.method, first.host, first.path, first.query) == ("POST", "dataproc.googleapis.com", f"/v1/{PARENT}/batches", {"batchId": "aef-1767225600"})
    assert first.body == BATCH and first.method_id == "dataproc.projects.locations.batches.create"
    assert [(r.method, r.path, r.method_id) for r in gets] == [("GET", f"/v1/{PARENT}/batches/aef-1767225600", "dataproc.projects.locations.batches.get")] * 3
    assert fake.problems == []


def test_an_http_call_without_auth_is_refused_as_by_google(fake):
    files = workflow("""
        - get:
            try:
              call: http.get
              args:
                url: https://dataproc.googleapis.com/v1/projects/p/locations/r/batches/x
              result: answer
            except:
              as: e
              steps:
                - fail:
                    return: ${e}
    """)
    error = run(files, {}, google=fake).result
    assert error["code"] == 401 and error["tags"] == ["HttpError"] and error["body"]["error"]["status"] == "UNAUTHENTICATED"
    assert fake.problems == ["dataproc.projects.locations.batches.get: no Authorization: Bearer header"]


BLOCKING_CREATE = workflow("""
    - create:
        try:
          call: googleapis.dataproc.v1.projects.locations.batches.create
          args:
            parent: ${args.parent}
            batchId: ${args.batch_id}
            body: ${args.batch}
            connector_params: ${args.connector_params}
          result: operation
        except:
          as: e
          steps:
            - failed:
                return:
                  error: ${e}
                  now: ${sys.now()}
    - done:
        return:
          operation: ${operation}
          now: ${sys.now()}
""")


def blocking(fake, batch_id, **connector_params):
    return run(BLOCKING_CREATE, {"parent": PARENT, "batch_id": batch_id, "batch": BATCH, "connector_params": connector_params}, google=fake).result


def test_a_long_running_connector_polls_its_operation_until_done(fake):
    fake.scenario("aef-lro", polls=3)
    result = blocking(fake, "aef-lro", polling_policy={"initial_delay": 10, "multiplier": 2, "max_delay": 30})
    assert result["operation"]["done"] is True and result["operation"]["response"]["state"] == "SUCCEEDED"
    assert result["now"] == EPOCH + 10 + 20 + 30 + 30  # the polling policy, on the virtual clock
    assert [r.method_id for r in fake.requests] == ["dataproc.projects.locations.batches.create"] + ["dataproc.projects.regions.operations.get"] * 4


def test_a_failed_operation_raises_operation_error(fake):
    fake.scenario("aef-bad", polls=1, final="failure", message="exit code 1")
    error = blocking(fake, "aef-bad")["error"]
    assert error["tags"] == ["OperationError"] and error["operation"]["error"]["message"] == "exit code 1"


def test_a_connector_that_outlives_its_timeout_raises_timeout_error(fake):
    fake.scenario("aef-stuck", never_finish=True)
    result = blocking(fake, "aef-stuck", timeout=120)
    assert result["error"]["tags"] == ["TimeoutError"] and result["now"] <= EPOCH + 120


def test_connectors_retry_429_by_default_and_give_up_on_400(fake):
    fake.scenario("aef-flaky", transient=(1, 2))
    result = blocking(fake, "aef-flaky", skip_polling=True)
    assert result["operation"]["done"] is False and result["now"] == EPOCH + 1 + 1.25  # retry.default_backoff
    assert [r.status for r in fake.requests] == [429, 429, 200]
    bad = run(BLOCKING_CREATE, {"parent": PARENT, "batch_id": "aef-x", "batch": {"sparkBatch": {"mainClazz": "M"}}, "connector_params": {}},
              google=fake).result["error"]
    assert bad["code"] == 400 and bad["tags"] == ["HttpError"]
    assert fake.problems == ["dataproc.projects.locations.batches.create: body.sparkBatch.mainClazz: no such field in SparkBatch"]


def test_bigquery_jobs_insert_blocks_until_the_job_is_done(fake):
    files = workflow("""
        - insert:
            call: googleapis.bigquery.v2.jobs.insert
            args:
              projectId: p
              body:
                jobReference: {projectId: p, jobId: aef_1, location: EU}
                configuration:
                  query: {query: SELECT 1, useLegacySql: false, priority: BATCH}
            result: job
        - done:
            return: ${job.status.state}
    """)
    assert run(files, {}, google=fake).result == "DONE"
    assert [(r.method_id, r.query) for r in fake.requests] == [("bigquery.jobs.insert", {})] + [("bigquery.jobs.get", {"location": "EU"})] * 3


def test_a_connector_argument_the_method_lacks_is_a_problem(fake):
    files = workflow("""
        - get:
            call: googleapis.dataproc.v1.projects.locations.batches.get
            args:
              batchName: projects/p/locations/r/batches/x
    """)
    assert run(files, {}, google=fake).error["tags"] == ["TypeError"]
    assert fake.problems == ["googleapis.dataproc.v1.projects.locations.batches.get: missing argument name"]
    assert fake.requests == []


def test_dataform_and_storage_connectors_reach_the_fake(fake):
    fake.dataform_files["projects/p/locations/l/repositories/r"] = {"definitions/wf/JOB.sqlx": "SELECT 1"}
    files = workflow("""
        - read:
            call: googleapis.dataform.v1.projects.locations.repositories.readFile
            args:
              name: projects/p/locations/l/repositories/r
              path: definitions/wf/JOB.sqlx
            result: file
        - done:
            return: ${text.decode(base64.decode(file.contents))}
    """)
    assert run(files, {}, google=fake).result == "SELECT 1"
    assert fake.requests[0].path == "/v1/projects/p/locations/l/repositories/r:readFile"
    assert fake.requests[0].query == {"path": "definitions/wf/JOB.sqlx"}
