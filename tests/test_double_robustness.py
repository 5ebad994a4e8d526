"""`levelflow executors serve` answers every malformed request (it never drops a connection
without an answer, never blocks a handler), and `--resume` refuses a definition whose step
types or executors changed."""
import socket

import levelflow
from conftest import PARAMS, pipeline, step
from levelflow.backends.local import LocalRunOptions, RunStore, prepare_run
from levelflow.errors import LevelflowError
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub


def raw_request(url, head: bytes, body: bytes = b"") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + b"\r\n\r\n" + body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_malformed_requests_get_an_answer():
    with RunningStub() as stub:
        cases = [
            (b"POST /orch-framework-intermediate HTTP/1.1\r\nHost: x\r\nContent-Length: -1", b""),
            (b"POST /orch-framework-intermediate HTTP/1.1\r\nHost: x\r\nContent-Length: abc", b""),
            (b"POST /orch-framework-intermediate HTTP/1.1\r\nHost: x\r\nContent-Length: 4", b"\xff\xfe\xfd\xfc"),
            (b"POST /orch-framework-intermediate HTTP/1.1\r\nHost: x\r\nContent-Length: 200000", b"[" * 100_000 + b"]" * 100_000),
            (b"POST /dataproc-serverless-job-executor HTTP/1.1\r\nHost: x\r\nContent-Length: 4", b"\xff\xfe\xfd\xfc"),
        ]
        for head, body in cases:
            answer = raw_request(stub.url, head, body)
            assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 200")), (head, answer[:200])


def test_resume_refuses_changed_step_types_or_executors(tmp_path, write_json):
    params = levelflow.load_params(PARAMS)
    first = levelflow.load_plan(write_json(pipeline([[[step("A", WAIT_TIME_SECONDS="1")]]], name="demo")), params)
    store = RunStore(tmp_path / "runs.db")
    engine = prepare_run(first, store, LocalRunOptions(scenario=Scenario.model_validate({"jobs": {"job_A": {"outcome": "fail"}}}),
                                                      time_scale=0.01))
    assert engine.run() == "failed"
    for changed in ({"FUNCTION_ID_NAME": "dataflow-flextemplate-job-executor"},
                    {"TYPE": "sync", "FUNCTION_NAME": "fn", "FUNCTION_ID_NAME": None}):
        definition = pipeline([[[{k: v for k, v in {**step("A", WAIT_TIME_SECONDS="1"), **changed}.items() if v is not None}]]],
                              name="demo")
        plan = levelflow.load_plan(write_json(definition, name="changed.json"), params)
        try:
            prepare_run(plan, store, LocalRunOptions(scenario=Scenario(), time_scale=0.01), resume=engine.run_id)
        except LevelflowError as exc:
            assert "differ from run" in str(exc)
        else:
            raise AssertionError(f"a changed definition was resumed: {changed}")
    store.close()
