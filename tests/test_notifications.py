"""`notify` (docs/notifications.md): a run's report published on the pipeline's Pub/Sub topic when
it fails (or succeeds). Cloud Workflows runs in workflows-emulator, its Pub/Sub connector call
routed to the fake Google APIs (projects.topics.publish, checked against the discovery
document); the Composer DAG's callbacks run in real Airflow with dag.test()."""
import json

import pytest

import cloud_workflows_emulator as cwe
import levelflow
from conftest import PARAMS, pipeline, run_cli, step
from levelflow.backends import GenerateOptions, engine_for
from native_jobs import BUCKET, PROJECT, PROPERTIES, dataform, stocked_fake

TOPIC = f"projects/{PROJECT}/topics/pipeline-alerts"


def native_workflow(tmp_path, notify, levels=None, name="native_pipe"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pipeline(levels or [[[dataform()]]], notify=notify)))
    plan = levelflow.load_plan(path, levelflow.load_params(PARAMS))
    return engine_for("cloud_workflows").generate(plan, GenerateOptions(step_mode="native"))


def run(files, fake, args=None):
    outcome = cwe.run(files, {"workflow_properties": PROPERTIES} if args is None else args, google=fake)
    assert fake.problems == [], fake.problems
    return outcome


def test_a_failed_run_publishes_exactly_one_message_with_its_report(tmp_path):
    files = native_workflow(tmp_path, {"pubsub_topic": "pipeline-alerts"})
    with stocked_fake() as fake:
        fake.scenario("daily", final="failure")
        outcome = run(files, fake)
        assert outcome.error is not None and outcome.error["status"] == "failed"
        [message] = fake.published
    assert message["topic"] == TOPIC
    assert json.loads(message["data"]) == outcome.error  # the report the run raised, whole
    assert message["attributes"] == {"pipeline": "native_pipe", "status": "failed", "execution_id": "test-execution-1"}


def test_success_is_published_only_when_asked(tmp_path):
    with stocked_fake() as fake:
        run(native_workflow(tmp_path, {"pubsub_topic": "pipeline-alerts"}), fake)
        assert fake.published == []
    with stocked_fake() as fake:
        outcome = run(native_workflow(tmp_path, {"pubsub_topic": "pipeline-alerts", "on_success": True, "on_failure": False}), fake)
        [message] = fake.published
        assert json.loads(message["data"]) == outcome.result and message["attributes"]["status"] == "succeeded"
    with stocked_fake() as fake:
        fake.scenario("daily", final="failure")
        run(native_workflow(tmp_path, {"pubsub_topic": "pipeline-alerts", "on_success": True, "on_failure": False}), fake)
        assert fake.published == []


def test_unusable_arguments_are_a_failure_that_is_published(tmp_path):
    with stocked_fake() as fake:
        outcome = run(native_workflow(tmp_path, {"pubsub_topic": "pipeline-alerts"}), fake, {"workflow_properties": "not json"})
        assert "unusable execution argument" in outcome.error["message"]
        [message] = fake.published
        assert json.loads(message["data"])["message"] == outcome.error["message"]


def test_a_split_pipeline_publishes_once_from_its_parent(tmp_path):
    padding = {"note": "x" * 2000, **PROPERTIES, "jobs_definitions_bucket": BUCKET}
    levels = [[[step(f"L{li}T{ti}", JOB_NAME=f"marts_{li}_{ti}", FUNCTION_ID_NAME="dataform-tag-executor",
                     STEP_PROPERTIES=padding)] for ti in range(10)] for li in range(8)]
    files = native_workflow(tmp_path, {"pubsub_topic": "pipeline-alerts"}, levels=levels)
    assert len(files) >= 3 and sum("publish_report:" in text for text in files.values()) == 1
    with stocked_fake() as fake:
        job = fake.objects[f"{BUCKET}/dataform-tag-executor/daily_marts.json"]
        fake.objects.update({f"{BUCKET}/dataform-tag-executor/marts_{li}_{ti}.json": job for li in range(8) for ti in range(10)})
        fake.fail_method("dataform.projects.locations.repositories.compilationResults.create", (3,), 400)
        outcome = run(files, fake, {})
        assert outcome.error is not None
        [message] = fake.published
        assert message["attributes"]["status"] == "failed" and json.loads(message["data"])["failed"]


def test_a_pipeline_without_notify_carries_no_publishing_code(tmp_path):
    files = native_workflow(tmp_path, None)
    assert not any("publish_report" in text or "pubsub" in text for text in files.values())


@pytest.mark.parametrize("notify, message", [
    ({"pubsub_topic": "goog-alerts"}, "must be a Pub/Sub topic id"),
    ({"on_failure": True}, "missing required key pubsub_topic"),
    ({"pubsub_topic": "alerts", "email": ["not an address"]}, "must be a list of e-mail addresses"),
    ("alerts", "must be a mapping with pubsub_topic"),
    ({"pubsub_topic": "alerts", "on_fail": True}, "did you mean on_failure?"),
])
def test_a_bad_notify_is_a_located_error(tmp_path, notify, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(pipeline([[[dataform()]]], notify=notify)))
    result = run_cli("validate", path)
    assert result.returncode == 1 and message in result.stderr and "notify" in result.stderr


@pytest.fixture(scope="module", params=["airflow3", "airflow2"])
def airflow_published(request, tmp_path_factory):
    """A failing and a succeeding Composer DAG (functions mode, against the stub executors) with
    notify, run with dag.test() in real Airflow; their callbacks publish to the fake Pub/Sub."""
    from airflow_support import run_harness
    from fake_google_api import FakeGoogle
    from levelflow.scenario import Scenario
    from levelflow.stub_server import RunningStub

    work = tmp_path_factory.mktemp(f"notify-{request.param}")
    dags = work / "dags"
    scenario = Scenario.model_validate({"jobs": {"job_bad": {"outcome": "fail"}}})
    with RunningStub(scenario) as stub, FakeGoogle(require_auth=False) as fake:  # loopback: no token, as for the stub
        params = work / "platform-parameters-stub.json"
        params.write_text(json.dumps(json.loads(PARAMS.read_text()) + [
            {"ParameterKey": "pFunctionsBaseUrl", "ParameterValue": stub.url},
            {"ParameterKey": "pGoogleApisBaseUrl", "ParameterValue": fake.base}]))
        for name, job, notify in (("told_failed", "job_bad", {"pubsub_topic": "pipeline-alerts"}),
                                  ("told_succeeded", "job_good", {"pubsub_topic": "pipeline-alerts", "on_success": True}),
                                  ("quiet_success", "job_good", {"pubsub_topic": "pipeline-alerts"})):
            path = work / f"{name}.json"
            sync = {"JOB_ID": "S", "JOB_NAME": job, "TYPE": "sync", "FUNCTION_NAME": "notifier"}
            after = {"JOB_ID": "T", "JOB_NAME": f"{job}_after", "TYPE": "sync", "FUNCTION_NAME": "notifier"}
            path.write_text(json.dumps(pipeline([[[sync, after]]], engine="composer", name=name, notify=notify)))
            levelflow.generate([path], params, dags, options=GenerateOptions(step_mode="functions"))
        result = run_harness(request.param, work, "run", dags, "told_failed", "{}", "told_succeeded", "{}", "quiet_success", "{}")
        published = list(fake.published)
        assert fake.problems == [], fake.problems
    return request.param, result, published


def test_dag_callbacks_publish_one_message_with_the_report(airflow_published):
    version, result, published = airflow_published
    assert {dag: run["state"] for dag, run in result["runs"].items()} == {
        "told_failed": "failed", "told_succeeded": "success", "quiet_success": "success"}
    assert sorted(message["attributes"]["pipeline"] for message in published) == ["told_failed", "told_succeeded"]
    by_dag = {message["attributes"]["pipeline"]: message for message in published}
    failed = json.loads(by_dag["told_failed"]["data"])
    assert by_dag["told_failed"]["topic"] == TOPIC and by_dag["told_failed"]["attributes"]["status"] == "failed"
    succeeded = json.loads(by_dag["told_succeeded"]["data"])
    assert (failed["workflow"], failed["status"], succeeded["status"]) == ("told_failed", "failed", "succeeded")
    if version == "airflow3" and failed["steps"] is None:
        return  # Airflow 3's dag.test runs DAG callbacks with no Task SDK channel: no task states to report
    assert failed["failed"] == ["S"] and [(s["job_id"], s["status"]) for s in failed["steps"]] == [
        ("S", "failed"), ("T", "not_started")]
    assert {s["status"] for s in succeeded["steps"]} == {"succeeded"}
