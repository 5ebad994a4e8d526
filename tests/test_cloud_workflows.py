"""The Cloud Workflows backend, executed in `workflows-emulator` against the stub executors over HTTP.

Helpers in cloud_workflows_emulator.py patch only what the emulator lacks (OIDC, connection
errors, the executions connector, a virtual clock) plus one speed patch; see its docstring.
"""
import datetime
import json

import pytest
import yaml

from cloud_workflows_emulator import EPOCH, run, schema_errors
from conftest import EXAMPLES, PARAMS, pipeline, step
from levelflow import LevelflowError, load_params, load_plan
from levelflow.backends.cloud_workflows import compiler as cw
from levelflow.errors import LevelflowWarning
from levelflow.model import PlatformParams
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub


@pytest.fixture
def stub():
    with RunningStub() as server:
        yield server


def script(stub, default=None, **jobs):
    stub.state.scenario = Scenario.model_validate({"default": default or {}, "jobs": jobs})


def params_for(stub) -> PlatformParams:
    return PlatformParams.from_mapping({**load_params(PARAMS).as_mapping(), "pFunctionsBaseUrl": stub.url})


@pytest.fixture
def compile_def(tmp_path, stub):
    """definition (dict) -> generated files, with every function URL pointing at the stub."""
    def compile_(definition, name="pipe"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(definition))
        return cw.generate_workflows(load_plan(path, params_for(stub)))

    return compile_


def sync_step(job_id, function="my-sync-fn", **extra):
    return {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "sync", "FUNCTION_NAME": function, **extra}


def workflows_step(job_id, workflow, **extra):
    return {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "workflows", "workflows_name": workflow, **extra}


def calls(stub, entry=True, **match):
    """Calls the workflow made (entry=False: also the double's intermediate -> executor hop)."""
    return [c for c in stub.state.calls if all(c[k] == v for k, v in match.items()) and (c["entry"] or not entry)]


def first_seq(stub, job):
    return min(c["seq"] for c in calls(stub, job_name=job))


def last_seq(stub, job):
    return max(c["seq"] for c in calls(stub, job_name=job))


# --- the examples -------------------------------------------------------------------------


def test_demo_pipeline_runs_level_by_level(stub):
    script(stub, {"polls": 1})
    files = cw.generate_workflows(load_plan(EXAMPLES / "demo_pipeline_cloud_workflows.json", params_for(stub)))
    outcome = run(files)
    assert outcome.result["status"] == "succeeded"
    assert outcome.statuses() == {"J01": "succeeded", "J02": "succeeded", "J03": "succeeded"}
    level_one = {"sample_serverless_spark_mainframe_ingestion", "sample_jdbc_dataflow_ingestion"}
    assert max(last_seq(stub, job) for job in level_one) < first_seq(stub, "run_dataform_tag")
    for job in level_one | {"run_dataform_tag"}:
        assert [c["call_type"] for c in calls(stub, job_name=job)] == ["get_id", "get_status", "get_status"]
        assert {c["function"] for c in calls(stub, job_name=job)} == {"orch-framework-intermediate"}


def test_retail_example_with_a_child_workflow(stub, compile_def):
    script(stub)
    files = cw.generate_workflows(load_plan(EXAMPLES / "retail_daily.json", params_for(stub)))
    child = compile_def(pipeline([[[step("X1", JOB_NAME="export_partners")]]]), name="partner-exports")
    outcome = run({**files, **child})
    statuses = outcome.statuses()
    assert outcome.result["status"] == "succeeded" and len(statuses) == 36
    assert statuses["L2_sales_backfill"] == "skipped"  # L2_sales_conform has NEXT: L2_sales_publish
    assert not calls(stub, job_name="backfill_sales_history")
    assert set(statuses.values()) == {"succeeded", "skipped"}
    assert calls(stub, job_name="export_partners", call_type="get_id")  # the workflows step ran the child
    [sync] = calls(stub, job_name="refresh_sales_reference")  # one call, straight to the function
    assert (sync["function"], sync["hop"], sync["answer"]) == ("reference-data-refresher", "executor", "SUCCEEDED")


# --- ordering, failures, time-outs, retries -------------------------------------------------


def test_order_of_levels_threads_and_steps(stub, compile_def):
    script(stub, {"polls": 1})
    levels = [
        [[step("A1"), step("A2"), step("A3")], [step("B1"), step("B2")], [step("C1")]],
        [[step("D1"), step("D2")]],
        [[step("E1")], [step("F1"), step("F2")]],
    ]
    outcome = run(compile_def(pipeline(levels)))
    assert outcome.result["status"] == "succeeded"
    assert [s["job_id"] for s in outcome.result["steps"]] == ["A1", "A2", "A3", "B1", "B2", "C1", "D1", "D2", "E1", "F1", "F2"]
    for thread in (["A1", "A2", "A3"], ["B1", "B2"], ["D1", "D2"], ["F1", "F2"]):
        for before, after in zip(thread, thread[1:]):
            assert last_seq(stub, f"job_{before}") < first_seq(stub, f"job_{after}")
    for earlier, later in ((["A3", "B2", "C1"], ["D1"]), (["D2"], ["E1", "F1"])):
        assert max(last_seq(stub, f"job_{j}") for j in earlier) < min(first_seq(stub, f"job_{j}") for j in later)


def test_failure_stops_its_thread_siblings_finish_no_later_level(stub, compile_def):
    script(stub, job_A={"outcome": "fail"}, job_C={"polls": 3})
    levels = [[[step("A"), step("B")], [step("C"), step("D")]], [[step("E")]]]
    outcome = run(compile_def(pipeline(levels)))
    assert outcome.result is None  # the execution raised its report
    assert outcome.statuses() == {"A": "failed", "B": "not_started", "C": "succeeded", "D": "succeeded", "E": "not_started"}
    assert outcome.error["failed"] == ["A"] and "A (job_A)" in outcome.error["message"]
    assert outcome.error["steps"][0]["error"]["body"].startswith("Exception")
    assert not calls(stub, job_name="job_B") and not calls(stub, job_name="job_E")
    assert calls(stub, job_name="job_D", call_type="get_status")


def test_async_step_times_out_on_the_virtual_clock(stub, compile_def):
    script(stub, job_N={"outcome": "never"})
    outcome = run(compile_def(pipeline([[[step("N", WAIT_TIME_SECONDS="10", ASYNC_TIMEOUT_LOOP_IN_MINUTES="5"), step("M")]]])))
    assert outcome.statuses() == {"N": "failed", "M": "not_started"}
    error = outcome.error["steps"][0]["error"]["message"]
    assert error.startswith("timed out: still running after 300") and "limit 300 s" in error
    assert len(calls(stub, job_name="job_N", call_type="get_status")) == 30  # one poll every 10 s for 5 minutes


def test_transient_faults_are_retried(stub, compile_def):
    script(stub, job_T={"transient": [1, 3], "polls": 1})
    outcome = run(compile_def(pipeline([[[step("T")]]])))
    assert outcome.statuses() == {"T": "succeeded"}
    assert [(c["call_type"], c["status"]) for c in calls(stub, job_name="job_T")] == [
        ("get_id", 503), ("get_id", 200), ("get_status", 503), ("get_status", 200), ("get_status", 200)]


def test_connection_failures_are_retried_then_fail(tmp_path):
    with RunningStub() as closed:
        pass  # its port now refuses connections
    path = tmp_path / "pipe.json"
    path.write_text(json.dumps(pipeline([[[step("Z")]]])))
    outcome = run(cw.generate_workflows(load_plan(path, params_for(closed))))
    assert outcome.statuses() == {"Z": "failed"}
    assert outcome.error["steps"][0]["error"]["message"].startswith("connection to ")


def test_continue_if_fail_next_and_retries(stub, compile_def):
    script(stub, job_A={"outcome": "fail", "fail_on": "start"}, job_R={"outcome": "fail"})
    levels = [[[step("A", CONTINUE_IF_FAIL="True"), step("B", NEXT="D"), step("C"), step("D")],
               [step("R", RETRIES="2", CONTINUE_IF_FAIL=True)]]]
    outcome = run(compile_def(pipeline(levels)))
    assert outcome.result["status"] == "succeeded"
    assert outcome.statuses() == {"A": "continued", "B": "succeeded", "C": "skipped", "D": "succeeded", "R": "continued"}
    assert not calls(stub, job_name="job_C")
    assert len(calls(stub, job_name="job_R", call_type="get_id")) == 3
    assert outcome.result["steps"][4]["attempts"] == 3


CHILD_READING_ITS_ARGUMENT = """
main:
  params: [args]
  steps:
    - check:
        switch:
          - condition: ${args.workflow_name != "child-reader" or args.query_variables.start_date != "2026-11-30"}
            raise: {message: "unexpected argument"}
    - done:
        return:
          status: succeeded
          workflow: ${args.workflow_name}
"""


def test_sync_and_workflows_steps(stub, compile_def):
    """Sync steps: one call of FUNCTION_NAME with the executor body; success only on a success
    word. Workflows steps: the child gets workflow_name (its own), the dates and the properties."""
    script(stub, job_S2={"outcome": "fail"}, job_S3={"outcome": "error"}, job_S4={"http_status": 404})
    levels = [[[sync_step("S1"), workflows_step("W1", "child-ok"), workflows_step("W2", "child-missing", CONTINUE_IF_FAIL=True),
                workflows_step("W3", "child-reader"),
                sync_step("S3", CONTINUE_IF_FAIL=True), sync_step("S4", CONTINUE_IF_FAIL=True),
                sync_step("S5", "dataflow-flextemplate-job-executor", CONTINUE_IF_FAIL=True), sync_step("S2")]]]
    child = compile_def(pipeline([[[step("K1")]]]), name="child-ok")
    with pytest.warns(LevelflowWarning, match="starts a job"):
        parent = compile_def(pipeline(levels))
    outcome = run({**parent, **child, "child-reader.yaml": CHILD_READING_ITS_ARGUMENT},
                  {"query_variables": {"start_date": "2026-11-30", "end_date": "2026-12-01"}})
    assert outcome.statuses() == {"S1": "succeeded", "W1": "succeeded", "W2": "continued", "W3": "succeeded",
                                  "S3": "continued", "S4": "continued", "S5": "continued", "S2": "failed"}
    [sync] = calls(stub, job_name="job_S1")
    assert (sync["function"], sync["hop"], sync["status"], sync["answer"]) == ("my-sync-fn", "executor", 200, "SUCCEEDED")
    assert sync["body"] == {"workflow_properties": {"jobs_definitions_bucket": "my-orchestration-dev-jobs"}, "workflow_name": "pipe",
                            "job_name": "job_S1", "query_variables": {"start_date": "'2026-11-30'", "end_date": "'2026-12-01'"}}
    assert calls(stub, job_name="job_K1", call_type="get_id")  # the child workflow really ran
    errors = {s["job_id"]: s.get("error", {}) for s in outcome.error["steps"]}
    assert "not found" in errors["W2"]["message"]
    assert "answered an error" in errors["S3"]["message"] and "BadRequest" in errors["S3"]["body"]
    assert errors["S4"]["code"] == 404
    assert "started job aef_" in errors["S5"]["message"] and "declare this step TYPE async" in errors["S5"]["message"]
    assert "FAILED" in errors["S2"]["message"] and "not a success state word" in errors["S2"]["message"]


@pytest.mark.parametrize("threads", [1, 2, 10, 11, 15])
def test_levels_of_many_threads_all_run(stub, compile_def, threads):
    levels = [[[step(f"L1T{t}")] for t in range(threads)], [[step("AFTER")]]]
    files = compile_def(pipeline(levels))
    outcome = run(files)
    assert outcome.result["status"] == "succeeded" and len(outcome.statuses()) == threads + 1
    started = [c["job_name"] for c in calls(stub, call_type="get_id")]
    assert sorted(started[:-1]) == sorted(f"job_L1T{t}" for t in range(threads)) and started[-1] == "job_AFTER"
    doc = yaml.safe_load(next(iter(files.values())))
    assert _parallel_widths(doc) == _expected_widths(threads)


def _parallel_widths(doc) -> list[int]:
    widths = []

    def visit(value):
        if isinstance(value, dict):
            if "parallel" in value:
                widths.append(len(value["parallel"]["branches"]))
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(doc)
    return sorted(widths)


def _expected_widths(threads: int) -> list[int]:
    if threads == 1:
        return []
    if threads <= 10:
        return [threads]
    groups = [min(10, threads - start) for start in range(0, threads, 10)]
    return sorted([len(groups)] + [g for g in groups if g > 1])


def test_a_level_of_100_threads(stub, compile_def):
    levels = [[[step(f"T{t}")] for t in range(100)]]
    files = compile_def(pipeline(levels))
    text = next(iter(files.values()))
    assert schema_errors(text) == []
    doc = yaml.safe_load(text)
    assert _parallel_widths(doc) == [10] * 11  # 10 groups of 10 threads, nested 2 deep
    assert len([name for name in doc if name.startswith("level_1_group_")]) == 10
    outcome = run(files)
    assert outcome.result["status"] == "succeeded" and len(outcome.statuses()) == 100
    assert len(calls(stub, call_type="get_status")) == 100


# --- inputs, arguments, inert data ----------------------------------------------------------


HOSTILE = {"expr": '${sys.get_env("LEVELFLOW_SECRET")}', "quote": "it's \"quoted\"", "newline": "a\nb",
           "brace": "} ${", "nested": {"${key}": ["$", "${1 + 1}"]}, "n": 3}


def test_hostile_values_reach_the_executor_as_literal_text(stub, compile_def, monkeypatch):
    monkeypatch.setenv("LEVELFLOW_SECRET", "leaked")
    levels = [[[step("H-1", JOB_NAME="a-b_c", STEP_PROPERTIES=HOSTILE), step("H2", STEP_PROPERTIES=json.dumps({"plain": "x"}))]]]
    files = compile_def(pipeline(levels))
    text = next(iter(files.values()))
    assert schema_errors(text) == [] and "leaked" not in text
    doc = yaml.safe_load(text)
    job = doc["main"]["steps"][0]["init"]["assign"][0]["pipeline"]["levels"][0]["threads"][0]["jobs"][0]
    assert job["job"] == "a-b_c" and "${" not in job["props_json"] and json.loads(job["props_json"]) == HOSTILE
    assert not any(isinstance(s, str) and "a-b_c" in s and s.startswith("${") for s in _strings(doc))
    props = {"owner": "me", "n": 1, "jobs_definitions_bucket": "jobs"}  # the executors read the bucket from here
    outcome = run(files, {"workflow_properties": props})
    assert outcome.result["status"] == "succeeded"
    received = calls(stub, job_name="a-b_c", call_type="get_id")[0]["body"]
    assert received["step_properties"] == {**props, **HOSTILE}  # merged over the workflow properties
    assert received["workflow_properties"] == props
    assert calls(stub, job_name="job_H2")[0]["body"]["step_properties"] == {**props, "plain": "x"}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_request_body_and_execution_arguments(stub, compile_def):
    script(stub, {"polls": 1})
    files = compile_def(pipeline([[[step("P", FUNCTION_STATUS_NAME="status-fn")]]]))
    run(files)
    start, status = calls(stub, call_type="get_id")[0]["body"], calls(stub, call_type="get_status")[0]["body"]
    today = datetime.datetime.fromtimestamp(EPOCH, datetime.timezone.utc).date().isoformat()  # the virtual clock's day
    assert start == {"call_type": "get_id", "workflow_name": "pipe", "execution_id": "test-execution-1", "job_name": "job_P",
                     "function_url_to_call": f"{stub.url}/dataform-tag-executor",
                     "query_variables": {"start_date": today, "end_date": today}, "workflow_properties": {},
                     "step_properties": {"jobs_definitions_bucket": "my-orchestration-dev-jobs"}}
    assert status["function_url_to_call"] == f"{stub.url}/status-fn" and status["async_job_id"] == start_answer(stub)
    stub.state.calls.clear()
    run(files, {"workflow_name": "other", "query_variables": {"start_date": "2025-01-01", "end_date": "2025-01-31"}})
    body = calls(stub, call_type="get_id")[0]["body"]
    assert body["workflow_name"] == "other" and body["query_variables"] == {"start_date": "2025-01-01", "end_date": "2025-01-31"}


def start_answer(stub):
    return calls(stub, call_type="get_id")[0]["answer"]


def test_generated_http_calls_use_oidc_on_https_only_and_literal_timeouts(stub, compile_def, write_json):
    definition = pipeline([[[step("A", TIMEOUT_SECONDS="120"), sync_step("B", "f")]]])

    def branches(files):
        post = yaml.safe_load(next(iter(files.values())))["post"]
        return post["steps"][1]["send"]["try"]["steps"][0]["by_timeout"]["switch"]

    deployed = cw.generate_workflows(load_plan(write_json(definition), load_params(PARAMS)))  # https://...cloudfunctions.net
    assert [(b["args"]["auth"], b["args"]["timeout"]) for b in branches(deployed)] == [({"type": "OIDC"}, 120), ({"type": "OIDC"}, 1800)]
    # plain http to the loopback double: no auth (Workflows authenticates https calls only)
    assert [("auth" in b["args"], b["args"]["timeout"]) for b in branches(compile_def(definition))] == [(False, 120), (False, 1800)]
    # plain http to another host is refused when the parameters are read (docs/limits.md)
    with pytest.raises(ValueError, match="plain http to a loopback address"):
        PlatformParams.from_mapping({**load_params(PARAMS).as_mapping(), "pFunctionsBaseUrl": "http://evil.example"})


# --- limits, size, splitting ----------------------------------------------------------------


def test_each_further_step_costs_little_source(compile_def):
    def size(count):
        return len(next(iter(compile_def(pipeline([[[step(f"S{i}") for i in range(count)]]])).values())).encode())

    assert size(41) - size(40) <= 300


def test_large_pipeline_is_split_into_part_workflows(compile_def):
    levels = [[[step(f"L{li}T{ti}S{si}") for si in range(10)] for ti in range(10)] for li in range(12)]
    with pytest.warns(cw.LevelflowWarning):  # 1,200 steps polled to their time-outs would need more steps than one execution
        files = compile_def(pipeline(levels), name="big")
    names = list(files)
    assert names[0] == "big.yaml" and names[1:] == [f"big-part-{n}.yaml" for n in range(1, len(names))]
    assert len(names) >= 3
    for text in files.values():
        assert len(text.encode()) <= cw.MAX_SOURCE_BYTES and schema_errors(text) == []
    parent = yaml.safe_load(files["big.yaml"])
    assert parent["main"]["steps"][0]["init"]["assign"][2]["parts"] == [n.removesuffix(".yaml") for n in names[1:]]
    jobs = [j["id"] for name in names[1:] for level in yaml.safe_load(files[name])["main"]["steps"][0]["init"]["assign"][0]["pipeline"]["levels"]
            for t in level["threads"] for j in t["jobs"]]
    assert len(jobs) == 1200 and len(set(jobs)) == 1200


def test_split_parts_run_in_order_and_stop_after_a_failure(stub, compile_def, monkeypatch):
    script(stub, job_B={"outcome": "fail"})
    levels = [[[step("A")]], [[step("B")], [step("C")]], [[step("D")]], [[step("E")]]]
    whole = next(iter(compile_def(pipeline(levels)).values()))
    monkeypatch.setattr(cw, "MAX_SOURCE_BYTES", len(whole.encode()) - 1)  # one byte too small: the pipeline splits
    files = compile_def(pipeline(levels))
    assert len(files) >= 3 and all(len(text.encode()) < len(whole.encode()) for text in files.values())
    outcome = run(files, {"workflow_name": "nightly"})
    assert outcome.statuses() == {"A": "succeeded", "B": "failed", "C": "succeeded", "D": "not_started", "E": "not_started"}
    assert outcome.error["failed"] == ["B"]
    assert {c["body"]["workflow_name"] for c in stub.state.calls} == {"nightly"}
    assert not calls(stub, job_name="job_D") and last_seq(stub, "job_A") < first_seq(stub, "job_B")
    stub.state.calls.clear()
    script(stub)
    assert run(files).result["status"] == "succeeded" and len(calls(stub, call_type="get_id")) == 5


def test_limits_are_reported_with_the_overshoot(compile_def, monkeypatch):
    with pytest.raises(LevelflowError, match=r"101 threads, 1 more than the 100"):
        compile_def(pipeline([[[step(f"T{t}")] for t in range(101)]]))
    with pytest.raises(LevelflowError, match=r"100,000 steps an execution may run; set WAIT_TIME_SECONDS to at least"):
        compile_def(pipeline([[[step("P", WAIT_TIME_SECONDS="1", ASYNC_TIMEOUT_LOOP_IN_MINUTES="600")]]]))
    monkeypatch.setattr(cw, "MAX_SOURCE_BYTES", 9_000)
    with pytest.raises(LevelflowError, match=r"level '1' alone needs [\d,]+ bytes .* more than the 9,000-byte limit") as info:
        compile_def(pipeline([[[step(f"S{i}") for i in range(30)]]]))
    assert info.value.problems[0].path == ("definition", 0)


def test_whole_run_step_estimate_warns(compile_def):
    slow = {"WAIT_TIME_SECONDS": "10", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "600"}  # 3,600 polls each: fine alone, not both
    with pytest.warns(cw.LevelflowWarning, match="100,000"):
        compile_def(pipeline([[[step("A", **slow)], [step("B", **slow)]]]))


# --- output files: schema, determinism, serializers, command lines --------------------------


def _example_files():
    params = load_params(PARAMS)
    for name in ("demo_pipeline_cloud_workflows.json", "retail_daily.json"):
        yield name, cw.generate_workflows(load_plan(EXAMPLES / name, params))


def test_every_generated_file_is_schema_valid_and_deterministic(compile_def):
    hostile = pipeline([[[step("H", JOB_NAME="a-b_c", STEP_PROPERTIES=HOSTILE, NEXT="I"), step("I", RETRIES="1")]],
                        [[step(f"T{t}")] for t in range(23)]])
    outputs = [*(files for _, files in _example_files()), compile_def(hostile)]
    with pytest.warns(cw.LevelflowWarning):
        outputs.append(compile_def(pipeline([[[step(f"L{li}T{ti}S{si}") for si in range(10)] for ti in range(10)] for li in range(8)]), name="big"))
    for files in outputs:
        for name, text in files.items():
            assert schema_errors(text) == [], name
    again = [*(files for _, files in _example_files()), compile_def(hostile)]
    assert outputs[:3] == again


def test_both_yaml_emitters_write_the_same_bytes(compile_def):
    if "libyaml" not in cw._dumpers():
        pytest.skip("PyYAML without libyaml")
    plan_files = compile_def(pipeline([[[step("H", STEP_PROPERTIES={**HOSTILE, "num": "1e5", "hex": "0x1F", "yes": "yes"})]]]))
    doc = yaml.safe_load(next(iter(plan_files.values())))
    assert cw.render(doc, "libyaml") == cw.render(doc, "python")
    text = cw.render({"values": ["1e5", "0x1F", ".inf", "12", "1.5", "abc"]})
    assert "'1e5'" in text and "'0x1F'" in text and "'.inf'" in text  # YAML 1.2 parsers would read them as numbers
    assert yaml.safe_load(text)["values"] == ["1e5", "0x1F", ".inf", "12", "1.5", "abc"]


def test_cli_generate_and_the_original_positional_script(tmp_path):
    from conftest import ROOT, run_cli
    import subprocess
    import sys

    definition = EXAMPLES / "demo_pipeline_cloud_workflows.json"
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert run_cli("generate", definition, "--params", PARAMS, "-o", first).returncode == 0
    script_run = subprocess.run([sys.executable, "workflows_generator.py", str(definition), str(PARAMS.relative_to(ROOT)), str(second), "True"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert script_run.returncode == 0, script_run.stderr
    assert first.read_bytes() == second.read_bytes()
    origin, compiled = first.read_text().split("\n", 1)  # the CLI's files start with their provenance line
    assert origin.startswith('# levelflow ') and 'source "examples/demo_pipeline_cloud_workflows.json"' in origin
    assert compiled == next(files for name, files in _example_files() if name == definition.name)["demo_pipeline_cloud_workflows.yaml"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(pipeline([[[step("A", WAIT_TIME_SECONDS="soon")]]])))
    failed = subprocess.run([sys.executable, "workflows_generator.py", str(bad), str(PARAMS), str(tmp_path / "c.yaml"), "False"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "WAIT_TIME_SECONDS: must be a whole number of seconds" in failed.stderr
    assert f"{bad}:" in failed.stderr and "Traceback" not in failed.stderr and not (tmp_path / "c.yaml").exists()
    usage = subprocess.run([sys.executable, "workflows_generator.py", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_cli_writes_split_pipelines_and_reports_warnings(tmp_path, write_json):
    from conftest import run_cli

    slow = {"WAIT_TIME_SECONDS": "10", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "600"}
    path = write_json(pipeline([[[step(f"L{li}T{ti}S{si}", **slow) for si in range(10)] for ti in range(10)] for li in range(10)]), "wide.json")
    result = run_cli("generate", path, "--params", PARAMS, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"wide.yaml"} | {f"wide-part-{n}.yaml" for n in range(1, len(written))} and len(written) >= 3
    assert "warning: " in result.stderr and "100,000" in result.stderr


def test_variable_memory_estimate_also_splits(compile_def, monkeypatch):
    levels = [[[step(f"L{li}T{ti}S{si}") for si in range(5)] for ti in range(3)] for li in range(4)]
    assert len(compile_def(pipeline(levels))) == 1
    monkeypatch.setattr(cw, "MAX_VARIABLE_BYTES", 2 * cw.RECORD_BYTES * 3 * 15 + 30_000)  # room for about two levels
    files = compile_def(pipeline(levels))
    assert len(files) >= 3 and all(schema_errors(text) == [] for text in files.values())


def test_a_split_pipeline_too_big_to_list_reports_its_parts(stub, compile_def, monkeypatch):
    script(stub, job_C={"outcome": "fail"})
    levels = [[[step("A")]], [[step("B")], [step("C")]], [[step("D")]]]
    whole = next(iter(compile_def(pipeline(levels)).values()))
    monkeypatch.setattr(cw, "MAX_SOURCE_BYTES", len(whole.encode()) - 1)
    # parts of 1 or 2 steps fit, 3 records (each with room for its bounded error) do not
    monkeypatch.setattr(cw, "MAX_VARIABLE_BYTES", 3 * (cw.RECORD_BYTES + cw.ERROR_BYTES) * 3 - 1)
    files = compile_def(pipeline(levels))
    outcome = run(files)
    parts = [name.removesuffix(".yaml") for name in list(files)[1:]]
    assert outcome.error["failed"] == ["C"] and "C (job_C)" in outcome.error["message"]
    assert [p["workflow"] for p in outcome.error["parts"]] == parts and "steps" not in outcome.error
    statuses = [p["status"] for p in outcome.error["parts"]]
    assert statuses[0] == "succeeded" and "failed" in statuses and statuses[-1] == "not_started"
    assert not calls(stub, job_name="job_D")


# --- the deployed functions' contract, through the double's two hops --------------------------


def test_every_way_the_deployed_functions_fail_a_step(stub, compile_def, tmp_path):
    """A 200 error dict on start and on status, a name holding "error", a missing job file:
    each fails its step (the others run on), and the report names the answer."""
    folder = tmp_path / "jobs" / "dataproc-serverless-job-executor"
    folder.mkdir(parents=True)
    (folder / "job_OK.json").write_text("{}")
    stub.state.jobs_dir = tmp_path / "jobs"
    script(stub, {"polls": 1}, job_START={"outcome": "error", "fail_on": "start"}, job_STATUS={"outcome": "error"})
    dataproc = {"FUNCTION_ID_NAME": "dataproc-serverless-job-executor"}
    saved_query = {"FUNCTION_ID_NAME": "bq-saved-query-executor",
                   "STEP_PROPERTIES": {"dataform_project_id": "p", "dataform_location": "l", "repository_name": "r"}}
    generic = {"FUNCTION_ID_NAME": "my-executor"}
    levels = [[[step("OK", **dataproc)], [step("START", **generic)], [step("STATUS", **generic)], [step("MISSING", **dataproc)],
               [step("NAMED", JOB_NAME="load_errors", **saved_query)]]]
    with pytest.warns(LevelflowWarning, match="load_errors"):
        files = compile_def(pipeline(levels))
    outcome = run(files)
    assert outcome.statuses() == {"OK": "succeeded", "START": "failed", "STATUS": "failed", "MISSING": "failed", "NAMED": "failed"}
    body = {s["job_id"]: s["error"]["body"] for s in outcome.error["steps"] if s["status"] == "failed"}
    assert all(text.startswith("Exception : ") for text in body.values())
    assert '{"error":"BadRequest"' in body["START"] and '{"error":"BadRequest"' in body["STATUS"]
    assert "AttributeError" in body["MISSING"] and "aef_definitions_pipe_load_errors_sqlx_" in body["NAMED"]
    assert calls(stub, job_name="job_STATUS", call_type="get_status")  # the job had started


def test_string_workflow_properties_are_decoded_and_a_bad_one_fails_with_a_report(stub, compile_def):
    script(stub)
    files = compile_def(pipeline([[[step("A")]]]))
    outcome = run(files, {"workflow_properties": json.dumps({"jobs_definitions_bucket": "b", "env": "x"})})
    assert outcome.result["status"] == "succeeded"
    [start] = calls(stub, job_name="job_A", call_type="get_id")
    assert start["body"]["workflow_properties"] == {"jobs_definitions_bucket": "b", "env": "x"}
    for bad, said in (("{not json", "does not hold JSON"), ("[1, 2]", "must be a map"), (7, "must be a map")):
        outcome = run(files, {"workflow_properties": bad})
        assert outcome.error["status"] == "failed" and said in outcome.error["message"], bad
        assert outcome.statuses() == {"A": "not_started"}
    outcome = run(files, {"query_variables": "2026-01-01"})
    assert "query_variables must be a map" in outcome.error["message"]


def test_the_compiler_refuses_a_generated_source_that_breaks_a_limit():
    """The safety net behind every generated file: one walk (source_shape) measures, the
    compiler compares with the engine's limits."""
    plan = load_plan(EXAMPLES / "demo_pipeline_cloud_workflows.json", load_params(PARAMS))
    broken = {"main": {"steps": [
        {"twice": {"return": 1}}, {"twice": {"return": 2}},
        {"wide": {"switch": [{"condition": True, "next": "end"}] * 51}},
        {"lonely": {"parallel": {"branches": [{"only": {"steps": [{"go": {"call": "loop"}}]}}]}}},
        {"slow": {"call": "http.post", "args": {"url": "https://x.invalid", "timeout": 1801}}},
    ]}, "loop": {"steps": [{"again": {"call": "loop"}}]}}
    with pytest.raises(LevelflowError) as caught:
        cw._check_doc(plan, broken)
    messages = "\n".join(str(p) for p in caught.value.problems)
    for words in ("repeated: main.twice", "recursive subworkflow call main -> loop -> loop", "51 conditions in one switch, 1 more than 50",
                  "a parallel step of 1 branch(es)", "1801 seconds of HTTP time-out, 1 more than 1800"):
        assert words in messages, words
