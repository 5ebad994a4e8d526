"""The AEF double (`levelflow executors serve`) over real HTTP: every rule of the intermediate
and of the executors that docs/executor-protocol.md states, checked against what the deployed
functions' public code does (AEF orchestration framework, functions/, at c158804)."""
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from levelflow import protocol
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub

INTERMEDIATE = "orch-framework-intermediate"
DATES = {"start_date": "2026-11-30", "end_date": "2026-12-01"}
BUCKET = {"jobs_definitions_bucket": "jobs"}


def post(url, body, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def call(stub, call_type, job, executor="dataproc-serverless-job-executor", async_job_id=None, executor_url=None,
         workflow_properties=BUCKET, step_properties=None):
    body = protocol.request_body(call_type, workflow_name="wf", execution_id="e", job_name=job,
                                 function_url_to_call=f"{executor_url or stub.url}/{executor}", query_variables=DATES,
                                 workflow_properties=workflow_properties, step_properties=step_properties or {},
                                 async_job_id=async_job_id)
    return post(f"{stub.url}/{INTERMEDIATE}", body)


def scenario(**jobs):
    return Scenario.model_validate({"jobs": jobs})


def hop(stub, name):
    return [c for c in stub.state.calls if c["hop"] == name]


@pytest.fixture
def jobs_dir(tmp_path):
    folder = tmp_path / "jobs" / "dataproc-serverless-job-executor"
    folder.mkdir(parents=True)
    (folder / "present.json").write_text(json.dumps({"dataproc_serverless_project_id": "p"}))
    return tmp_path / "jobs"


def test_two_hops_start_poll_and_the_executor_body():
    with RunningStub(scenario(a={"polls": 2})) as stub:
        status, job_id = call(stub, "get_id", "a", step_properties='{"table": "t"}')  # a JSON string, as accepted
        assert status == 200 and re.fullmatch(r"aef-\d+-\d+", job_id)  # Dataproc: aef-<unix seconds>
        answers = [call(stub, "get_status", "a", async_job_id=job_id) for _ in range(3)]
        assert answers == [(200, "running"), (200, "running"), (200, "success")]
        executor = hop(stub, "executor")
        assert [c["answer"] for c in executor] == [job_id, "PENDING", "RUNNING", "SUCCEEDED"]  # the platform's words
        first, poll = executor[0], executor[1]
        assert first["body"] == {"workflow_properties": {**BUCKET, "table": "t"}, "workflow_name": "wf", "job_name": "a",
                                 "query_variables": {"start_date": "'2026-11-30'", "end_date": "'2026-12-01'"}}
        assert poll["body"]["job_id"] == job_id and "call_type" not in poll["body"]
        assert not first["entry"] and all(c["entry"] for c in hop(stub, "intermediate"))


def test_state_words_of_each_executor_family():
    with RunningStub(scenario(f={"outcome": "fail"})) as stub:
        properties = {**BUCKET, "dataform_project_id": "p", "dataform_location": "l", "repository_name": "r"}
        for executor, prefix, words in (("dataflow-flextemplate-job-executor", "aef_", ["JOB_STATE_QUEUED", "JOB_STATE_DONE"]),
                                        ("dataform-tag-executor", "aef-projects/", ["RUNNING", "SUCCEEDED"]),
                                        ("bq-saved-query-executor", "aef_definitions_wf_", ["PENDING", "DONE"])):
            stub.state.scenario = Scenario.model_validate({"default": {"polls": 1}})
            _, job_id = call(stub, "get_id", "ok", executor, workflow_properties=properties)
            assert job_id.startswith(prefix), job_id
            assert [call(stub, "get_status", "ok", executor, job_id, workflow_properties=properties) for _ in range(2)] == [
                (200, "running"), (200, "success")]
            assert [c["answer"] for c in hop(stub, "executor")[-2:]] == words


def test_failures_become_http_500_exception_answers():
    jobs = {"fails": {"outcome": "fail"}, "broken": {"outcome": "error", "fail_on": "start"}, "gone": {"http_status": 404},
            "odd": {"state": "CANCELLED"}}
    with RunningStub(scenario(**jobs)) as stub:
        _, job_id = call(stub, "get_id", "fails")
        status, text = call(stub, "get_status", "fails", async_job_id=job_id)
        assert (status, text) == (500, "Exception : Exception('Exception calling target function dataproc-serverless-job-executor:FAILED')")
        status, text = call(stub, "get_id", "broken")  # the executor's 200 error dict holds "error"
        assert status == 500 and text.startswith("Exception : ") and '{"error":"BadRequest","message":' in text
        [executor] = [c for c in hop(stub, "executor") if c["job_name"] == "broken"]
        assert executor["status"] == 200 and json.loads(executor["answer"])["error"] == "BadRequest"
        _, job_id = call(stub, "get_id", "gone")
        status, text = call(stub, "get_status", "gone", async_job_id=job_id)
        assert status == 500 and "Unexpected error in custom function: dataproc-serverless-job-executor:<HTTPError 404: 'Not Found'>" in text
        _, job_id = call(stub, "get_id", "odd")
        assert call(stub, "get_status", "odd", async_job_id=job_id)[1].endswith(":CANCELLED')")


def test_any_answer_holding_error_or_exception_fails_although_the_job_started():
    properties = {"dataform_project_id": "p", "dataform_location": "l", "repository_name": "r"}
    with RunningStub() as stub:
        status, text = call(stub, "get_id", "load_ERRORS", "bq-saved-query-executor", workflow_properties=properties)
        assert status == 500 and "aef_definitions_wf_load_ERRORS_sqlx_" in text
        assert stub.state.jobs  # the BigQuery job was started and is left running


def test_the_bucket_is_read_from_workflow_properties_and_job_files_from_the_bucket(jobs_dir):
    with RunningStub(jobs_dir=jobs_dir) as stub:
        assert call(stub, "get_id", "present")[0] == 200
        status, text = call(stub, "get_id", "missing")
        assert status == 500 and "AttributeError" in text and "NoneType" in text
        status, text = call(stub, "get_id", "present", workflow_properties={})  # no bucket at all
        assert status == 500 and "Dataproc API CREATE request failed" in text
        # a sync call straight to the executor carries no call_type: it starts a job, answering its id
        body = protocol.executor_body(workflow_name="wf", job_name="present", query_variables=DATES, properties=BUCKET)
        status, text = post(f"{stub.url}/dataproc-serverless-job-executor", body)
        assert status == 200 and protocol.is_job_id(text)
        status, text = post(f"{stub.url}/dataproc-serverless-job-executor", {**body, "workflow_properties": {}})
        assert status == 200 and protocol.error_dict(text)["error"] == "Exception"


def test_call_types_and_malformed_requests():
    with RunningStub() as stub:
        assert post(f"{stub.url}/{INTERMEDIATE}", {"job_name": "x"}) == (
            500, 'Exception : UnboundLocalError("cannot access local variable \'call_type\' where it is not associated with a value")')
        status, text = call(stub, "sync", "x")
        assert (status, text) == (500, "Exception : Exception('Invalid call type!')")
        status, text = post(f"{stub.url}/{INTERMEDIATE}", {"call_type": "get_status", "job_name": "x"})
        assert status == 500 and "UnboundLocalError" in text
        status, text = call(stub, "get_status", "x", async_job_id="aef-unknown")
        assert status == 500 and "NotFound" in text
        assert post(f"{stub.url}/{INTERMEDIATE}", None, raw=b"{not json")[0] == 400
        status, text = post(f"{stub.url}/dataform-tag-executor", None, raw=b"{not json")  # get_json(silent=True) -> None
        assert status == 200 and protocol.error_dict(text)["error"] == "AttributeError"
        status, text = call(stub, "get_id", "x", executor_url="http://192.0.2.1:9")  # never forwarded off this machine
        assert status == 500 and "only to loopback" in text


def test_generic_functions_answer_sync_when_called_directly_async_through_the_intermediate():
    with RunningStub(scenario(bad={"outcome": "error"})) as stub:
        body = protocol.executor_body(workflow_name="wf", job_name="ok", query_variables=DATES, properties={})
        assert post(f"{stub.url}/my-function", body) == (200, "SUCCEEDED")
        status, text = post(f"{stub.url}/my-function", {**body, "job_name": "bad"})
        assert status == 200 and protocol.error_dict(text)["error"] == "BadRequest"
        assert call(stub, "get_id", "ok", "my-function")[1].startswith("aef-")
        stub.state.scenario = Scenario.model_validate({"functions": {"my-function": "async"}})
        assert protocol.is_job_id(post(f"{stub.url}/my-function", body)[1])


def test_transient_faults_apply_at_the_hop_levelflow_calls():
    with RunningStub(scenario(t={"transient": [1, 3]})) as stub:
        assert call(stub, "get_id", "t")[0] == 503
        status, job_id = call(stub, "get_id", "t")
        assert status == 200
        assert call(stub, "get_status", "t", async_job_id=job_id)[0] == 503
        assert call(stub, "get_status", "t", async_job_id=job_id) == (200, "success")
        assert [c["status"] for c in hop(stub, "executor")] == [200, 200]  # the executor never saw the 503s


def test_one_role_per_server_two_processes_two_hops():
    """--role intermediate in front of --role executors: the same chain as one server."""
    with RunningStub(scenario(a={"polls": 1}), role="executors") as executors, RunningStub(role="intermediate") as intermediate:
        status, job_id = call(intermediate, "get_id", "a", executor_url=executors.url)
        assert status == 200 and call(intermediate, "get_status", "a", async_job_id=job_id, executor_url=executors.url) == (200, "running")
        assert call(intermediate, "get_status", "a", async_job_id=job_id, executor_url=executors.url) == (200, "success")
        assert {c["hop"] for c in intermediate.state.calls} == {"intermediate"}
        assert {c["hop"] for c in executors.state.calls} == {"executor"}
        assert post(f"{intermediate.url}/dataproc-serverless-job-executor", {})[0] == 404


def test_workflow_executions_api(tmp_path):
    with RunningStub(scenario(child={"polls": 1}, sad={"outcome": "fail"})) as stub:
        root = f"{stub.url}/v1/projects/p/locations/l/workflows"
        status, text = post(f"{root}/child/executions", {"argument": json.dumps({"workflow_name": "child"})})
        execution = json.loads(text)
        assert status == 200 and execution["state"] == "ACTIVE" and json.loads(execution["argument"]) == {"workflow_name": "child"}
        read = lambda: json.loads(urllib.request.urlopen(f"{stub.url}/v1/{execution['name']}").read())  # noqa: E731
        assert read()["state"] == "ACTIVE" and read()["state"] == "SUCCEEDED"
        _, text = post(f"{root}/sad/executions", {"argument": "{}"})
        sad = json.loads(text)
        assert json.loads(urllib.request.urlopen(f"{stub.url}/v1/{sad['name']}").read())["state"] == "FAILED"
        _, text = post(f"{root}/slow/executions", {})
        slow = json.loads(text)
        assert json.loads(post(f"{stub.url}/v1/{slow['name']}:cancel", {})[1])["state"] == "CANCELLED"
        assert post(f"{root}/child/executions", {"argument": {"not": "a string"}})[0] == 400


def test_cli_serve_with_scenario_file_and_roles(tmp_path):
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text("default: {polls: 0}\njobs:\n  slow: {polls: 1}\n")
    log = tmp_path / "calls.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "levelflow", "executors", "serve", "--port", "0",
                                "--scenario", scenario_file, "--log", log], stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        url = re.search(r"http://[\d.]+:\d+", line).group()
        stub = type("Server", (), {"url": url})
        _, job_id = call(stub, "get_id", "slow")
        assert call(stub, "get_status", "slow", async_job_id=job_id) == (200, "running")
        assert call(stub, "get_status", "slow", async_job_id=job_id) == (200, "success")
    finally:
        process.terminate()
        process.wait(10)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["hop"], r["call_type"]) for r in records if r["entry"]] == [
        ("intermediate", "get_id"), ("intermediate", "get_status"), ("intermediate", "get_status")]
    assert len([r for r in records if r["hop"] == "executor"]) == 3


def test_cli_rejects_bad_scenario(tmp_path):
    bad = tmp_path / "scenario.json"
    bad.write_text('{"jobs": {"a": {"outcome": "explode"}}}')
    result = subprocess.run([sys.executable, "-m", "levelflow", "executors", "serve", "--scenario", bad],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{bad}:1:" in result.stderr and "jobs.a.outcome" in result.stderr and "Traceback" not in result.stderr


def test_cli_serve_on_a_port_in_use_says_so_plainly():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "levelflow", "executors", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: 127.0.0.1:{port}: cannot listen there: Address already in use; "
                                     "give another --port (0: any free port)")
