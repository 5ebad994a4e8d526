"""The stub executor server, exercised over real HTTP (in-process and as the CLI command)."""
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

from levelflow import protocol
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub


def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def call(url, call_type, job, async_job_id=None, function="intermediate"):
    body = protocol.request_body(call_type, workflow_name="w", execution_id="e", job_name=job,
                                 function_url_to_call="http://x/f", query_variables={}, workflow_properties={},
                                 step_properties={}, async_job_id=async_job_id)
    return post(f"{url}/{function}", body)


def scenario(**jobs):
    return Scenario.model_validate({"jobs": jobs})


def test_polls_then_success_and_call_log():
    with RunningStub(scenario(a={"polls": 2})) as stub:
        status, job_id = call(stub.url, "get_id", "a")
        assert status == 200 and protocol.is_job_id(job_id)
        answers = [call(stub.url, "get_status", "a", job_id) for _ in range(3)]
        assert answers == [(200, "running"), (200, "running"), (200, "success")]
        with urllib.request.urlopen(f"{stub.url}/_calls") as response:
            log = json.loads(response.read())
        assert [c["call_type"] for c in log] == ["get_id", "get_status", "get_status", "get_status"]
        assert all(c["function"] == "intermediate" and c["job_name"] == "a" for c in log)


def test_failure_never_and_start_failure():
    with RunningStub(scenario(f={"outcome": "fail"}, n={"outcome": "never"}, s={"outcome": "fail", "fail_on": "start"})) as stub:
        _, job_id = call(stub.url, "get_id", "f")
        status, text = call(stub.url, "get_status", "f", job_id)
        assert status == 500 and protocol.is_failure_body(text)
        _, job_id = call(stub.url, "get_id", "n")
        assert {call(stub.url, "get_status", "n", job_id) for _ in range(20)} == {(200, "running")}
        status, text = call(stub.url, "get_id", "s")
        assert status == 500 and text.startswith("Exception")


def test_transient_faults_on_chosen_calls_and_sync():
    with RunningStub(scenario(t={"transient": [1, 3]}, bad={"outcome": "fail"})) as stub:
        assert call(stub.url, "get_id", "t")[0] == 503
        status, job_id = call(stub.url, "get_id", "t")
        assert status == 200
        assert call(stub.url, "get_status", "t", job_id)[0] == 503
        assert call(stub.url, "get_status", "t", job_id) == (200, "success")
        assert call(stub.url, "sync", "ok", function="some-function") == (200, "success")
        assert call(stub.url, "sync", "bad", function="some-function")[0] == 500


def test_unknown_job_id_and_bad_body():
    with RunningStub() as stub:
        assert call(stub.url, "get_status", "x", "aef_nope")[0] == 500
        assert post(f"{stub.url}/intermediate", [1])[0] == 500


def test_cli_serve_with_scenario_file(tmp_path):
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text("default: {polls: 0}\njobs:\n  slow: {polls: 1}\n")
    log = tmp_path / "calls.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "levelflow", "executors", "serve", "--port", "0",
                                "--scenario", scenario_file, "--log", log], stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        url = re.search(r"http://[\d.]+:\d+", line).group()
        _, job_id = call(url, "get_id", "slow")
        assert call(url, "get_status", "slow", job_id) == (200, "running")
        assert call(url, "get_status", "slow", job_id) == (200, "success")
    finally:
        process.terminate()
        process.wait(10)
    assert [json.loads(l)["call_type"] for l in log.read_text().splitlines()] == ["get_id", "get_status", "get_status"]


def test_cli_rejects_bad_scenario(tmp_path):
    bad = tmp_path / "scenario.json"
    bad.write_text('{"jobs": {"a": {"outcome": "explode"}}}')
    result = subprocess.run([sys.executable, "-m", "levelflow", "executors", "serve", "--scenario", bad],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{bad}:1:" in result.stderr and "jobs.a.outcome" in result.stderr and "Traceback" not in result.stderr
