"""The Composer backend without Airflow: generated text, data literal, errors, job parameters.

What the DAGs do in real Airflow is tested in test_airflow_real.py.
"""
from __future__ import annotations

import ast
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import levelflow
from levelflow.backends import GenerateOptions
from levelflow.backends.composer.dag_source import BUILDERS
from levelflow.executors import CATALOGUE

from conftest import EXAMPLES, PARAMS, pipeline, run_cli, step

HOSTILE = '"""\nimport os; os.system("echo pwned")  # {{ 7 * 7 }} \' \\'
OPERATORS = GenerateOptions(step_mode="operators")


def composer_step(job_id, executor="dataflow-flextemplate-job-executor", **extra):
    body = {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "async", "COMPOSER_STEP": executor}
    body.update(extra)
    return body


def generate(write_json, tmp_path, data, options=OPERATORS, name="pipe.json"):
    path = write_json(data, name)
    out = tmp_path / "out"
    written = levelflow.generate([path], PARAMS, out, options=options)
    assert len(written) == 1
    return written[0].read_text()


def pipeline_literal(text: str) -> ast.Assign:
    module = ast.parse(text)
    (node,) = [n for n in module.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PIPELINE"]
    return node


def code_outside_literal(text: str) -> str:
    """The module's AST with the PIPELINE value blanked: everything levelflow wrote as code."""
    module = ast.parse(text)
    for node in module.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PIPELINE":
            node.value = ast.Constant(None)
    return ast.dump(module)


def test_dag_file_is_fixed_code_plus_a_pure_data_literal(write_json, tmp_path):
    text = generate(write_json, tmp_path, pipeline([[[composer_step("a"), composer_step("b")]]], engine="composer"))
    data = ast.literal_eval(pipeline_literal(text).value)  # data only: no names, calls or operators
    assert data["dag_id"] == "pipe" and data["mode"] == "operators"
    steps = data["levels"][0]["threads"][0]["steps"]
    assert [s["job_name"] for s in steps] == ["job_a", "job_b"]
    assert steps[0]["job_params_object"] == "dataflow-flextemplate-job-executor/job_a.json"
    # the job file formats once per executor, not once per step
    assert data["job_formats"] == {"dataflow-flextemplate-job-executor": CATALOGUE["dataflow-flextemplate-job-executor"].formats_data()}
    assert "job_formats" not in steps[0]
    assert "DAG" in text and "airflow" in text
    assert "schedule_interval" not in text and "provide_context" not in text


def test_user_text_never_reaches_code_positions(write_json, tmp_path):
    """Two pipelines of one shape but different texts differ only inside the data literal."""
    def shaped(description, prop):
        return pipeline([[[composer_step("a", STEP_PROPERTIES={"note": prop}, CONTINUE_IF_FAIL=True),
                           composer_step("b", executor="dataform-tag-executor")]]],
                        engine="composer", description=description, name="same")
    plain = generate(write_json, tmp_path, shaped("daily load", "x"), name="one.json")
    hostile = generate(write_json, tmp_path, shaped(HOSTILE, HOSTILE), name="two.json")
    assert code_outside_literal(plain) == code_outside_literal(hostile)
    module = ast.parse(hostile)
    (literal,) = [n for n in module.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PIPELINE"]
    inside = {id(n) for n in ast.walk(literal.value)}
    outside = [n.value for n in ast.walk(module)
               if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in inside]
    assert outside  # the fixed code has its own strings (imports, templates, messages)
    assert not any("pwned" in text or "7 * 7" in text for text in outside)
    data = ast.literal_eval(literal.value)
    assert HOSTILE in data["doc_md"]
    assert data["levels"][0]["threads"][0]["steps"][0]["step_properties"] == {"note": HOSTILE}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=1, max_size=40), min_size=3, max_size=3))
def test_any_text_stays_in_the_data_literal(texts):
    """Whatever the description, step properties and job parameters hold, the code is the same."""
    from levelflow.backends.composer.compiler import generate_files
    from levelflow.model import pipeline_from

    def text_for(description, prop):
        definition = pipeline([[[composer_step("a", STEP_PROPERTIES={"k": prop, prop: [prop]})]]],
                              engine="composer", description=description, name="same")
        plan = levelflow.build_plan(pipeline_from(definition), levelflow.load_params(PARAMS))
        return generate_files(plan, OPERATORS)["same.py"]

    baseline = code_outside_literal(text_for("x", "y"))
    generated = text_for(texts[0], texts[1] + texts[2])
    assert code_outside_literal(generated) == baseline
    data = ast.literal_eval(pipeline_literal(generated).value)
    assert data["levels"][0]["threads"][0]["steps"][0]["step_properties"]["k"] == texts[1] + texts[2]


@pytest.mark.parametrize("key, value", [
    ("JOB_NAME", 'x"); import os #'), ("JOB_ID", "a b"), ("JOB_NAME", "{{ 7 * 7 }}"),
])
def test_hostile_names_are_rejected_with_a_located_message(write_json, key, value):
    path = write_json(pipeline([[[composer_step("a", **{key: value})]]], engine="composer"))
    result = run_cli("generate", path, "--params", PARAMS, "--out", path.parent / "out")
    assert result.returncode == 1
    assert f"definition[0].THREADS[0].STEPS[0].{key}" in result.stderr and "Traceback" not in result.stderr
    assert not (path.parent / "out").exists()


def test_deterministic_output(write_json, tmp_path):
    data = pipeline([[[composer_step("a"), composer_step("b", CONTINUE_IF_FAIL="True")], [composer_step("c")]],
                     [[composer_step("d", executor="bq-saved-query-executor")]]], engine="composer",
                    description="é ✓", schedule="0 3 * * *")
    first = generate(write_json, tmp_path, data)
    second = generate(write_json, tmp_path, json.loads(json.dumps(data)))
    assert first == second


def test_unknown_executor_is_a_located_error_naming_the_known_ones(write_json):
    data = pipeline([[[composer_step("a"), composer_step("b", executor="spark-magic")]],
                     [[step("c", FUNCTION_ID_NAME="my-custom-fn")]]], engine="composer")
    path = write_json(data)
    result = run_cli("generate", path, "--params", PARAMS, "--out", path.parent / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2  # every problem of the file at once
    assert lines[0].startswith(f"error: {path}:") and "definition[0].THREADS[0].STEPS[1].COMPOSER_STEP" in lines[0]
    assert "definition[1].THREADS[0].STEPS[0].FUNCTION_ID_NAME" in lines[1] and "'my-custom-fn'" in lines[1]
    for name in ("dataform-tag-executor", "dataflow-flextemplate-job-executor",
                 "dataproc-serverless-job-executor", "bq-saved-query-executor"):
        assert name in lines[0]


def test_functions_mode_accepts_any_executor_and_resolves_urls(write_json, tmp_path):
    data = pipeline([[[step("a", FUNCTION_ID_NAME="my-custom-fn", FUNCTION_STATUS_NAME="my-status-fn"),
                       {"JOB_ID": "s", "JOB_NAME": "job_s", "TYPE": "sync", "FUNCTION_NAME": "notifier"}]]],
                    engine="composer")
    text = generate(write_json, tmp_path, data, GenerateOptions(step_mode="functions"))
    data = ast.literal_eval(pipeline_literal(text).value)
    first, sync = data["levels"][0]["threads"][0]["steps"]
    base = "https://us-central1-my-orchestration-dev.cloudfunctions.net"
    assert data["intermediate_url"] == f"{base}/orch-framework-intermediate"
    assert (first["function_url"], first["status_url"]) == (f"{base}/my-custom-fn", f"{base}/my-status-fn")
    assert first["timeout_seconds"] == 300 and first["wait_seconds"] == 10  # 5 minutes, polled every 10 s
    assert sync["function_url"] == f"{base}/notifier" and sync["timeout_seconds"] == 1800
    assert first["job_params"] is None and data["job_formats"] == {}  # no step has a job_params task
    assert "DataflowStartFlexTemplateOperator" not in text  # no operator imports needed


def test_next_jumps_over_steps(write_json, tmp_path):
    data = pipeline([[[composer_step("a", NEXT="c"), composer_step("b"), composer_step("c")]]], engine="composer")
    text = generate(write_json, tmp_path, data)
    steps = ast.literal_eval(pipeline_literal(text).value)["levels"][0]["threads"][0]["steps"]
    assert [s["job_name"] for s in steps] == ["job_a", "job_c"]


def test_jobs_dir_embeds_job_parameters(write_json, tmp_path):
    jobs = tmp_path / "jobs" / "dataflow-flextemplate-job-executor"
    jobs.mkdir(parents=True)
    params = {"project_id": "p", "location": "europe-west1", "body": {"launchParameter": {"jobName": "{{ x }}"}}}
    (jobs / "job_a.json").write_text(json.dumps(params))
    text = generate(write_json, tmp_path, pipeline([[[composer_step("a")]]], engine="composer"),
                    GenerateOptions(jobs_dir=tmp_path / "jobs"))
    (first,) = ast.literal_eval(pipeline_literal(text).value)["levels"][0]["threads"][0]["steps"]
    assert first["job_params"] == params


def test_jobs_dir_problems_name_the_job_file(write_json, tmp_path):
    jobs = tmp_path / "jobs" / "dataflow-flextemplate-job-executor"
    jobs.mkdir(parents=True)
    (jobs / "job_a.json").write_text('{"project_id": "p", "body": {}}')  # operator-native format, recognised by body
    (jobs / "job_b.json").write_text("[1, 2")
    path = write_json(pipeline([[[composer_step("a"), composer_step("b"), composer_step("c")]]], engine="composer"))
    result = run_cli("generate", path, "--params", PARAMS, "--out", tmp_path / "out", "--jobs-dir", tmp_path / "jobs")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{jobs / 'job_a.json'}: missing job parameters location (an operator-native" in result.stderr
    assert f"{jobs / 'job_b.json'}: cannot read job parameters" in result.stderr
    assert f"{jobs / 'job_c.json'}: job parameter file not found in --jobs-dir" in result.stderr


def test_cli_generates_the_composer_example(tmp_path):
    from conftest import EXAMPLES

    result = run_cli("generate", EXAMPLES / "demo_pipeline_composer.json", "--params", PARAMS, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "demo_pipeline_composer.py").read_text()
    assert "DataprocCreateBatchOperator" in text and "DataformWorkflowInvocationStateSensor" in text
    compile(text, "demo_pipeline_composer.py", "exec")


def test_catalogue_entries_are_complete():
    """Each entry names a builder module that defines build_<module>(step, make) and, for an
    executor with job files, registers a request function under the executor's name."""
    for name, entry in CATALOGUE.items():
        module = ast.parse((BUILDERS / f"{entry.composer}.py").read_text())
        functions = {node.name: node for node in module.body if isinstance(node, ast.FunctionDef)}
        assert [a.arg for a in functions[f"build_{entry.composer}"].args.args] == ["step", "make"], name
        registered = [node.targets[0].slice.value for node in module.body if isinstance(node, ast.Assign)
                      and isinstance(node.targets[0], ast.Subscript) and getattr(node.targets[0].value, "id", "") == "JOB_REQUESTS"]
        assert registered == ([name] if entry.needs_job_params else []), name
        assert (entry.request is not None) == entry.needs_job_params, name


def test_jobs_dir_means_nothing_outside_operators_mode_so_it_is_refused(tmp_path):
    """No option is silently ignored: --jobs-dir only embeds job files in Composer operators mode
    and Cloud Workflows native mode."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    out = tmp_path / "out"
    on_workflows = run_cli("generate", EXAMPLES / "retail_daily.json", "--params", PARAMS, "--out", out, "--jobs-dir", jobs)
    assert on_workflows.returncode == 1 and "--jobs-dir is for native mode only, not functions mode" in on_workflows.stderr
    in_functions = run_cli("generate", EXAMPLES / "demo_pipeline_composer.json", "--params", PARAMS, "--out", out,
                           "--jobs-dir", jobs, "--step-mode", "functions")
    assert in_functions.returncode == 2 and "not --step-mode functions" in in_functions.stderr
    assert not out.exists()


def test_the_literal_is_compact_sorted_and_one_line_per_step(write_json, tmp_path):
    from levelflow.backends.composer.compiler import literal

    data = pipeline([[[composer_step("a", STEP_PROPERTIES={"z": 1, "a": "x\ny"}), composer_step("b")], [composer_step("c")]]],
                    engine="composer")
    text = generate(write_json, tmp_path, data)
    node = pipeline_literal(text)
    lines = ast.get_source_segment(text, node).splitlines()
    steps = [line for line in lines if line.lstrip().startswith("{'call_timeout_seconds'")]
    assert len(steps) == 3 and all("'job_name': 'job_" in line for line in steps)
    assert ast.literal_eval("\n".join(lines)[len("PIPELINE = "):]) == ast.literal_eval(node.value)
    assert "{'a': 'x\\ny', 'z': 1}" in text  # keys sorted, line breaks escaped
    for bad in (float("nan"), float("inf"), (1, 2), {1: "x"}, object()):
        with pytest.raises(ValueError):
            literal({"levels": [], "x": bad})


def test_a_job_file_with_nan_is_refused(write_json, tmp_path):
    jobs = tmp_path / "jobs" / "dataflow-flextemplate-job-executor"
    jobs.mkdir(parents=True)
    (jobs / "job_a.json").write_text('{"project_id": "p", "location": "l", "body": {"x": NaN}}')
    path = write_json(pipeline([[[composer_step("a")]]], engine="composer"))
    result = run_cli("generate", path, "--params", PARAMS, "--out", tmp_path / "out", "--jobs-dir", tmp_path / "jobs")
    assert result.returncode == 1 and f"{jobs / 'job_a.json'}: cannot read job parameters: NaN is not a JSON number" in result.stderr
