"""The local engine's semantics (docs/semantics.md), against the stub executors over real HTTP and
against the built-in simulator. Waits are shrunk with the time scale; no timing is asserted."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import time
import sqlite3

import pytest
from rich.console import Console

import levelflow
from conftest import EXAMPLES, PARAMS, pipeline, step
from levelflow.backends.local import (LocalRunOptions, RunStore, prepare_run, run_local, run_report)
from levelflow.backends.local.executors import needs_id_token
from levelflow.backends.local.view import LiveView, summary
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub

FAST = 0.02  # WAIT_TIME_SECONDS 1 -> 20 ms


def astep(job_id, **extra):
    """An async step polled every second (20 ms at FAST), with a 5 minute time-out."""
    return step(job_id, WAIT_TIME_SECONDS="1", **extra)


def sstep(job_id, function="my-function", **extra):
    """A sync step calling FUNCTION_NAME."""
    return {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "sync", "FUNCTION_NAME": function, **extra}


def wstep(job_id, workflow="child_flow"):
    return {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "workflows", "workflows_name": workflow}


def scenario(default=None, **jobs):
    return Scenario.model_validate({"default": default or {}, "jobs": jobs})


@pytest.fixture
def make_plan(write_json, tmp_path):
    def make(levels, params_extra=None):
        params = json.loads(PARAMS.read_text())
        for key, value in (params_extra or {}).items():
            params.append({"ParameterKey": key, "ParameterValue": value})
        params_path = tmp_path / "platform-parameters-test.json"
        params_path.write_text(json.dumps(params))
        return levelflow.load_plan(write_json(pipeline(levels, name="demo")), levelflow.load_params(params_path))

    return make


@pytest.fixture
def state(tmp_path):
    return tmp_path / "runs.db"


def over_http(stub, plan, state, **options):
    return run_local(plan, state, LocalRunOptions(executor_url=stub.url, time_scale=options.pop("time_scale", FAST), **options))


def steps_by_id(report):
    return {s["job_id"]: s for s in report["steps"]}


def calls_of(stub, job_name, call_type=None, entry=True):
    """The calls levelflow made for a job (entry=False: also the intermediate's forwards)."""
    return [c for c in stub.state.calls if c["job_name"] == job_name and call_type in (None, c["call_type"])
            and (c["entry"] or not entry)]


def first_seq(stub, job_name):
    return min(c["seq"] for c in calls_of(stub, job_name))


def last_seq(stub, job_name):
    return max(c["seq"] for c in calls_of(stub, job_name))


def test_levels_in_order_threads_concurrent_steps_in_order(make_plan, state):
    with RunningStub(scenario({"polls": 1}, job_A1={"polls": 5}, job_B1={"polls": 5})) as stub:
        plan = make_plan([[[astep("A1"), sstep("A2", "reference-refresher")],
                           [astep("B1")]],
                          [[astep("C1")]]], {"pFunctionsBaseUrl": stub.url})
        report = run_local(plan, state, LocalRunOptions(time_scale=FAST))
    assert report["status"] == "succeeded" and report["failed_steps"] == []
    assert {s["job_id"]: s["status"] for s in report["steps"]} == dict.fromkeys(["A1", "A2", "B1", "C1"], "succeeded")
    # steps of a thread in order; the threads of level 1 overlap; level 2 after all of level 1
    assert last_seq(stub, "job_A1") < first_seq(stub, "job_A2")
    assert first_seq(stub, "job_B1") < last_seq(stub, "job_A1") and first_seq(stub, "job_A1") < last_seq(stub, "job_B1")
    assert max(last_seq(stub, j) for j in ("job_A1", "job_A2", "job_B1")) < first_seq(stub, "job_C1")
    # the protocol: get_id / get_status through the intermediate function, sync straight to FUNCTION_NAME
    get_id, *polls = calls_of(stub, "job_A1")
    assert get_id["function"] == "orch-framework-intermediate" and get_id["call_type"] == "get_id"
    assert get_id["body"]["function_url_to_call"] == f"{stub.url}/dataform-tag-executor"
    assert get_id["body"]["execution_id"] == report["run_id"] and get_id["body"]["workflow_name"] == "demo"
    assert get_id["body"]["step_properties"] == {"jobs_definitions_bucket": "my-orchestration-dev-jobs"}
    today = get_id["body"]["query_variables"]["start_date"]
    assert get_id["body"]["query_variables"] == {"start_date": today, "end_date": today}
    assert [p["answer"] for p in polls] == ["running"] * 5 + ["success"]
    assert {p["async_job_id"] for p in polls} == {get_id["answer"]} == set(steps_by_id(report)["A1"]["async_job_ids"])
    [sync] = calls_of(stub, "job_A2")
    assert (sync["function"], sync["hop"], sync["answer"]) == ("reference-refresher", "executor", "SUCCEEDED")


def test_failed_step_stops_its_thread_siblings_finish_no_later_level(make_plan, state):
    with RunningStub(scenario({"polls": 2}, job_F1={"outcome": "fail"})) as stub:
        plan = make_plan([[[astep("F1"), astep("F2")], [astep("S1"), astep("S2")]], [[astep("Z1")]]])
        report = over_http(stub, plan, state)
    statuses = {s["job_id"]: s["status"] for s in report["steps"]}
    assert report["status"] == "failed" and report["failed_steps"] == ["F1"]
    assert statuses == {"F1": "failed", "F2": "not_started", "S1": "succeeded", "S2": "succeeded", "Z1": "not_started"}
    # the executor answered its failure state word; the intermediate turned it into HTTP 500
    assert "dataform-tag-executor:FAILED" in steps_by_id(report)["F1"]["error"]
    assert not calls_of(stub, "job_F2") and not calls_of(stub, "job_Z1")


def test_async_time_out_fails_the_step(make_plan, state):
    with RunningStub(scenario(job_N={"outcome": "never"})) as stub:
        plan = make_plan([[[astep("N", ASYNC_TIMEOUT_LOOP_IN_MINUTES="0.2")]]])  # 12 s -> 240 ms
        report = over_http(stub, plan, state)
    n = steps_by_id(report)["N"]
    assert report["status"] == "failed" and n["status"] == "failed"
    assert "timed out" in n["error"] and "0.2 min" in n["error"]
    assert calls_of(stub, "job_N", "get_status") and len(calls_of(stub, "job_N", "get_id")) == 1


def test_transient_faults_are_retried_with_back_off(make_plan, state):
    with RunningStub(scenario(job_T={"transient": [1, 3]})) as stub:
        report = over_http(stub, make_plan([[[astep("T")]]]), state, time_scale=0.01)
    assert steps_by_id(report)["T"]["status"] == "succeeded" and steps_by_id(report)["T"]["attempts"] == 1
    assert [(c["call_type"], c["status"]) for c in calls_of(stub, "job_T")] == [
        ("get_id", 503), ("get_id", 200), ("get_status", 503), ("get_status", 200)]


def test_retries_start_the_step_again_after_a_failed_attempt(make_plan, state):
    # calls 1..6 answer 503: the first attempt gives up after 5 back-off retries, the second starts the job
    with RunningStub(scenario(job_R={"transient": [1, 2, 3, 4, 5, 6]}, job_X={"outcome": "fail"})) as stub:
        plan = make_plan([[[astep("R", RETRIES="1")], [astep("X", RETRIES="2")]]])
        report = over_http(stub, plan, state, time_scale=0.005)
    r, x = steps_by_id(report)["R"], steps_by_id(report)["X"]
    assert (r["status"], r["attempts"], len(r["async_job_ids"])) == ("succeeded", 2, 1)
    assert (x["status"], x["attempts"]) == ("failed", 3)
    assert len(calls_of(stub, "job_X", "get_id")) == 3 and len(set(x["async_job_ids"])) == 3
    with sqlite3.connect(state) as db:
        attempts = db.execute("SELECT status, error FROM attempts WHERE job_id = 'R' ORDER BY attempt").fetchall()
    assert [a[0] for a in attempts] == ["failed", "succeeded"] and "after 5 retries" in attempts[0][1]


def test_continue_if_fail_goes_on_and_next_skips(make_plan, state):
    with RunningStub(scenario(job_A={"outcome": "fail"})) as stub:
        plan = make_plan([[[astep("A", CONTINUE_IF_FAIL="True", NEXT="C"), astep("B"), astep("C")]], [[astep("D")]]])
        report = over_http(stub, plan, state)
    assert report["status"] == "succeeded" and report["continued_steps"] == ["A"]
    assert {s["job_id"]: s["status"] for s in report["steps"]} == {
        "A": "continued", "B": "skipped", "C": "succeeded", "D": "succeeded"}
    assert not calls_of(stub, "job_B") and calls_of(stub, "job_D")


def test_sync_steps_call_the_function_with_the_executor_body(make_plan, state):
    """A sync step: one call of FUNCTION_NAME (no intermediate) with the executor's body; only a
    success state word succeeds: a failure word, a 200 error dict, an HTTP error or a job id
    (the function started something) fail the step, naming the answer."""
    jobs = {"job_F": {"outcome": "fail"}, "job_E": {"outcome": "error"}, "job_H": {"http_status": 404}}
    with RunningStub(scenario(**jobs)) as stub, pytest.warns(levelflow.errors.LevelflowWarning, match="starts a job"):
        plan = make_plan([[[sstep("S", CONTINUE_IF_FAIL="True"), sstep("F", CONTINUE_IF_FAIL="True"),
                            sstep("E", CONTINUE_IF_FAIL="True"), sstep("H", CONTINUE_IF_FAIL="True"),
                            sstep("J", "dataproc-serverless-job-executor", CONTINUE_IF_FAIL="True")]]])
        report = over_http(stub, plan, state, arguments={"workflow_properties": '{"dataset": "sales"}',
                                                         "query_variables": {"start_date": "2026-11-30", "end_date": "2026-12-01"}})
    by_id = steps_by_id(report)
    assert {k: v["status"] for k, v in by_id.items()} == {"S": "succeeded", "F": "continued", "E": "continued",
                                                          "H": "continued", "J": "continued"}
    assert "my-function answered 'FAILED', not a success state" in by_id["F"]["error"]
    assert "my-function answered an error: BadRequest" in by_id["E"]["error"]
    assert "my-function answered HTTP 404" in by_id["H"]["error"]
    assert "started job aef-" in by_id["J"]["error"] and "declare this step TYPE async" in by_id["J"]["error"]
    [s] = calls_of(stub, "job_S")
    assert (s["hop"], s["function"], s["answer"]) == ("executor", "my-function", "SUCCEEDED")
    assert s["body"] == {"workflow_properties": {"dataset": "sales", "jobs_definitions_bucket": "my-orchestration-dev-jobs"},
                         "workflow_name": "demo", "job_name": "job_S",
                         "query_variables": {"start_date": "'2026-11-30'", "end_date": "'2026-12-01'"}}
    assert not [c for c in stub.state.calls if c["hop"] == "intermediate"]


def test_workflows_steps_run_the_child_through_the_doubles_executions_api(make_plan, state):
    """Under a base URL the double plays the Workflow Executions API: the child gets its own
    name as workflow_name, the run's dates and the step's properties over the run's."""
    with RunningStub(scenario(broken_flow={"outcome": "fail"}, child_flow={"polls": 2})) as stub:
        plan = make_plan([[[wstep("W")], [wstep("B", "broken_flow")]]])
        report = over_http(stub, plan, state, arguments={"workflow_properties": {"dataset": "sales"}})
    by_id = steps_by_id(report)
    assert by_id["W"]["status"] == "succeeded" and by_id["B"]["status"] == "failed" and "ended FAILED" in by_id["B"]["error"]
    [create] = [c for c in stub.state.calls if c["hop"] == "executions" and c["function"] == "child_flow"
                and c["body"] and "argument" in c["body"]]
    argument = json.loads(create["body"]["argument"])
    assert argument["workflow_name"] == "child_flow"
    assert argument["workflow_properties"] == {"dataset": "sales", "jobs_definitions_bucket": "my-orchestration-dev-jobs"}
    assert set(argument["query_variables"]) == {"start_date", "end_date"}


def test_max_parallel_bounds_the_threads_running_at_once(make_plan, state):
    with RunningStub(scenario({"polls": 2})) as stub:
        plan = make_plan([[[astep("P1")], [astep("P2")], [astep("P3")]]])
        report = over_http(stub, plan, state, max_parallel=1)
    assert report["status"] == "succeeded"
    order = [c["job_name"] for c in stub.state.calls]
    blocks = [name for n, name in enumerate(order) if n == 0 or order[n - 1] != name]
    assert sorted(blocks) == ["job_P1", "job_P2", "job_P3"]  # each thread's calls contiguous


def test_steps_table_contract_and_attempt_history(make_plan, state):
    with RunningStub(scenario({"polls": 1})) as stub:
        report = over_http(stub, make_plan([[[astep("A"), astep("B")]]]), state)
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT run_id, job_id, status FROM steps ORDER BY position").fetchall()
        attempts = db.execute("SELECT job_id, attempt, status, async_job_id, polls FROM attempts ORDER BY job_id").fetchall()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == [(report["run_id"], "A", "succeeded"), (report["run_id"], "B", "succeeded")]
    assert [(a[0], a[1], a[2], a[4]) for a in attempts] == [("A", 1, "succeeded", 2), ("B", 1, "succeeded", 2)]
    assert all(levelflow.protocol.is_job_id(a[3]) for a in attempts) and mode == "wal"


def test_simulator_follows_the_scenario_without_network(make_plan, state):
    plan = make_plan([[[astep("A"), astep("B"), astep("D")], [astep("F", RETRIES="1")], [astep("N", ASYNC_TIMEOUT_LOOP_IN_MINUTES="0.02")],
                       [astep("L", CONTINUE_IF_FAIL=True), sstep("S"), wstep("W")]]])
    sim = scenario({"polls": 1}, job_B={"polls": 3}, job_D={"duration_s": 20}, job_F={"outcome": "fail", "fail_on": "start"},
                   job_N={"outcome": "never"}, job_L={"transient": [1, 2, 3, 4, 5, 6]})
    report = run_local(plan, state, LocalRunOptions(scenario=sim, time_scale=0.01))
    by_id = steps_by_id(report)
    assert {k: v["status"] for k, v in by_id.items()} == {
        "A": "succeeded", "B": "succeeded", "D": "succeeded", "F": "failed", "N": "failed", "L": "continued", "S": "succeeded", "W": "succeeded"}
    assert report["status"] == "failed" and report["failed_steps"] == ["F", "N"]
    assert by_id["F"]["attempts"] == 2 and "could not start" in by_id["F"]["error"]
    assert "timed out" in by_id["N"]["error"] and "after 5 retries" in by_id["L"]["error"]
    assert all(levelflow.protocol.is_job_id(j) for j in by_id["A"]["async_job_ids"] + by_id["B"]["async_job_ids"])
    with sqlite3.connect(state) as db:
        [(polls,)] = db.execute("SELECT polls FROM attempts WHERE job_id = 'B'").fetchall()
    assert polls == 4  # "running" three times, then "success"


def test_live_view_and_summary_show_every_level_thread_and_step(make_plan, state):
    plan = make_plan([[[astep("A"), astep("B")], [astep("C")]], [[astep("D")]]])
    store = RunStore(state)
    engine = prepare_run(plan, store, LocalRunOptions(scenario=scenario(job_C={"outcome": "fail"}), time_scale=FAST))
    assert engine.run() == "failed"
    console = Console(record=True, width=160, color_system=None)
    console.print(LiveView(engine).render())
    summary(run_report(store, engine.run_id), console)
    store.close()
    text = console.export_text()
    for expected in ("LEVEL 1", "LEVEL 2", "thread 1", "thread 2", "✔ succeeded", "✘ failed", "· pending", "job_B", "job_D"):
        assert expected in text


def test_id_tokens_only_for_google_endpoints():
    assert needs_id_token("https://us-central1-proj.cloudfunctions.net/intermediate")
    assert needs_id_token("https://executor-abc-uc.a.run.app/")
    assert not needs_id_token("http://127.0.0.1:8080/intermediate")
    assert not needs_id_token("https://localhost:8443/x") and not needs_id_token("https://[::1]:8443/x")


def test_live_view_of_a_big_level_shows_running_threads_and_counts(make_plan, state):
    threads = [[astep(f"T{n}")] for n in range(45)]  # more than the 40 steps listed one by one
    plan = make_plan([threads, [[astep("LAST")]]])
    store = RunStore(state)
    engine = prepare_run(plan, store, LocalRunOptions(scenario=scenario({"outcome": "never"}), max_parallel=5))
    runner = threading.Thread(target=engine.run)
    runner.start()
    try:
        while sum(r.status == "running" for r in engine.records.values()) < 5:
            time.sleep(0.01)
        console = Console(record=True, width=160, color_system=None)
        console.print(LiveView(engine).render())
    finally:
        engine.request_stop()
        runner.join(30)
        store.close()
    text = console.export_text()
    assert "LEVEL 1" in text and "0/45 threads ended" in text and "5 running" in text
    assert "… 40 more threads (40 pending)" in text and text.count("▶ running") == 1 + 5 + 5  # level, threads, steps
    assert "LEVEL 2" in text and "thread 1 " not in text.split("LEVEL 2")[1]
    assert engine.status == "interrupted" and {r.status for r in engine.records.values()} == {"interrupted", "pending"}


def test_a_call_slower_than_timeout_seconds_fails_the_step(make_plan, state):
    with RunningStub(scenario(job_SLOW={"latency_ms": 2000})) as stub:
        report = over_http(stub, make_plan([[[astep("SLOW", TIMEOUT_SECONDS="1")]]]), state)
        while not stub.state.calls:  # let the stub finish its late answer inside this test
            time.sleep(0.05)
        time.sleep(0.2)
    slow = steps_by_id(report)["SLOW"]
    assert slow["status"] == "failed" and "did not answer within 1 s (TIMEOUT_SECONDS)" in slow["error"]


def test_simulated_run_stopped_then_resumed_polls_the_same_job(make_plan, state):
    plan = make_plan([[[astep("A"), astep("B")]]])
    store = RunStore(state)
    first_day = {"query_variables": {"start_date": "2020-01-01", "end_date": "2020-01-01"}}
    engine = prepare_run(plan, store, LocalRunOptions(scenario=scenario(job_B={"outcome": "never"}), time_scale=FAST,
                                                      arguments=first_day))
    runner = threading.Thread(target=engine.run)
    runner.start()
    try:
        while not engine.records["B"].async_job_id:
            time.sleep(0.01)
    finally:
        engine.request_stop()
        runner.join(30)
        store.close()
    job = engine.records["B"].async_job_id
    assert engine.status == "interrupted" and engine.records["B"].status == "interrupted"
    store = RunStore(state)
    resumed = prepare_run(plan, store, LocalRunOptions(scenario=scenario({"polls": 2}), time_scale=FAST), resume=engine.run_id)
    assert resumed.run() == "succeeded"
    report = run_report(store, engine.run_id)
    store.close()
    by_id = steps_by_id(report)
    assert report["resumes"] == 1
    assert by_id["B"]["async_job_ids"] == [job] and by_id["B"]["attempts"] == 1 and by_id["A"]["attempts"] == 1
    calls = [c for c in resumed.client.transport.double.calls if c["entry"]]
    assert {c["async_job_id"] for c in calls} == {job}  # only B's job, polled again
    assert all(c["body"]["query_variables"] == first_day["query_variables"] for c in calls)


class FakeWorkflowExecutions(BaseHTTPRequestHandler):
    """Google's Workflow Executions REST API, reduced to create and get (a stand-in for Google,
    not for the engine): every execution is ACTIVE twice, then SUCCEEDED, or FAILED for 'broken'."""

    executions: dict

    def log_message(self, *args):
        pass

    def _answer(self, data):
        text = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = f"{self.path[len('/v1/'):]}/e{len(self.executions) + 1}"
        self.executions[name] = {"argument": json.loads(body["argument"]), "reads": 0}
        self._answer({"name": name, "state": "ACTIVE"})

    def do_GET(self):
        name = self.path[len("/v1/"):]
        execution = self.executions[name]
        execution["reads"] += 1
        if execution["reads"] <= 2:
            return self._answer({"name": name, "state": "ACTIVE"})
        if "/workflows/broken/" in name:
            return self._answer({"name": name, "state": "FAILED", "error": {"payload": "boom"}})
        self._answer({"name": name, "state": "SUCCEEDED"})


def test_workflows_steps_on_google_cloud_run_through_the_executions_api(make_plan, state):
    handler = type("Handler", (FakeWorkflowExecutions,), {"executions": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        plan = make_plan([[[wstep("W", "child_flow")], [{**wstep("B", "broken"), "STEP_PROPERTIES": {"x": 1}}]]])
        options = LocalRunOptions(time_scale=FAST, executions_api=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                  arguments={"workflow_properties": {"dataset": "sales"}})
        report = run_local(plan, state, options)
    finally:
        server.shutdown()
        server.server_close()
    w, b = steps_by_id(report)["W"], steps_by_id(report)["B"]
    assert w["status"] == "succeeded" and b["status"] == "failed" and "ended FAILED: boom" in b["error"]
    [execution] = w["async_job_ids"]
    assert execution.startswith("projects/my-orchestration-dev/locations/us-central1/workflows/child_flow/executions/")
    argument = handler.executions[execution]["argument"]
    assert argument["workflow_properties"] == {"dataset": "sales", "jobs_definitions_bucket": "my-orchestration-dev-jobs"}
    assert set(argument["query_variables"]) == {"start_date", "end_date"} and handler.executions[execution]["reads"] == 3


@pytest.mark.parametrize("transport", ["http", "simulated"])
def test_every_way_the_deployed_functions_fail_a_step(make_plan, state, tmp_path, transport):
    """Through both hops of the double (over HTTP, or in process): a 200 error dict on start and
    on status, the executor's failure word, a name holding "error", a missing job file."""
    folder = tmp_path / "jobs" / "dataproc-serverless-job-executor"
    folder.mkdir(parents=True)
    (folder / "job_OK.json").write_text("{}")
    jobs = {"job_START": {"outcome": "error", "fail_on": "start"}, "job_STATUS": {"outcome": "error"},
            "job_WORD": {"outcome": "fail"}}
    dataproc = {"FUNCTION_ID_NAME": "dataproc-serverless-job-executor"}
    saved_query = {"FUNCTION_ID_NAME": "bq-saved-query-executor",
                   "STEP_PROPERTIES": {"dataform_project_id": "p", "dataform_location": "l", "repository_name": "r"}}
    generic = {"FUNCTION_ID_NAME": "my-executor"}
    levels = [[[astep("OK", **dataproc)], [astep("START", **generic)], [astep("STATUS", **generic)], [astep("WORD", **generic)],
               [astep("MISSING", **dataproc)], [astep("NAMED", JOB_NAME="load_errors", **saved_query)]]]
    with pytest.warns(levelflow.errors.LevelflowWarning, match="load_errors"):
        plan = make_plan(levels)
    if transport == "http":
        with RunningStub(scenario(**jobs), jobs_dir=tmp_path / "jobs") as stub:
            report = over_http(stub, plan, state)
    else:
        # the simulator has no jobs directory: every job file is present, so MISSING succeeds there
        report = run_local(plan, state, LocalRunOptions(scenario=scenario(**jobs), time_scale=FAST))
    by_id = steps_by_id(report)
    expected = {"OK": "succeeded", "START": "failed", "STATUS": "failed", "WORD": "failed",
                "MISSING": "failed" if transport == "http" else "succeeded", "NAMED": "failed"}
    assert {k: v["status"] for k, v in by_id.items()} == expected
    assert all(by_id[k]["error"].startswith("Exception : ") for k, v in expected.items() if v == "failed")
    assert '{"error":"BadRequest"' in by_id["START"]["error"] and '{"error":"BadRequest"' in by_id["STATUS"]["error"]
    assert by_id["STATUS"]["async_job_ids"] and "my-executor:FAILED" in by_id["WORD"]["error"]
    assert "aef_definitions_demo_load_errors_sqlx_" in by_id["NAMED"]["error"]
    if transport == "http":
        assert "AttributeError" in by_id["MISSING"]["error"]


def test_report_times_are_the_datetime_module_s_to_the_millisecond():
    """report.iso makes each second's text once; what it answers is datetime's, rounding included."""
    import datetime as dt
    import random

    from levelflow.backends.local.report import iso

    def expected(epoch):
        return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")

    rng = random.Random(14)
    seconds = [0, 1_796_193_248, 4_102_444_799, -86_401] + [rng.randrange(-10**9, 4 * 10**9) for _ in range(200)]
    fractions = [0, 1e-6, 5e-7, 4.999e-7, 0.0005, 0.9995, 0.999999, 0.9999995, 0.99999949] + [rng.random() for _ in range(20)]
    for second in seconds:
        for fraction in fractions:
            assert iso(second + fraction) == expected(second + fraction), second + fraction
    assert iso(None) is None


@pytest.mark.parametrize("width, height", [(100, 24), (200, 50)])
def test_live_view_keeps_the_running_level_in_a_small_terminal(state, width, height):
    """examples/retail_daily.json in a 100x24 (and a 200x50) terminal, its level 1 done and
    level 2 running: the finished level is one line, the running level and its running steps
    are on screen within the height, and no status word is cut."""
    plan = levelflow.load_plan(EXAMPLES / "retail_daily.json", levelflow.load_params(PARAMS))
    second = plan.levels[1]
    first_polled = [next(step for step in thread.steps if step.type == "async") for thread in second.threads]
    never = {step.job_name: {"outcome": "never"} for step in first_polled}
    store = RunStore(state)
    engine = prepare_run(plan, store, LocalRunOptions(scenario=scenario(**never), time_scale=0.001))
    runner = threading.Thread(target=engine.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while engine.progress.status.get(second.level_id) != "running" or \
                sum(r.status == "running" and r.async_job_id is not None for r in engine.records.values()) < len(never):
            assert time.monotonic() < deadline, "level 2's jobs never all ran"
            time.sleep(0.01)
        console = Console(record=True, width=width, height=height, color_system=None)
        console.print(LiveView(engine, console).render())
    finally:
        engine.request_stop()
        runner.join(30)
        store.close()
    lines = console.export_text().splitlines()
    assert len(lines) <= height - 1, len(lines)
    text = "\n".join(lines)
    first = next(line for line in lines if line.startswith(f"LEVEL {plan.levels[0].level_id} "))
    assert "✔ succeeded" in first and "succeed…" not in text
    assert f"LEVEL {second.level_id}" in text and "▶ running" in text
    assert all(f"    {step.job_id} " in text for step in first_polled), text
    assert all(len(line) <= width for line in lines)
