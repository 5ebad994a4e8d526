"""Generated DAGs in real Airflow 3 and Airflow 2: import, graph, operators, and runs.

One harness subprocess per Airflow version imports every generated DAG at once (no network,
no Google credentials); another runs functions-mode DAGs with dag.test() against the stub
executor server over real HTTP.
"""
from __future__ import annotations

import json
import warnings
import random

import pytest

import levelflow
from levelflow.errors import LevelflowWarning
from levelflow.backends import GenerateOptions
from levelflow.backends.composer.compiler import component
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub

from airflow_support import (
    CATALOGUE_TASKS, ROOT, can_unshare_network, expected_upstream, run_harness, run_order,
    gate_id, step_executor, step_task_ids, thread_prefix,
)

VERSIONS = ["airflow3", "airflow2"]
EXAMPLES = ROOT / "examples"
OPERATOR_EXECUTORS = sorted(set(CATALOGUE_TASKS) - {"workflows"})


def random_definition(rng: random.Random, name: str, mode: str) -> dict:
    """A pipeline of random shape: 1-4 levels of 1-4 threads of 1-4 steps, every option mixed."""
    count = iter(range(1, 10_000))
    levels = []
    for li in range(rng.randint(1, 4)):
        threads = []
        for ti in range(rng.randint(1, 4)):
            steps = [random_step(rng, f"{name}_{next(count)}", mode) for _ in range(rng.randint(1, 4))]
            if len(steps) >= 3 and rng.random() < 0.3:
                steps[0]["NEXT"] = steps[2]["JOB_ID"]  # jump over the second step
            threads.append({"THREAD_ID": f"t{ti}", "STEPS": steps})
        levels.append({"LEVEL_ID": str(li + 1), "THREADS": threads})
    return {"engine": "composer", "name": name, "definition": levels,
            "schedule": rng.choice([None, "0 3 * * *", "@daily"])}


def random_step(rng: random.Random, job: str, mode: str) -> dict:
    step = {"JOB_ID": job, "JOB_NAME": job, "RETRIES": rng.randint(0, 3),
            "WAIT_TIME_SECONDS": rng.randint(1, 60), "ASYNC_TIMEOUT_LOOP_IN_MINUTES": rng.randint(1, 90)}
    if rng.random() < 0.3:
        step["CONTINUE_IF_FAIL"] = rng.choice(["True", True])
    kind = rng.random()
    if kind < 0.15:
        step.update(TYPE="workflows", workflows_name=f"child-{job}")
    elif mode == "operators":
        step.update(TYPE="async", COMPOSER_STEP=rng.choice(OPERATOR_EXECUTORS))
    elif kind < 0.6:
        step.update(TYPE="async", FUNCTION_ID_NAME=f"exec-{rng.randint(1, 3)}")
    else:  # one call: a sync step polls nothing (its polling keys would be errors)
        step.update(TYPE="sync", FUNCTION_NAME=f"sync-{rng.randint(1, 3)}", WAIT_TIME_SECONDS=None,
                    ASYNC_TIMEOUT_LOOP_IN_MINUTES=None)
    return {key: value for key, value in step.items() if value is not None}


def long_ids_definition() -> dict:
    """Ids at the 128-character maximum: the DAG's ids must still fit Airflow's 250."""
    level, thread = "L" * 128, "T" * 128
    steps = [{"JOB_ID": f"s{i}", "JOB_NAME": f"{i}" + "j" * 127, "TYPE": "async", "CONTINUE_IF_FAIL": True,
              "COMPOSER_STEP": "dataform-tag-executor"} for i in range(2)]
    return {"engine": "composer", "name": "long_ids",
            "definition": [{"LEVEL_ID": level, "THREADS": [{"THREAD_ID": thread, "STEPS": steps}]}]}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Many DAGs of many shapes in both modes, plus the examples; {dag_id: (definition, mode)}."""
    work = tmp_path_factory.mktemp("airflow-import")
    definitions, dags = work / "definitions", work / "dags"
    definitions.mkdir()
    rng = random.Random(20261126)
    cases = {}
    for i in range(12):
        for mode in ("operators", "functions"):
            cases[f"shape_{mode}_{i}"] = (random_definition(rng, f"shape_{mode}_{i}", mode), mode)
    cases["long_ids"] = (long_ids_definition(), "operators")
    for name, (definition, mode) in cases.items():
        path = definitions / f"{name}.json"
        path.write_text(json.dumps(definition))
        levelflow.generate([path], EXAMPLES / "platform-parameters-dev.json", dags,
                           options=GenerateOptions(step_mode=mode))
    examples = {"demo_pipeline_composer": "operators", "retail-daily": "functions"}
    for stem, mode in (("demo_pipeline_composer", "operators"), ("retail_daily", "functions")):
        source = EXAMPLES / f"{stem}.json"
        levelflow.generate([source], EXAMPLES / "platform-parameters-dev.json", dags, engine="composer",
                           options=GenerateOptions(step_mode=mode))
    for dag_id, mode in examples.items():
        stem = "retail_daily" if dag_id == "retail-daily" else dag_id
        cases[dag_id] = (json.loads((EXAMPLES / f"{stem}.json").read_text()), mode)
    return work, dags, cases


@pytest.fixture(scope="module", params=VERSIONS)
def parsed(request, generated):
    work, dags, cases = generated
    result = run_harness(request.param, work, "inspect", dags, "--forbid-network", isolate_network=True)
    return request.param, result, cases


def test_every_dag_imports_without_network_or_credentials(parsed):
    version, result, cases = parsed
    assert result["import_errors"] == {}
    assert sorted(result["dags"]) == sorted(cases)
    assert result["network_attempts"] == []
    if can_unshare_network():  # parsed in a network namespace of its own: loopback only, and down
        assert result["interfaces"] == ["lo"]
    assert result["warnings"] == {}  # no deprecated Airflow API in the generated files


def test_dependency_graph_equals_the_plan(parsed):
    version, result, cases = parsed
    for dag_id, (definition, mode) in cases.items():
        tasks = result["dags"][dag_id]["tasks"]
        actual = {task_id: task["upstream"] for task_id, task in tasks.items()}
        assert actual == expected_upstream(definition, mode), dag_id


def test_levels_sequential_threads_parallel_steps_ordered(parsed):
    """Reachability in the real graph, independent of how the gates are wired."""
    version, result, cases = parsed
    for dag_id, (definition, mode) in cases.items():
        tasks = result["dags"][dag_id]["tasks"]
        ancestors = _ancestors({task_id: task["upstream"] for task_id, task in tasks.items()})
        levels = []
        for level in definition["definition"]:
            threads = []
            for thread in level["THREADS"]:
                prefix = thread_prefix(level, thread)
                steps = [step_task_ids(prefix, step, mode) for step in run_order(thread["STEPS"])]
                for before, after in zip(steps, steps[1:]):
                    assert all(set(before) <= ancestors[task] for task in after), (dag_id, before, after)
                threads.append([task for step in steps for task in step])
            for a in threads:
                for b in threads:
                    assert a is b or not any(set(a) & ancestors[task] for task in b), (dag_id, "threads not parallel")
            levels.append([task for thread in threads for task in thread])
        for before, after in zip(levels, levels[1:]):
            assert all(set(before) <= ancestors[task] for task in after), (dag_id, "levels not sequential")


def _ancestors(upstream: dict) -> dict:
    memo: dict[str, set] = {}

    def walk(task_id):
        if task_id not in memo:
            memo[task_id] = set()
            for parent in upstream[task_id]:
                memo[task_id] |= {parent} | walk(parent)
        return memo[task_id]

    return {task_id: walk(task_id) for task_id in upstream}


def test_dag_settings(parsed):
    version, result, cases = parsed
    for dag_id, (definition, mode) in cases.items():
        dag = result["dags"][dag_id]
        assert dag["catchup"] is False and dag["native"] is True
        assert {"start_date", "end_date"} <= set(dag["params"])
        assert dag["tags"] == sorted(["levelflow", mode])
        assert dag["schedule"] == definition.get("schedule")
        assert dag["doc_md"].startswith(f"# {dag_id}\n")
        assert all(len(task_id) <= 250 for task_id in dag["tasks"])


def test_groups_are_levels_and_threads_only(parsed):
    """The graph view shows a group per level and per thread in it; a step's tasks sit in its
    thread's group (no group per step: Airflow's cost of a new group grows with the DAG)."""
    version, result, cases = parsed
    for dag_id, (definition, mode) in cases.items():
        dag = result["dags"][dag_id]
        expected = {}
        for level in definition["definition"]:
            level_id = f"level_{component(level['LEVEL_ID'])}"
            expected[f"{level_id}.done"] = level_id
            for thread in level["THREADS"]:
                prefix = thread_prefix(level, thread)
                for step in run_order(thread["STEPS"]):
                    for task_id in step_task_ids(prefix, step, mode):
                        expected[task_id] = prefix
                    if step.get("CONTINUE_IF_FAIL"):
                        expected[gate_id(prefix, step)] = prefix
        assert {task_id: task["group"] for task_id, task in dag["tasks"].items()} == expected, dag_id
        assert dag["groups"] == sorted(set(expected.values())), dag_id


def test_plan_figures_tell_the_dags_task_ids(parsed):
    """`levelflow plan`'s longest task id is the longest id of the DAG (in operators mode, whose
    ids are the longer; functions mode when the executors are not operators mode's)."""
    from levelflow import report
    from levelflow.model import pipeline_from

    version, result, cases = parsed
    params = levelflow.load_params(EXAMPLES / "platform-parameters-dev.json")
    for dag_id, (definition, mode) in cases.items():
        plan = levelflow.build_plan(pipeline_from(definition), params)
        figures = {figure["name"]: figure for figure in report.build_report(plan)["limits"]}
        longest = max(result["dags"][dag_id]["tasks"], key=len)
        if mode == "operators" or dag_id.startswith("shape_functions"):
            assert len(figures["task_id length (longest)"]["note"]) == len(longest), dag_id
        if mode == "operators":
            assert figures["task_id length (longest)"]["note"] in result["dags"][dag_id]["tasks"], dag_id


def test_steps_carry_retries_and_continue_gates(parsed):
    version, result, cases = parsed
    for dag_id, (definition, mode) in cases.items():
        tasks = result["dags"][dag_id]["tasks"]
        for level in definition["definition"]:
            for thread in level["THREADS"]:
                prefix = thread_prefix(level, thread)
                for step in run_order(thread["STEPS"]):
                    for task_id in step_task_ids(prefix, step, mode):
                        assert tasks[task_id]["retries"] == int(step.get("RETRIES", 0))
                    gate = tasks.get(gate_id(prefix, step))
                    assert (gate is not None) == bool(step.get("CONTINUE_IF_FAIL"))
                    assert gate is None or gate["trigger_rule"] == "all_done"


def test_operators_mode_uses_native_google_operators(parsed):
    version, result, cases = parsed
    expected_classes = {
        "compile": "DataformCreateCompilationResultOperator", "invoke": "DataformCreateWorkflowInvocationOperator",
        "start": "WorkflowsCreateExecutionOperator",
    }
    run_classes = {"dataflow-flextemplate-job-executor": "DataflowStartFlexTemplateOperator",
                   "dataproc-serverless-job-executor": "DataprocCreateBatchOperator",
                   "bq-saved-query-executor": "BigQueryInsertJobOperator"}
    seen = set()
    for dag_id, (definition, mode) in cases.items():
        if mode != "operators":
            continue
        tasks = result["dags"][dag_id]["tasks"]
        for level in definition["definition"]:
            for thread in level["THREADS"]:
                prefix = thread_prefix(level, thread)
                for step in run_order(thread["STEPS"]):
                    executor = step_executor(step)
                    seen.add(executor)
                    for task_id in step_task_ids(prefix, step, mode):
                        task, suffix = tasks[task_id], task_id.rsplit(".", 1)[1]
                        if suffix == "job_params":
                            assert task["class"] == "PythonOperator"
                        elif suffix == "run":
                            assert task["class"] == run_classes[executor] and task["deferrable"] is True
                            assert "{{ job_param(ti, 'project_id') }}" in task["values"].values()
                        elif suffix == "wait":
                            assert task["mode"] == "reschedule" and task["poke_interval"] == int(step.get("WAIT_TIME_SECONDS", 30))
                        else:
                            assert task["class"] == expected_classes[suffix]
                        if executor == "dataform-tag-executor" and suffix == "wait":
                            assert "DataformWorkflowInvocationStateSensor" in task["base_classes"]
                            assert {"project_id", "region", "repository_id", "workflow_invocation_id"} <= set(task["template_fields"])
                        if executor == "bq-saved-query-executor":
                            assert "location" in task["template_fields"] or suffix == "job_params"
    assert seen == set(CATALOGUE_TASKS)


# ---- runs against the stub executor server ------------------------------------------------------

RUN_SCENARIO = {
    "default": {"polls": 1},
    "jobs": {
        "ok_poll": {"polls": 2}, "ok_flaky": {"transient": [1, 3]}, "ok_fails_continue": {"outcome": "fail"},
        "ok_never_continue": {"outcome": "never"},
        "bad_fails": {"outcome": "fail"}, "bad_sibling_slow": {"polls": 3},
        "err_start_dict": {"outcome": "error", "fail_on": "start"}, "err_status_dict": {"outcome": "error"},
        "err_sync_dict": {"outcome": "error"},
    },
}
SAVED_QUERY_PROPERTIES = {"dataform_project_id": "p", "dataform_location": "l", "repository_name": "r"}


def thread(thread_id, *steps):
    return {"THREAD_ID": thread_id, "STEPS": list(steps)}


def async_step(job, **extra):
    return {"JOB_ID": job, "JOB_NAME": job, "TYPE": "async", "FUNCTION_ID_NAME": "exec-a",
            "FUNCTION_STATUS_NAME": "exec-status", "WAIT_TIME_SECONDS": 1, **extra}


def sync_step(job, **extra):
    return {"JOB_ID": job, "JOB_NAME": job, "TYPE": "sync", "FUNCTION_NAME": "exec-sync", **extra}


RUN_DEFINITIONS = {
    # Succeeds: polls, transient 503s retried, a failed and a timed-out CONTINUE_IF_FAIL step.
    "run_ok": {"engine": "composer", "name": "run_ok", "definition": [
        {"LEVEL_ID": "1", "THREADS": [
            thread("a", async_step("ok_poll", STEP_PROPERTIES={"note": "{{ 7 * 7 }}"}), async_step("ok_fails_continue", CONTINUE_IF_FAIL=True), sync_step("ok_after_continue")),
            thread("b", async_step("ok_flaky"), async_step("ok_never_continue", CONTINUE_IF_FAIL="True",
                                                            ASYNC_TIMEOUT_LOOP_IN_MINUTES=0.05))]},
        {"LEVEL_ID": "2", "THREADS": [thread("c", sync_step("ok_level2"))]}]},
    # Fails: a failed step stops its thread, its sibling finishes, the next level never runs;
    # the continue-if-fail steps after the failure do not revive their thread or level.
    "run_bad": {"engine": "composer", "name": "run_bad", "definition": [
        {"LEVEL_ID": "1", "THREADS": [
            thread("a", async_step("bad_fails"), sync_step("bad_after_failure", CONTINUE_IF_FAIL=True),
                   sync_step("bad_after_continue")),
            thread("b", async_step("bad_sibling_slow"), sync_step("bad_sibling_next"))]},
        {"LEVEL_ID": "2", "THREADS": [thread("c", sync_step("bad_level2", CONTINUE_IF_FAIL=True), sync_step("bad_level2_next"))]}]},
    # Every way the deployed functions fail a step, each in its own thread.
    "run_errors": {"engine": "composer", "name": "run_errors", "definition": [
        {"LEVEL_ID": "1", "THREADS": [
            thread("a", async_step("err_start_dict")), thread("b", async_step("err_status_dict")),
            thread("c", sync_step("err_sync_dict")),
            thread("d", async_step("load_errors", FUNCTION_ID_NAME="bq-saved-query-executor", FUNCTION_STATUS_NAME="bq-saved-query-executor",
                                   STEP_PROPERTIES=SAVED_QUERY_PROPERTIES)),
            thread("e", async_step("dp_missing", FUNCTION_ID_NAME="dataproc-serverless-job-executor",
                                   FUNCTION_STATUS_NAME="dataproc-serverless-job-executor")),
            thread("f", async_step("dp_present", FUNCTION_ID_NAME="dataproc-serverless-job-executor",
                                   FUNCTION_STATUS_NAME="dataproc-serverless-job-executor"))]}]},
}


@pytest.fixture(scope="module", params=VERSIONS)
def stub_runs(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"airflow-run-{request.param}")
    dags = work / "dags"
    jobs = work / "jobs" / "dataproc-serverless-job-executor"
    jobs.mkdir(parents=True)
    (jobs / "dp_present.json").write_text(json.dumps({"dataproc_serverless_project_id": "p"}))
    with RunningStub(Scenario.model_validate(RUN_SCENARIO), jobs_dir=work / "jobs") as stub:
        params = work / "platform-parameters-stub.json"
        base = json.loads((EXAMPLES / "platform-parameters-dev.json").read_text())
        params.write_text(json.dumps(base + [{"ParameterKey": "pFunctionsBaseUrl", "ParameterValue": stub.url}]))
        for name, definition in RUN_DEFINITIONS.items():
            path = work / f"{name}.json"
            path.write_text(json.dumps(definition))
            with warnings.catch_warnings():  # load_errors is named to fail, as the warning says
                warnings.simplefilter("ignore", LevelflowWarning)
                levelflow.generate([path], params, dags, options=GenerateOptions(step_mode="functions"))
        conf = json.dumps({"start_date": "2026-01-01", "end_date": "2026-01-31", "workflow_properties": {"env": "test"}})
        # workflow_properties as a string holding JSON, as the intermediate accepts it
        text_conf = json.dumps({"start_date": "2026-01-01", "end_date": "2026-01-31",
                                "workflow_properties": json.dumps({"env": "test", "jobs_definitions_bucket": "jobs"})})
        result = run_harness(request.param, work, "run", dags, "run_ok", conf, "run_bad", conf, "run_errors", text_conf)
        calls = list(stub.state.calls)
    return request.param, result, calls


def test_functions_mode_run_succeeds_with_continue_if_fail(stub_runs):
    version, result, calls = stub_runs
    run = result["runs"]["run_ok"]
    assert run["state"] == "success", run
    tasks = run["tasks"]
    assert tasks["level_1.thread_a.ok_fails_continue"] == "failed"
    assert tasks["level_1.thread_b.ok_never_continue"] == "failed"  # timed out
    for task_id in ("level_1.thread_a.ok_poll", "level_1.thread_a.ok_after_continue", "level_1.thread_b.ok_flaky",
                    "level_1.done", "level_2.thread_c.ok_level2", "level_2.done"):
        assert tasks[task_id] == "success", task_id
    mine = [call for call in calls if call["job_name"].startswith("ok_") and call["entry"]]
    polls = [call["answer"] for call in mine if call["job_name"] == "ok_poll" and call["call_type"] == "get_status"]
    assert polls == ["running", "running", "success"]
    flaky = [call["status"] for call in mine if call["job_name"] == "ok_flaky"]
    assert flaky == [503, 200, 503, 200, 200]  # both transient faults retried; one "running" from default (merged)


def test_functions_mode_failure_stops_thread_and_later_levels(stub_runs):
    version, result, calls = stub_runs
    run = result["runs"]["run_bad"]
    assert run["state"] == "failed"
    tasks = run["tasks"]
    assert tasks["level_1.thread_a.bad_fails"] == "failed"
    assert tasks["level_1.thread_b.bad_sibling_slow"] == "success"
    assert tasks["level_1.thread_b.bad_sibling_next"] == "success"
    never_ran = ["level_1.thread_a.bad_after_failure", "level_1.thread_a.bad_after_continue", "level_1.done",
                 "level_2.thread_c.bad_level2", "level_2.thread_c.bad_level2_next", "level_2.done"]
    assert {task_id: tasks[task_id] for task_id in never_ran} == dict.fromkeys(never_ran, "upstream_failed")
    # The continue gates of steps that never ran end, but do not let their thread go on.
    assert tasks["level_1.thread_a.bad_after_failure.continue"] == "success"
    assert tasks["level_2.thread_c.bad_level2.continue"] == "success"
    called = {call["job_name"] for call in calls}
    assert {"bad_fails", "bad_sibling_slow", "bad_sibling_next"} <= called
    assert not called & {"bad_after_failure", "bad_after_continue", "bad_level2", "bad_level2_next"}


def test_functions_mode_speaks_the_executor_protocol(stub_runs):
    version, result, calls = stub_runs
    def first(job, hop, call_type=None):
        return next(call for call in calls if call["job_name"] == job and call["hop"] == hop and call["call_type"] == call_type)

    start, status = first("ok_poll", "intermediate", "get_id"), first("ok_poll", "intermediate", "get_status")
    sync = first("ok_level2", "executor")
    keys = {"call_type", "workflow_name", "execution_id", "job_name", "function_url_to_call", "query_variables",
            "workflow_properties", "step_properties"}
    assert set(start["body"]) == keys and set(status["body"]) == keys | {"async_job_id"}
    assert start["function"] == status["function"] == "orch-framework-intermediate" and sync["function"] == "exec-sync"
    # a sync step: the executor's own body, straight to FUNCTION_NAME, dates quoted as the intermediate quotes them
    assert sync["entry"] and sync["answer"] == "SUCCEEDED"
    assert sync["body"] == {"workflow_properties": {"env": "test", "jobs_definitions_bucket": "my-orchestration-dev-jobs"},
                            "workflow_name": "run_ok", "job_name": "ok_level2",
                            "query_variables": {"start_date": "'2026-01-01'", "end_date": "'2026-01-31'"}}
    assert start["body"]["function_url_to_call"].endswith("/exec-a")
    assert status["body"]["function_url_to_call"].endswith("/exec-status")
    assert start["body"]["query_variables"] == {"start_date": "2026-01-01", "end_date": "2026-01-31"}
    assert start["body"]["workflow_properties"] == {"env": "test"}
    assert start["body"]["step_properties"] == {"note": "{{ 7 * 7 }}"}  # inert data, never rendered
    assert start["body"]["workflow_name"] == "run_ok" and start["body"]["job_name"] == "ok_poll"
    assert start["body"]["execution_id"] == status["body"]["execution_id"] != ""
    assert status["body"]["async_job_id"] == start["answer"]


def test_functions_mode_fails_every_way_the_deployed_functions_fail(stub_runs):
    """Through the double's two hops: a 200 error dict on start, on status and on a sync call,
    a job name holding "error", a missing job file; each fails its task, naming the answer."""
    version, result, calls = stub_runs
    run = result["runs"]["run_errors"]
    assert run["state"] == "failed"
    errors, tasks = run["errors"], run["tasks"]
    failed = {f"level_1.thread_{t}.{job}" for t, job in (("a", "err_start_dict"), ("b", "err_status_dict"), ("c", "err_sync_dict"),
                                                         ("d", "load_errors"), ("e", "dp_missing"))}
    assert {task: tasks[task] for task in failed} == dict.fromkeys(failed, "failed")
    assert tasks["level_1.thread_f.dp_present"] == "success"
    assert "start failed: HTTP 500" in errors["level_1.thread_a.err_start_dict"] and "BadRequest" in errors["level_1.thread_a.err_start_dict"]
    assert "HTTP 500" in errors["level_1.thread_b.err_status_dict"] and "BadRequest" in errors["level_1.thread_b.err_status_dict"]
    assert "exec-sync answered an error: BadRequest" in errors["level_1.thread_c.err_sync_dict"]
    assert "aef_definitions_run_errors_load_errors_sqlx_" in errors["level_1.thread_d.load_errors"]  # the job did start
    assert "AttributeError" in errors["level_1.thread_e.dp_missing"]  # the executor found no job file
    forwarded = [c for c in calls if c["job_name"] == "dp_present" and c["hop"] == "executor"]
    # string workflow_properties were decoded; the executors read the bucket from them
    assert forwarded and all(c["body"]["workflow_properties"]["env"] == "test" for c in forwarded)


def test_functions_mode_authenticates_https_only_with_an_id_token(generated):
    """Loopback http (the stub) gets no token; https asks google-auth for an ID token (which
    fails here: no credentials, no network); plain http elsewhere is refused."""
    work, dags, cases = generated
    urls = ["http://127.0.0.1:8080/intermediate", "http://localhost:9/f",
            "https://us-central1-p.cloudfunctions.net/intermediate", "http://10.1.2.3/intermediate"]
    result = run_harness("airflow3", work, "auth", dags / "shape_functions_0.py", *urls, isolate_network=True)
    assert result[urls[0]] == result[urls[1]] == {"headers": {}}
    assert result[urls[2]]["error"].startswith("google.auth.exceptions.")
    assert "refusing" in result[urls[3]]["error"]


# ---- operators mode: templates render job parameters as native values ----------------------------

JOB_PARAMS = {
    "dataproc-serverless-job-executor": {"project_id": "proj-dp", "region": "europe-west1",
                                         "batch": {"spark_batch": {"main_class": "x.Main"}, "labels": {"note": "{{ 7 * 7 }}"}}},
    "dataflow-flextemplate-job-executor": {"project_id": "proj-df", "location": "europe-west4",
                                           "body": {"launchParameter": {"jobName": "load", "parameters": {"a": "1"}}}},
    "dataform-tag-executor": {"project_id": "proj-dform", "region": "us-east1", "repository_id": "repo",
                              "git_commitish": "main", "tags": ["daily", "core"]},
    "bq-saved-query-executor": {"project_id": "proj-bq", "location": "EU",
                                "configuration": {"query": {"query": "SELECT 1", "useLegacySql": False}}},
}


@pytest.fixture(scope="module", params=VERSIONS)
def operator_run(request, tmp_path_factory):
    """One step per executor with job parameters embedded from --jobs-dir, run with no network:
    the job_params tasks succeed, the Google operators render their templates and then fail
    for want of credentials."""
    work = tmp_path_factory.mktemp(f"airflow-operators-{request.param}")
    for executor, params in JOB_PARAMS.items():
        (work / "jobs" / executor).mkdir(parents=True)
        (work / "jobs" / executor / f"{executor[:8]}_job.json").write_text(json.dumps(params))
    threads = [thread(str(i), {"JOB_ID": f"j{i}", "JOB_NAME": f"{executor[:8]}_job", "TYPE": "async",
                               "COMPOSER_STEP": executor, "WAIT_TIME_SECONDS": 7})
               for i, executor in enumerate(JOB_PARAMS)]
    threads.append(thread("wf", {"JOB_ID": "wf", "JOB_NAME": "child_run", "TYPE": "workflows",
                                 "workflows_name": "child-flow"}))
    path = work / "ops_run.json"
    path.write_text(json.dumps({"engine": "composer", "definition": [{"LEVEL_ID": "1", "THREADS": threads}]}))
    levelflow.generate([path], EXAMPLES / "platform-parameters-dev.json", work / "dags",
                       options=GenerateOptions(jobs_dir=work / "jobs"))
    conf = json.dumps({"start_date": "2026-02-01", "end_date": "2026-02-28"})
    result = run_harness(request.param, work, "run", work / "dags", "ops_run", conf, isolate_network=True)
    return request.param, result["runs"]["ops_run"]


def test_operators_mode_renders_job_parameters_natively(operator_run):
    version, run = operator_run
    assert run["state"] == "failed"  # no Google credentials or network here
    tasks, rendered = run["tasks"], run["rendered"]
    first_operator = {"dataproc-serverless-job-executor": "run", "dataflow-flextemplate-job-executor": "run",
                      "dataform-tag-executor": "compile", "bq-saved-query-executor": "run"}
    for i, executor in enumerate(JOB_PARAMS):
        group = f"level_1.thread_{i}.{executor[:8]}_job"
        assert tasks[f"{group}.job_params"] == "success"
        assert tasks[f"{group}.{first_operator[executor]}"] == "failed"
    dataproc = rendered["level_1.thread_0.dataproc_job.run"]
    assert dataproc["batch"] == JOB_PARAMS["dataproc-serverless-job-executor"]["batch"]  # a dict; "{{ 7 * 7 }}" inert
    assert (dataproc["project_id"], dataproc["region"]) == ("proj-dp", "europe-west1")
    assert dataproc["batch_id"].startswith("lf-dataproc-job-") and len(dataproc["batch_id"]) <= 63
    dataflow = rendered["level_1.thread_1.dataflow_job.run"]
    assert dataflow["body"] == JOB_PARAMS["dataflow-flextemplate-job-executor"]["body"]
    assert (dataflow["project_id"], dataflow["location"]) == ("proj-df", "europe-west4")
    compile_ = rendered["level_1.thread_2.dataform_job.compile"]
    assert (compile_["project_id"], compile_["region"], compile_["repository_id"]) == ("proj-dform", "us-east1", "repo")
    assert compile_["compilation_result"] == {"git_commitish": "main", "code_compilation_config": {
        "vars": {"start_date": "2026-02-01", "end_date": "2026-02-28"}}}
    bq = rendered["level_1.thread_3.bq-saved_job.run"]
    assert bq["configuration"] == JOB_PARAMS["bq-saved-query-executor"]["configuration"]
    assert bq["project_id"] == "proj-bq"
    workflow = rendered["level_1.thread_wf.child_run.start"]
    assert workflow["workflow_id"] == "child-flow" and workflow["location"] == "us-central1"
    assert isinstance(workflow["execution"]["argument"], str)
    assert json.loads(workflow["execution"]["argument"]) == {
        "workflow_name": "child-flow", "query_variables": {"start_date": "2026-02-01", "end_date": "2026-02-28"},
        "workflow_properties": {"jobs_definitions_bucket": "my-orchestration-dev-jobs"}}
