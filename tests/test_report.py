"""`levelflow plan`: counts, critical path and platform-limit figures."""
import json

import pytest
import yaml

import levelflow
from levelflow import report
from levelflow.backends import composer
from levelflow.backends.cloud_workflows import figures as cw_figures
from levelflow.backends.cloud_workflows import compiler as cloud_workflows
from conftest import EXAMPLES, PARAMS, pipeline, run_cli, step

RETAIL = EXAMPLES / "retail_daily.json"


def plan_of(data, tmp_path, params=None, name="pipe.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return levelflow.load_plan(path, levelflow.load_params(params) if params else None), path


def figure(built, name):
    return next(f for f in built["limits"] if f["name"] == name)


def test_counts_match_the_definition_file():
    raw = json.loads(RETAIL.read_text())
    built = report.build_report(levelflow.load_plan(RETAIL))
    threads = [t for level in raw["definition"] for t in level["THREADS"]]
    steps = [s for t in threads for s in t["STEPS"]]
    executors = {s[k] for s in steps for k in ("FUNCTION_ID_NAME", "FUNCTION_STATUS_NAME", "FUNCTION_NAME") if k in s}
    counts = built["counts"]
    assert (counts["levels"], counts["threads"], counts["steps"]) == (len(raw["definition"]), len(threads), len(steps))
    assert counts["executor_names"] == sorted(executors)
    assert counts["workflows_called"] == sorted({s["workflows_name"] for s in steps if "workflows_name" in s})


def test_critical_path_takes_the_longest_thread_of_each_level_and_follows_next(tmp_path):
    data = pipeline([
        [[step("A1", ESTIMATED_MINUTES=5), step("A2", ESTIMATED_MINUTES=10)],
         [step("B1", ESTIMATED_MINUTES="30")]],
        [[{"JOB_ID": "S1", "JOB_NAME": "sync_one", "TYPE": "sync", "FUNCTION_NAME": "f", "TIMEOUT_SECONDS": 600},
          step("C1", ASYNC_TIMEOUT_LOOP_IN_MINUTES=20, NEXT="C3"),
          step("C2", ESTIMATED_MINUTES=1000),
          step("C3", ESTIMATED_MINUTES=0.5)]],
    ])
    plan, _ = plan_of(data, tmp_path)
    path = report.critical_path(plan)
    assert [s["job_id"] for s in path["steps"]] == ["B1", "S1", "C1", "C3"]  # C2 is skipped by NEXT
    assert [s["basis"] for s in path["steps"]] == ["estimate", "time-out", "time-out", "estimate"]
    assert path["minutes"] == 30 + 600 / 60 + 20 + 0.5
    assert [level["thread_id"] for level in path["levels"]] == ["2", "1"]


def test_equal_threads_keep_the_first(tmp_path):
    plan, _ = plan_of(pipeline([[[step("A", ESTIMATED_MINUTES=3)], [step("B", ESTIMATED_MINUTES=3)]]]), tmp_path)
    assert [s["job_id"] for s in report.critical_path(plan)["steps"]] == ["A"]


def test_worst_case_executed_steps_count_every_poll_and_retry(tmp_path):
    data = pipeline([[[step("A", WAIT_TIME_SECONDS=10, ASYNC_TIMEOUT_LOOP_IN_MINUTES=5, RETRIES=2, NEXT="C"),
                       step("B", ASYNC_TIMEOUT_LOOP_IN_MINUTES=500),
                       {"JOB_ID": "C", "JOB_NAME": "c", "TYPE": "sync", "FUNCTION_NAME": "f"}]]])
    plan, _ = plan_of(data, tmp_path)
    call, poll = cloud_workflows.STEPS_PER_CALL, cloud_workflows.STEPS_PER_POLL
    polls = 5 * 60 // 10
    assert cw_figures.executed_steps(plan) == 3 * (call + polls * poll) + call  # B is skipped by NEXT


def test_a_pipeline_that_polls_too_much_is_shown_over_the_limit(tmp_path):
    # one-second polls for a week: far more than 100,000 executed steps
    plan, _ = plan_of(pipeline([[[step("A", WAIT_TIME_SECONDS=1, ASYNC_TIMEOUT_LOOP_IN_MINUTES=7 * 24 * 60)]]]), tmp_path)
    steps = figure(report.build_report(plan), "steps executed per execution (worst case)")
    assert steps["value"] > 7 * 24 * 3600 and steps["status"] == "over"


def test_shape_of_a_generated_source_is_measured():
    source = yaml.safe_load("""
main:
  steps:
    - init:
        assign: [{a: 1}, {b: 2}, {c: 3}]
    - levels:
        parallel:
          branches:
            - one:
                steps:
                  - inner:
                      parallel:
                        branches:
                          - x: {steps: [{call_it: {call: helper}}]}
                          - y: {steps: [{done: {return: 1}}]}
            - two: {steps: [{s: {call: sys.sleep, args: {seconds: 1}}}]}
            - three: {steps: [{t: {switch: [{condition: true, next: end}, {condition: false, next: end}]}}]}
helper:
  steps:
    - deeper: {call: leaf}
leaf:
  steps:
    - done: {return: 0}
""")
    assert cw_figures.source_shape(source) == cw_figures.SourceShape(branches=3, parallel_depth=2, call_depth=3, switch=2, assign=3)


def test_parallel_nesting_is_counted_through_subworkflow_calls():
    source = yaml.safe_load("""
main:
  steps:
    - outer:
        parallel:
          branches:
            - a: {steps: [{go: {call: run_thread}}]}
            - b: {steps: [{go: {call: run_thread}}]}
run_thread:
  steps:
    - inner:
        parallel:
          branches:
            - c: {steps: [{poll: {call: poll_job}}]}
poll_job:
  steps:
    - again: {call: poll_job}
    - post:
        try: {call: http.post, args: {url: x}}
        retry: {predicate: "${transient}", max_retries: 3}
transient:
  params: [e]
  steps:
    - answer: {return: true}
""")
    shape = cw_figures.source_shape(source)
    # main > run_thread > poll_job > transient (a retry predicate runs as a call); recursion counted once
    assert (shape.parallel_depth, shape.call_depth, shape.branches) == (2, 4, 2)


def test_a_step_named_like_a_keyword_is_not_taken_for_one():
    source = {"main": {"steps": [{"call": {"call": "helper"}}, {"switch": {"return": 1}}]}, "helper": {"steps": []}}
    assert cw_figures.source_shape(source) == cw_figures.SourceShape(call_depth=2)


def test_a_plain_step_list_is_a_source_too():
    assert cw_figures.source_shape([{"only": {"return": 1}}]) == cw_figures.SourceShape()


@pytest.mark.parametrize("threads", [1, 12, 100])
def test_source_size_equals_the_generated_file(tmp_path, threads):
    data = pipeline([[[step(f"J{t}_{s}") for s in range(2)] for t in range(threads)], [[step("END")]]])
    definition = tmp_path / "pipe.json"
    definition.write_text(json.dumps(data))
    out = tmp_path / "build"
    generated = run_cli("generate", definition, "--params", PARAMS, "--out", out)
    assert generated.returncode == 0, generated.stderr
    result = run_cli("plan", definition, "--params", PARAMS, "--format", "json")
    assert result.returncode == 0, result.stderr
    size = figure(json.loads(result.stdout), "source size (largest file)")
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert size["value"] == max(files.values())
    largest = max(files, key=lambda name: (files[name], name))
    assert size["note"].startswith(largest)
    branches = figure(json.loads(result.stdout), "branches in one parallel step")
    assert branches["value"] <= 10 and figure(json.loads(result.stdout), "parallel nesting depth")["value"] <= 2


def test_composer_figures_follow_the_task_group_naming(tmp_path):
    long_name = "n" * 128
    data = pipeline([[[step("A", JOB_NAME=long_name, NEXT="S"), step("skipped"), step("S")], [step("B")]], [[step("C")]]],
                    engine="composer")
    data["definition"][0]["THREADS"][0]["THREAD_ID"] = "t" * 128
    plan, _ = plan_of(data, tmp_path)
    built = report.build_report(plan)
    longest = figure(built, "task_id length (longest)")
    # the step's tasks are <step>.<task> in its thread's group; job_params is its longest (operators mode)
    assert longest["note"] == composer.task_id("1", "t" * 128, long_name, "job_params")
    assert longest["note"] == f"level_1.thread_{'t' * 51}-{sha8('t' * 128)}.{'n' * 51}-{sha8(long_name)}.job_params"
    assert longest["value"] == len(longest["note"]) and longest["status"] == "ok"
    assert figure(built, "steps that become tasks")["value"] == 4  # "skipped" never runs
    assert figure(built, "task groups (levels and threads)")["value"] == 2 + 3
    assert figure(built, "threads in one level (largest)")["value"] == 2


def test_composer_longest_task_id_of_a_functions_only_pipeline(tmp_path):
    """Executors that only functions mode runs: the step's call and its continue gate."""
    data = pipeline([[[step("A", FUNCTION_ID_NAME="my-own", CONTINUE_IF_FAIL=True), step("B", FUNCTION_ID_NAME="x")]]],
                    engine="composer")
    plan, _ = plan_of(data, tmp_path)
    longest = figure(report.build_report(plan), "task_id length (longest)")
    assert longest["note"] == composer.task_id("1", "1", "job_A", "continue") == "level_1.thread_1.job_A.continue"


def sha8(text):
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_percent_and_status_thresholds():
    assert report.Figure("x", 79, 100).status == "ok"
    assert report.Figure("x", 80, 100).status == "near"
    assert report.Figure("x", 101, 100).status == "over"
    assert report.Figure("x", None, 100).status == "n/a"
    assert report.Figure("x", 5, None).status == "info"


def test_plan_command_text_and_json(tmp_path):
    text = run_cli("plan", RETAIL)
    assert text.returncode == 0, text.stderr
    built = report.build_report(levelflow.load_plan(RETAIL))
    for f in built["limits"]:
        assert f["name"] in text.stdout
    assert f"Critical path: {built['critical_path']['minutes']:g} min" in text.stdout
    as_json = run_cli("plan", RETAIL, "--format", "json", "--engine", "composer")
    assert json.loads(as_json.stdout)["engine"] == "composer"
    assert "task_id length (longest)" in as_json.stdout


def test_plan_of_an_invalid_definition_exits_1(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(pipeline([[[step("J1", NEXT="J1")]]])))
    result = run_cli("plan", bad)
    assert result.returncode == 1
    assert "NEXT" in result.stderr and "Traceback" not in result.stderr


def test_polls_are_rounded_up(tmp_path):
    plan, _ = plan_of(pipeline([[[step("A", WAIT_TIME_SECONDS=7, ASYNC_TIMEOUT_LOOP_IN_MINUTES=1)]]]), tmp_path)
    call, poll = cloud_workflows.STEPS_PER_CALL, cloud_workflows.STEPS_PER_POLL
    assert cw_figures.executed_steps(plan) == call + 9 * poll  # 60 s / 7 s: the 9th poll sees the time-out


def test_plan_and_generate_count_the_same_executed_steps_for_every_example():
    """One figure: `levelflow plan` shows what `generate` checks against the 100,000-step limit
    (every step a thread runs, NEXT followed; every poll until its time-out; every retry)."""
    import math

    from levelflow.backends.cloud_workflows import compiler as cw

    for name in ("demo_pipeline_cloud_workflows.json", "retail_daily.json", "demo_pipeline_composer.json"):
        result = run_cli("plan", EXAMPLES / name, "--params", PARAMS, "--engine", "cloud_workflows", "--format", "json")
        assert result.returncode == 0, result.stderr
        shown = {f["name"]: f["value"] for f in json.loads(result.stdout)["limits"]}["steps executed per execution (worst case)"]
        plan = levelflow.load_plan(EXAMPLES / name, levelflow.load_params(PARAMS))
        expected = 0
        for level in plan.levels:
            for thread in level.threads:
                for ran in thread.executed_steps():
                    polls = math.ceil(ran.timeout_minutes * 60 / ran.wait_seconds) if ran.type in ("async", "workflows") else 0
                    expected += (cw.STEPS_PER_CALL + polls * cw.STEPS_PER_POLL) * (1 + ran.retries)
        assert shown == expected == cw.total_executed_steps(plan.levels), name


def test_plan_takes_directories_as_validate_does(tmp_path):
    """`plan DIR` reports every definition in it (text: one after the other; JSON: a list), as
    `validate DIR` checks them; one definition file gives its report alone."""
    folder = tmp_path / "defs"
    folder.mkdir()
    for name in ("one", "two"):
        (folder / f"{name}.json").write_text(json.dumps(pipeline([[[step("A")]]])))
    text = run_cli("plan", folder)
    assert text.returncode == 0 and text.stdout.index("one (cloud_workflows, functions mode)") < text.stdout.index("two (cloud_workflows, functions mode)")
    listed = json.loads(run_cli("plan", folder, "--format", "json").stdout)
    assert [report["pipeline"] for report in listed] == ["one", "two"]
    assert json.loads(run_cli("plan", folder / "one.json", "--format", "json").stdout)["pipeline"] == "one"
    assert run_cli("validate", folder).returncode == 0
