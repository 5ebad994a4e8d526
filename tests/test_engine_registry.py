"""The engine registry (levelflow.backends): every command learns its engines from it.

A toy third engine, registered here in a few lines and nowhere else, appears in the `--engine`
choices, is accepted by `validate` (which runs its check), reported by `plan` (its figures) and
compiled by `generate`. The built-in engines' `check` makes `validate` catch what `generate`
would reject.
"""
import json

import pytest
from click.testing import CliRunner

from levelflow.backends import Engine, Limit, engine_for, engine_names, register, unregister
from levelflow.errors import Problem
from levelflow.cli import main
from conftest import EXAMPLES, PARAMS, pipeline, run_cli, step

TOY_LIMIT = Limit("steps", "steps in one toy file", 3, "", "https://example.invalid/toy-limits")


def _toy_check(plan, options):
    return [Problem(plan.source, "toy jobs cannot be named 'forbidden'", ("definition", li, "THREADS", ti, "STEPS", si, "JOB_NAME"))
            for li, level in enumerate(plan.levels) for ti, thread in enumerate(level.threads)
            for si, s in enumerate(thread.steps) if s.job_name == "forbidden"]


TOY = Engine(
    name="toy",
    title="Toy",
    step_modes=("plain",),
    generate_files=lambda plan, options: {f"{plan.name}.toy": "".join(f"{s.job_id}\n" for s in plan.executed_steps())},
    check=_toy_check,
    figures=lambda plan, options: [TOY_LIMIT.figure(len(list(plan.executed_steps())))],
    limits=(TOY_LIMIT,),
)


@pytest.fixture
def toy_engine():
    register(TOY)
    yield TOY
    unregister("toy")


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_a_registered_engine_is_offered_validated_planned_and_generated(toy_engine, write_json, tmp_path):
    assert engine_names() == ("cloud_workflows", "composer", "toy")
    for command in ("validate", "generate", "plan", "graph"):
        assert "toy" in invoke(command, "--help").output, command
    definition = write_json(pipeline([[[step("a"), step("b")], [step("c")]]], engine="toy"), "toy_pipe.json")

    checked = invoke("validate", definition)
    assert checked.exit_code == 0 and f"ok: {definition} (toy: 1 levels, 2 threads, 3 steps)" in checked.output

    report = json.loads(invoke("plan", definition, "--format", "json").output)
    assert report["engine"] == "toy"
    assert report["limits"] == [{"name": "steps in one toy file", "value": 3, "limit": 3, "unit": "", "note": "",
                                 "percent": 100.0, "status": "near"}]
    assert "Toy limits:" in invoke("plan", definition).output

    written = invoke("generate", definition, "--params", PARAMS, "--out", tmp_path / "out")
    assert written.exit_code == 0, written.output
    assert (tmp_path / "out" / "toy_pipe.toy").read_text() == "a\nb\nc\n"


def test_validate_runs_the_engine_check_and_locates_its_problems(toy_engine, write_json):
    definition = write_json(pipeline([[[step("a", JOB_NAME="forbidden")]]], engine="toy"), "toy_bad.json")
    result = invoke("validate", definition)
    assert result.exit_code == 1
    assert f"{definition}:" in result.output and "definition[0].THREADS[0].STEPS[0].JOB_NAME: toy jobs cannot be named" in result.output
    line = result.output.split(f"{definition}:")[1].split(":")[0]
    assert line.isdigit() and int(line) > 1  # located on the JOB_NAME line, not the top of the file


def test_an_engine_mode_or_input_it_does_not_have_is_refused(toy_engine, write_json, tmp_path):
    definition = write_json(pipeline([[[step("a")]]], engine="toy"), "toy_pipe.json")
    wrong_mode = invoke("validate", definition, "--step-mode", "operators")
    assert wrong_mode.exit_code == 1 and "--step-mode operators is not a mode of the toy engine; its modes: plain" in wrong_mode.output
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    usage = invoke("generate", definition, "--params", PARAMS, "--out", tmp_path / "out", "--engine", "toy", "--jobs-dir", jobs)
    assert usage.exit_code == 2 and "--jobs-dir is for the cloud_workflows or composer engine only" in usage.output
    assert not (tmp_path / "out").exists()


def test_an_unregistered_engine_is_a_located_error(write_json):
    definition = write_json(pipeline([[[step("a")]]], engine="toy"), "toy_pipe.json")
    result = run_cli("validate", definition)
    assert result.returncode == 1 and "engine: must be one of 'cloud_workflows', 'composer', got \"toy\"" in result.stderr


def test_validate_catches_an_executor_composer_operators_mode_does_not_know(write_json):
    """The pre-commit hook runs `validate`: it must reject what `generate` would."""
    data = pipeline([[[step("a", FUNCTION_ID_NAME="my-own-executor")]]], engine="composer")
    definition = write_json(data, "composer_pipe.json")
    checked = run_cli("validate", definition)
    assert checked.returncode == 1
    assert "definition[0].THREADS[0].STEPS[0].FUNCTION_ID_NAME: unknown executor 'my-own-executor'" in checked.stderr
    generated = run_cli("generate", definition, "--params", PARAMS, "-o", definition.with_suffix(".py"))
    assert generated.returncode == 1 and "unknown executor 'my-own-executor'" in generated.stderr
    # functions mode calls any executor function: valid there
    assert run_cli("validate", definition, "--step-mode", "functions").returncode == 0


def test_validate_catches_a_step_whose_polling_cannot_fit_a_workflows_execution(write_json):
    data = pipeline([[[step("a", WAIT_TIME_SECONDS="1", ASYNC_TIMEOUT_LOOP_IN_MINUTES="1440")]]])
    result = run_cli("validate", write_json(data))
    assert result.returncode == 1 and "set WAIT_TIME_SECONDS to at least" in result.stderr


def test_the_built_in_engines_declare_their_limits_with_sources():
    for name in ("cloud_workflows", "composer"):
        engine = engine_for(name)
        assert engine.limits and all(limit.source.startswith("https://") and limit.respected for limit in engine.limits), name
    assert engine_for("cloud_workflows").limit("branches") == 10


def test_every_example_validates_for_its_engine():
    result = run_cli("validate", EXAMPLES)
    assert result.returncode == 0, result.stderr


def test_the_docs_limits_table_is_the_registry_s():
    import subprocess
    import sys

    from conftest import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "engine_docs.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
