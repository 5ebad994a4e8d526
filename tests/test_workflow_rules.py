"""Generated Cloud Workflows against the documented rules the emulator does not enforce
(tests/workflow_rules.py), and in the strict harness that drops except-block variables as the
service does. Every workflow any test loads into the emulator is checked too."""
import json
import warnings

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import workflow_rules
from cloud_workflows_emulator import _mark_except_blocks, patched_emulator, run, schema_errors
from conftest import EXAMPLES, PARAMS, pipeline, run_cli, step
from levelflow import load_params, load_plan
from levelflow.backends.cloud_workflows import compiler as cw
from levelflow.model import PlatformParams
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub
from workflows_emulator.utils import WorkflowError


@pytest.fixture
def stub():
    with RunningStub() as server:
        yield server


def params_for(stub):
    return PlatformParams.from_mapping({**load_params(PARAMS).as_mapping(), "pFunctionsBaseUrl": stub.url})


def compile_at(tmp_path, definition, params, name="pipe"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(definition))
    return cw.generate_workflows(load_plan(path, params))


# --- the checker itself: each rule catches what it is for -------------------------------------

BROKEN = """
main:
  params: [args]
  steps:
    - init:
        assign:
          - kept: 1
    - guarded:
        try:
          call: http.get
          args: {url: "http://example.com", auth: {type: OIDC}, timeout: 2000}
          result: answer
        except:
          as: e
          steps:
            - note:
                assign:
                  - made_in_except: ${e.message}
    - loop:
        for:
          value: v
          in: [1, 2]
          steps:
            - inner:
                assign:
                  - made_in_loop: ${v}
    - fan:
        parallel:
          branches:
            - one:
                steps:
                  - write:
                      assign:
                        - kept: 2
            - two:
                steps:
                  - end:
                      assign:
                        - local: 3
    - late:
        return: ${answer + made_in_except + made_in_loop}
"""


def test_the_checker_names_each_broken_rule_with_its_step_path():
    problems = workflow_rules.check({"bad_.yaml": BROKEN})
    text = "\n".join(problems)
    assert "bad_/: workflow id 'bad_' is invalid" in text
    assert "bad_/main/guarded: HTTP time-out 2000 s" in text
    assert "bad_/main/guarded: auth OIDC on a non-https URL (http://example.com)" in text
    assert "bad_/main/late: reads 'answer'" in text  # created by a try that may have raised
    assert "bad_/main/late: reads 'made_in_except'" in text and "bad_/main/late: reads 'made_in_loop'" in text
    assert "bad_/main/fan/one/write: a parallel branch assigns 'kept', declared outside it, without listing it in shared" in text
    assert "bad_/main/fan/two/end: 'end' is a reserved word" in text
    long_expression = {"x.yaml": "main:\n  steps:\n    - s:\n        return: ${" + " + ".join(["1"] * 200) + "}\n"}
    assert "more than 400" in workflow_rules.check(long_expression)[0]


def test_every_example_passes_the_rules():
    for name in ("demo_pipeline_cloud_workflows.json", "retail_daily.json"):
        files = cw.generate_workflows(load_plan(EXAMPLES / name, load_params(PARAMS)))
        assert workflow_rules.check(files) == [], name


# A workflow source needs a `main`; runtime.yaml holds only subworkflows, so the test adds one.
TRIVIAL_MAIN = "main:\n  params: [args]\n  steps:\n    - answer:\n        return: ${args}\n"


def test_the_runtime_source_itself_passes_the_rules_and_the_schema():
    """runtime.yaml as written (every step type's runner, post's sample branch), not only as generated."""
    text = TRIVIAL_MAIN + cw.RUNTIME.read_text(encoding="utf-8")
    assert workflow_rules.check({"runtime.yaml": text}) == []
    assert schema_errors(text) == []


# --- the strict harness: except-block variables end with the block ----------------------------

def test_the_strict_harness_fails_a_read_of_an_except_block_variable():
    source = """
main:
  steps:
    - guarded:
        try:
          steps:
            - boom:
                raise: {message: "boom"}
        except:
          as: e
          steps:
            - note:
                assign:
                  - seen: ${e.message}
    - late:
        return: ${seen}
"""
    assert workflow_rules.check({"strict.yaml": source})  # the checker sees it; the harness must too
    with patched_emulator() as state:
        state.workflows["strict"] = yaml.safe_load(source)
        _mark_except_blocks(state.workflows["strict"])
        with pytest.raises((WorkflowError, SyntaxError), match="seen"):
            state.execute("strict", None)


def _split(tmp_path, stub, monkeypatch, levels):
    whole = next(iter(compile_at(tmp_path, pipeline(levels), params_for(stub)).values()))
    monkeypatch.setattr(cw, "MAX_SOURCE_BYTES", len(whole.encode()) - 1)  # one byte too small: it splits
    return compile_at(tmp_path, pipeline(levels), params_for(stub))


@pytest.mark.parametrize("second_part", ["missing", "raises"])
def test_a_split_pipeline_whose_part_fails_to_run_reports_cleanly(tmp_path, stub, monkeypatch, second_part):
    stub.state.scenario = Scenario.model_validate({"default": {"polls": 1}})
    files = _split(tmp_path, stub, monkeypatch, [[[step("A")]], [[step("B")]], [[step("C")]]])
    names = list(files)
    assert len(names) >= 3 and workflow_rules.check(files) == []
    broken = names[2]
    if second_part == "missing":
        del files[broken]
    else:
        files[broken] = "main:\n  params: [args]\n  steps:\n    - fail:\n        raise: {message: part exploded}\n"
    outcome = run(files)
    report = outcome.error
    assert report["status"] == "failed" and broken.removesuffix(".yaml") in report["failed"]
    statuses = outcome.statuses()
    assert statuses["A"] == "succeeded" and statuses[broken.removesuffix(".yaml")] == "failed"
    assert "C" not in statuses or statuses["C"] == "not_started"


# --- names --------------------------------------------------------------------------------------

def test_workflow_ids_must_end_with_a_letter_or_digit(write_json):
    for definition, where in (
            (pipeline([[[step("A")]]], name="nightly_"), "name"),
            (pipeline([[[{"JOB_ID": "W", "JOB_NAME": "w", "TYPE": "workflows", "workflows_name": "child-"}]]]), "workflows_name")):
        result = run_cli("validate", write_json(definition))
        assert result.returncode == 1 and "ending with a letter or digit" in result.stderr, result.stderr
        assert where in result.stderr and ":" in result.stderr.split("error: ")[1]


# --- bounded error bodies ---------------------------------------------------------------------

def test_many_failures_with_long_bodies_fit_the_variables_limit(tmp_path, stub):
    """200 failing steps, each answering a 10 KB body: the estimate stays under 512 KB, and
    every kept body is cut and says so."""
    long_word = "NOPE" * 2500  # 10,000 characters: the executor's state word
    stub.state.scenario = Scenario.model_validate({"default": {"state": long_word}})
    levels = [[[step(f"F{i}", CONTINUE_IF_FAIL=True) for i in range(200)]]]
    files = compile_at(tmp_path, pipeline(levels), params_for(stub))
    plan = load_plan(tmp_path / "pipe.json", params_for(stub))
    assert len(files) == 1 and cw._variable_bytes(plan, plan.levels, cw._settings(plan)) < cw.MAX_VARIABLE_BYTES
    outcome = run(files)
    steps = outcome.result["steps"]
    assert outcome.result["status"] == "succeeded" and {s["status"] for s in steps} == {"continued"}
    for record in steps:
        assert "characters in all]" in record["error"]["body"] and len(record["error"]["body"]) < cw.ERROR_BODY_CHARS + cw.CUT_MARK_BYTES
        assert len(record["error"]["message"]) < cw.ERROR_MESSAGE_CHARS + cw.CUT_MARK_BYTES
    assert len(json.dumps(outcome.result)) < cw.MAX_VARIABLE_BYTES


# --- random pipelines -------------------------------------------------------------------------

STEP_TYPES = st.sampled_from(["async", "sync", "workflows"])


@st.composite
def pipelines(draw):
    level_count = draw(st.integers(1, 4))
    levels = []
    counter = 0
    for _ in range(level_count):
        threads = draw(st.sampled_from([1, 2, 10, 11, 37, 100]))
        level = []
        for _ in range(threads):
            steps = []
            for _ in range(draw(st.integers(1, 3))):
                counter += 1
                kind = draw(STEP_TYPES)
                extra = {"CONTINUE_IF_FAIL": draw(st.booleans()), "RETRIES": draw(st.integers(0, 2))}
                if kind == "async":
                    steps.append(step(f"S{counter}", **extra))
                elif kind == "sync":
                    steps.append({"JOB_ID": f"S{counter}", "JOB_NAME": f"job_S{counter}", "TYPE": "sync", "FUNCTION_NAME": "fn", **extra})
                else:
                    steps.append({"JOB_ID": f"S{counter}", "JOB_NAME": f"job_S{counter}", "TYPE": "workflows",
                                  "workflows_name": "child", **extra})
            level.append(steps)
        levels.append(level)
    return pipeline(levels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(definition=pipelines(), small=st.booleans())
def test_random_pipelines_pass_the_rules(tmp_path, monkeypatch, definition, small):
    import warnings

    monkeypatch.setattr(cw, "MAX_SOURCE_BYTES", 40_000 if small else 128_000)  # small: split pipelines too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            files = compile_at(tmp_path, definition, load_params(PARAMS))
        except cw.LevelflowError as exc:  # a level too large for one part is a located error, never broken output
            assert "alone needs" in str(exc)
            return
    assert workflow_rules.check(files) == []


# --- a child workflow that outlives its step is cancelled -------------------------------------

SLOW_CHILD = """
main:
  params: [args]
  steps:
    - work:
        call: sys.sleep
        args: {seconds: 3600}
    - finished:
        return: done
"""


def test_a_timed_out_child_execution_is_cancelled_before_a_retry(tmp_path, stub):
    levels = [[[{"JOB_ID": "W", "JOB_NAME": "child_run", "TYPE": "workflows", "workflows_name": "slow-child",
                 "WAIT_TIME_SECONDS": "60", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "5", "RETRIES": "1"}]]]
    files = compile_at(tmp_path, pipeline(levels), params_for(stub))
    outcome = run({**files, "slow-child.yaml": SLOW_CHILD})
    [record] = outcome.error["steps"]
    assert record["status"] == "failed" and record["attempts"] == 2
    assert "timed out" in record["error"]["message"] and "cancelled" in record["error"]["message"]
    started = list(outcome.executions.values())
    assert len(started) == 2 and all(e["cancelled"] for e in started)  # never two running side by side
    assert all(e["argument"]["workflow_name"] == "slow-child" for e in started)


def test_the_local_engine_cancels_a_timed_out_child_execution(tmp_path):
    import levelflow
    from levelflow.backends.local import LocalRunOptions, run_local

    definition = tmp_path / "pipe.json"
    definition.write_text(json.dumps(pipeline([[[{"JOB_ID": "W", "JOB_NAME": "child_run", "TYPE": "workflows",
                                                   "workflows_name": "slow-child", "WAIT_TIME_SECONDS": "1",
                                                   "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "0.05"}]]])))
    with RunningStub(Scenario.model_validate({"jobs": {"slow-child": {"outcome": "never"}}})) as double:
        plan = levelflow.load_plan(definition, params_for(double))
        report = run_local(plan, tmp_path / "runs.db", LocalRunOptions(time_scale=0.01))
        states = {e.name: e.state for e in double.state.executions.values()}
    [step_report] = report["steps"]
    assert step_report["status"] == "failed" and "its execution was cancelled" in step_report["error"]
    assert list(states.values()) == ["CANCELLED"]  # cancelled through the double's Executions API


def test_the_parents_polls_of_long_parts_count_against_the_executed_steps_limit(tmp_path, stub, monkeypatch):
    """The `run` connector polls each part (every 300 s at most, as its polling policy says):
    parts that may run for years could exceed 100,000 steps in the parent; that is warned."""
    year = {"WAIT_TIME_SECONDS": "9000", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "525600"}
    levels = [[[step(f"S{i}", **year)]] for i in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = _split(tmp_path, stub, monkeypatch, levels)
    said = [str(w.message) for w in caught]
    assert any("parent's polls of its parts" in text for text in said), said  # besides the per-execution warnings
    parent = yaml.safe_load(next(iter(files.values())))
    assert len(files) > 2 and '"polling_policy": {"initial_delay": 1, "multiplier": 2, "max_delay": 300}' in json.dumps(parent)
