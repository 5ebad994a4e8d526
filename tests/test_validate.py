"""The catalogue of bad inputs: each gives a located message, exit 1 and no traceback."""
import json
from pathlib import Path

import pytest

import levelflow
from conftest import PARAMS, EXAMPLES, pipeline, run_cli, step

GOOD_STEP = step("J1")


def one_step(**changes):
    body = dict(GOOD_STEP)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return pipeline([[[body]]])


STEP = "definition[0].THREADS[0].STEPS[0]"

CATALOGUE = [
    # (document, expected JSON path, expected words)
    (one_step(WAIT_TIME_SECONDS="abc"), f"{STEP}.WAIT_TIME_SECONDS", 'must be a whole number of seconds >= 1, got "abc"'),
    (one_step(WAIT_TIME_SECONDS="0"), f"{STEP}.WAIT_TIME_SECONDS", ">= 1"),
    (one_step(WAIT_TIME_SECONDS=2.5), f"{STEP}.WAIT_TIME_SECONDS", "whole number"),
    (one_step(ASYNC_TIMEOUT_LOOP_IN_MINUTES="0"), f"{STEP}.ASYNC_TIMEOUT_LOOP_IN_MINUTES", "> 0"),
    (one_step(ASYNC_TIMEOUT_LOOP_IN_MINUTES=-3), f"{STEP}.ASYNC_TIMEOUT_LOOP_IN_MINUTES", "> 0"),
    (one_step(TIMEOUT_SECONDS="1801"), f"{STEP}.TIMEOUT_SECONDS", "1 to 1800"),
    (one_step(TIMEOUT_SECONDS=0), f"{STEP}.TIMEOUT_SECONDS", "1 to 1800"),
    (one_step(JOB_NAME="bad name!"), f"{STEP}.JOB_NAME", "GCS object name"),
    (one_step(JOB_NAME="x'; import os #"), f"{STEP}.JOB_NAME", "letters, digits, '_' or '-'"),
    (one_step(JOB_NAME=12), f"{STEP}.JOB_NAME", "must be a string"),
    (one_step(TYPE="asynch"), f"{STEP}.TYPE", "must be one of 'async', 'sync', 'workflows'"),
    (one_step(TYPE=None), STEP, "missing required key TYPE"),
    (one_step(JOB_ID=None), STEP, "missing required key JOB_ID"),
    (one_step(FUNCTION_ID_NAME=None), STEP, "an async step needs FUNCTION_ID_NAME"),
    (one_step(TYPE="sync"), STEP, "a sync step needs FUNCTION_NAME"),
    (one_step(TYPE="workflows"), STEP, "a workflows step needs workflows_name"),
    (one_step(FUNCTON_ID_NAME="x"), f"{STEP}.FUNCTON_ID_NAME", "did you mean FUNCTION_ID_NAME?"),
    (one_step(wait_time_seconds="3"), f"{STEP}.wait_time_seconds", "did you mean WAIT_TIME_SECONDS?"),
    (one_step(STEP_PROPERTIES="[1, 2]"), f"{STEP}.STEP_PROPERTIES", "must be a JSON object"),
    (one_step(STEP_PROPERTIES="{not json"), f"{STEP}.STEP_PROPERTIES", "the string is not JSON"),
    (one_step(STEP_PROPERTIES=7), f"{STEP}.STEP_PROPERTIES", "must be a JSON object"),
    (one_step(CONTINUE_IF_FAIL="maybe"), f"{STEP}.CONTINUE_IF_FAIL", "must be true or false"),
    (one_step(NEXT="J9"), f"{STEP}.NEXT", "must name the JOB_ID of a step of the same thread"),
    (one_step(NEXT="J1"), f"{STEP}.NEXT", "must name a later step"),
    (one_step(FUNCTION_ID_NAME="bad/name"), f"{STEP}.FUNCTION_ID_NAME", "executor (function) name"),
    (pipeline([[[step("A"), step("B", NEXT="A")]]]), "definition[0].THREADS[0].STEPS[1].NEXT", "later step"),
    (pipeline([[[step("A")], [step("B", NEXT="A")]]]), "definition[0].THREADS[1].STEPS[0].NEXT", "same thread"),
    (pipeline([[[step("A")]], [[step("A")]]]), "definition[1].THREADS[0].STEPS[0].JOB_ID", "duplicate JOB_ID 'A'"),
    (pipeline([[[step("A"), dict(step("B"), JOB_NAME="job_A")]]]), "definition[0].THREADS[0].STEPS[1].JOB_NAME", "duplicate JOB_NAME 'job_A'"),
    ({"engine": "cloud_workflows", "definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": [step("A")]}, {"THREAD_ID": "1", "STEPS": [step("B")]}]}]},
     "definition[0].THREADS[1].THREAD_ID", "duplicate THREAD_ID '1' in this level"),
    ({"engine": "cloud_workflows", "definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": [step("A")]}]}, {"LEVEL_ID": 1, "THREADS": [{"THREAD_ID": "1", "STEPS": [step("B")]}]}]},
     "definition[1].LEVEL_ID", "duplicate LEVEL_ID '1'"),
    ({"engine": "cloud_workflows", "definition": []}, "definition", "must not be empty"),
    ({"engine": "cloud_workflows", "definition": [{"LEVEL_ID": "1", "THREADS": []}]}, "definition[0].THREADS", "must not be empty"),
    ({"engine": "cloud_workflows", "definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": []}]}]}, "definition[0].THREADS[0].STEPS", "must not be empty"),
    ({"engine": "cloud_workflows", "definition": [{"LEVEL_ID": "1", "THREADS": {"THREAD_ID": "1"}}]}, "definition[0].THREADS", "must be a list"),
    ({"engine": "cloud_workflows", "definition": ["level"]}, "definition[0]", "must be an object"),
    ({"engine": "cloud_flows", "definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": [step("A")]}]}]}, "engine", "must be one of 'cloud_workflows', 'composer'"),
    ({"definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": [step("A")]}]}]}, None, "missing required key engine"),
    ({"engine": "composer", "definitions": []}, "definitions", "did you mean definition?"),
    (dict(pipeline([[[step("A")]]]), schedule="every day"), "schedule", "cron"),
    (dict(pipeline([[[step("A")]]]), name="has space"), "name", "workflow id"),
    (["not", "an", "object"], None, "must be an object with keys 'engine' and 'definition'"),
]


@pytest.mark.parametrize("document, path, words", CATALOGUE, ids=[w[:40] for _, _, w in CATALOGUE])
def test_catalogue_of_bad_definitions(write_json, document, path, words):
    file = write_json(document)
    with pytest.raises(levelflow.LevelflowError) as caught:
        levelflow.load_pipeline(file)
    matching = [p for p in caught.value.problems if words in p.message]
    assert matching, [str(p) for p in caught.value.problems]
    problem = matching[0]
    assert problem.file == str(file)
    assert problem.line is not None and problem.column is not None
    if path is not None:
        assert str(problem).split(": ")[1] == path, str(problem)
    result = run_cli("validate", file)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert words in result.stderr


def test_location_points_at_the_offending_value(tmp_path):
    text = '{\n  "engine": "cloud_workflows",\n  "definition": [\n    {"LEVEL_ID": "1", "THREADS": [\n      {"THREAD_ID": "1", "STEPS": [\n        {"JOB_ID": "J1", "JOB_NAME": "a", "TYPE": "async", "FUNCTION_ID_NAME": "f",\n         "WAIT_TIME_SECONDS": "abc"}]}]}]}\n'
    file = tmp_path / "p.json"
    file.write_text(text)
    result = run_cli("validate", file)
    assert result.returncode == 1
    assert f"{file}:7:31: definition[0].THREADS[0].STEPS[0].WAIT_TIME_SECONDS: must be a whole number of seconds >= 1, got \"abc\"" in result.stderr


def test_all_problems_of_a_file_are_reported_together(write_json):
    document = pipeline([[[step("A", WAIT_TIME_SECONDS="x"), step("A", TIMEOUT_SECONDS="99999")]]])
    with pytest.raises(levelflow.LevelflowError) as caught:
        levelflow.load_pipeline(write_json(document))
    messages = " | ".join(p.message for p in caught.value.problems)
    assert "whole number of seconds >= 1" in messages
    assert "1 to 1800" in messages
    assert "duplicate JOB_ID" in messages


MALFORMED = [
    ("p.json", '{"engine": "composer",\n  "definition": [1, 2,]\n}', 2, 23, "invalid JSON"),
    ("p.json", '{"engine": "composer"\n "definition": []}', 2, 2, "expected ',' or '}'"),
    ("p.json", '{"a": 1, "a": 2}', 1, 10, "duplicate key 'a'"),
    ("p.json", "", 1, 1, "unexpected end of file"),
    ("p.json", '{"a": "unterminated}', 1, 7, "invalid JSON"),
    ("p.yaml", "engine: composer\ndefinition:\n  - LEVEL_ID: 1\n    THREADS: [\n", 5, 1, "invalid YAML"),
    ("p.yml", "engine: composer\n  definition: x\n", 2, 13, "invalid YAML"),
    ("p.yaml", "a: 1\na: 2\n", 2, 1, "duplicate key 'a'"),
]


@pytest.mark.parametrize("name, text, line, column, words", MALFORMED)
def test_malformed_files_give_line_and_column(tmp_path, name, text, line, column, words):
    file = tmp_path / name
    file.write_text(text)
    result = run_cli("validate", file)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{file}:{line}:{column}:" in result.stderr, result.stderr
    assert words in result.stderr


def test_yaml_definition_is_accepted_and_located(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text(
        "engine: cloud_workflows\ndefinition:\n  - LEVEL_ID: 1\n    THREADS:\n      - THREAD_ID: 1\n"
        "        STEPS:\n          - JOB_ID: J1\n            JOB_NAME: load\n            TYPE: async\n"
        "            FUNCTION_ID_NAME: dataform-tag-executor\n            WAIT_TIME_SECONDS: -4\n"
    )
    result = run_cli("validate", file)
    assert result.returncode == 1
    assert f"{file}:11:32: definition[0].THREADS[0].STEPS[0].WAIT_TIME_SECONDS" in result.stderr
    file.write_text(file.read_text().replace("-4", "15"))
    assert levelflow.load_pipeline(file).definition[0].threads[0].steps[0].wait_time_seconds == 15


def test_missing_file_and_empty_directory(tmp_path):
    result = run_cli("validate", tmp_path / "nope.json")
    assert result.returncode == 1 and "file not found" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "platform-parameters-dev.json").write_text("[]")
    result = run_cli("validate", tmp_path)
    assert result.returncode == 1 and "no definition files" in result.stderr


def test_directories_are_searched_recursively_with_levelflowignore(tmp_path):
    """git's rules: patterns relative to their file, deeper files add to those above, ! takes back."""
    definition = json.dumps(pipeline([[[step("1")]]]))
    files = ["a.json", "teams/sales/b.yaml", "teams/sales/c-draft.yaml", "teams/sales/ready-draft.yaml",
             "teams/jobs/dataform-tag-executor/job_1.json", "teams/ops/d.yml", "teams/ops/old/e.json",
             ".hidden/f.json", "teams/.g.json", "platform-parameters-dev.json", "notes.txt"]
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x" if name.endswith(".txt") else definition)  # JSON is YAML too
    (tmp_path / "platform-parameters-dev.json").write_text("[]")
    (tmp_path / ".levelflowignore").write_text("# job parameter files are not pipelines\njobs/\n*-draft.yaml\n")
    (tmp_path / "teams" / "sales" / ".levelflowignore").write_text("!ready-draft.yaml\n")
    (tmp_path / "teams" / "ops" / ".levelflowignore").write_text("/old\n")
    result = run_cli("validate", tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    found = [Path(f["file"]).relative_to(tmp_path).as_posix() for f in json.loads(result.stdout)["files"]]
    assert found == ["a.json", "teams/ops/d.yml", "teams/sales/b.yaml", "teams/sales/ready-draft.yaml"]
    below = [p.relative_to(tmp_path).as_posix() for p in levelflow.find_definitions([tmp_path / "teams"])]
    assert below == ["teams/jobs/dataform-tag-executor/job_1.json", *found[1:3], "teams/sales/c-draft.yaml", found[3]]  # only ignore files at or below the directory given
    (tmp_path / ".levelflowignore").write_text("*\n")
    result = run_cli("validate", tmp_path)
    assert result.returncode == 1 and "no definition files" in result.stderr and ".levelflowignore" in result.stderr


def test_usage_error_exits_2():
    assert run_cli("validate").returncode == 2
    assert run_cli("validate", "--format", "xml", "x.json").returncode == 2


def test_examples_are_valid():
    result = run_cli("validate", EXAMPLES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok: ") == len([p for p in EXAMPLES.iterdir() if p.suffix == ".json" and not p.name.startswith("platform-")])


def test_json_format_report(write_json):
    bad = write_json(one_step(WAIT_TIME_SECONDS="abc"))
    result = run_cli("validate", "--format", "json", bad, EXAMPLES / "demo_pipeline_composer.json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["files"][0]["problems"][0]["path"] == f"{STEP}.WAIT_TIME_SECONDS"
    assert report["files"][0]["problems"][0]["line"] > 0
    assert report["files"][1] == {"file": str(EXAMPLES / "demo_pipeline_composer.json"), "valid": True, "engine": "composer",
                                  "name": "demo_pipeline_composer", "schedule": None, "notify": None,
                                  "levels": 2, "threads": 3, "steps": 3, "warnings": []}


def test_examples_warn_about_nothing_even_strictly():
    result = run_cli("validate", "--strict", EXAMPLES)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_warnings_for_definitions_the_deployed_functions_would_fail(write_json, tmp_path):
    """A job name holding "error"/"exception" (the intermediate fails every answer holding
    them) and a sync step calling an executor that starts jobs: warnings; --strict: exit 1,
    and `generate --strict` writes nothing."""
    definition = {"engine": "cloud_workflows", "name": "nightly", "definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": [
        {"JOB_ID": "A", "JOB_NAME": "load_Exceptions", "TYPE": "async", "FUNCTION_ID_NAME": "dataform-tag-executor"},
        {"JOB_ID": "B", "JOB_NAME": "refresh", "TYPE": "sync", "FUNCTION_NAME": "bq-saved-query-executor"}]}]}]}
    path = write_json(definition)
    result = run_cli("validate", path)
    assert result.returncode == 0 and result.stdout.startswith("ok: ")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert f"{path}:" in warnings[0] and "STEPS[0].JOB_NAME" in warnings[0] and "'load_Exceptions' contains 'error' or 'exception'" in warnings[0]
    assert "STEPS[1].FUNCTION_NAME" in warnings[1] and "declare the step TYPE async" in warnings[1]
    strict = run_cli("validate", "--strict", path)
    assert strict.returncode == 1 and "--strict treats warnings as errors" in strict.stderr
    report = json.loads(run_cli("validate", "--strict", "--format", "json", path).stdout)
    assert report["valid"] is False and len(report["files"][0]["warnings"]) == 2
    out = tmp_path / "out"
    generated = run_cli("generate", "--strict", path, "--params", PARAMS, "--out", out)
    assert generated.returncode == 1 and "--strict makes it an error" in generated.stderr and not out.exists()
    lenient = run_cli("generate", path, "--params", PARAMS, "--out", out)
    assert lenient.returncode == 0 and lenient.stderr.count("warning: ") == 2 and (out / "nightly.yaml").exists()
    for command in (["plan", path], ["run", path, "--params", PARAMS, "--simulate", "--strict", "--state", tmp_path / "r.db"]):
        if "run" not in command:
            command.append("--strict")
        result = run_cli(*command)
        assert result.returncode == 1 and "--strict treats warnings as errors" in result.stderr, (command, result.stderr)


def test_established_files_load_unchanged():
    pipeline_ = levelflow.load_pipeline(EXAMPLES / "demo_pipeline_cloud_workflows.json")
    first = pipeline_.definition[0].threads[0].steps[0]
    assert first.wait_time_seconds == 30 and first.async_timeout_minutes == 12
    composer = levelflow.load_pipeline(EXAMPLES / "demo_pipeline_composer.json")
    assert composer.definition[0].threads[0].steps[0].composer_step == "dataproc-serverless-job-executor"


def test_continue_if_fail_and_step_properties_forms(write_json):
    document = pipeline([[[step("A", CONTINUE_IF_FAIL="True", STEP_PROPERTIES='{"x": 1}'),
                          step("B", CONTINUE_IF_FAIL=False, STEP_PROPERTIES={"y": [2]})]]])
    steps = levelflow.load_pipeline(write_json(document)).definition[0].threads[0].steps
    assert (steps[0].continue_if_fail, steps[0].step_properties) == (True, {"x": 1})
    assert (steps[1].continue_if_fail, steps[1].step_properties) == (False, {"y": [2]})


def test_thread_ids_may_repeat_across_levels(write_json):
    # Established files number threads from 1 in every level.
    levelflow.load_pipeline(write_json(pipeline([[[step("A")]], [[step("B")]]])))


def test_file_stem_must_make_a_name(write_json):
    file = write_json(pipeline([[[step("A")]]]), name="my pipeline.json")
    with pytest.raises(levelflow.LevelflowError, match="add a \"name\" key"):
        levelflow.load_pipeline(file)


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    from levelflow.writer import write_atomic

    target = tmp_path / "out" / "file.txt"
    write_atomic(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]
