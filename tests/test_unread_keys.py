"""No key is silently ignored: a key that the engine, step mode and step TYPE do not read is a
located error, or a warning for a key of AEF definition files (levelflow.keys; docs/definition.md,
"Keys each engine and mode reads")."""
import shutil

import pytest
import yaml

from conftest import EXAMPLES, run_cli
from levelflow import keys
from levelflow.api import check_definition
from levelflow.errors import LevelflowError

PARAMS = EXAMPLES / "platform-parameters-dev.json"
STEP_PATH = "definition[0].THREADS[0].STEPS[0]"
BASE = {  # a step of each TYPE with what it needs
    "async": {"FUNCTION_ID_NAME": "dataform-tag-executor"},
    "sync": {"FUNCTION_NAME": "reference-data-refresher"},
    "workflows": {"workflows_name": "child"},
}
VALUES = {"WAIT_TIME_SECONDS": "10", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "5", "TIMEOUT_SECONDS": "60",
          "READ_INPUT_FROM": "ENV", "workflows_name": "child"}  # any other key here names an executor


def definition(engine, step_type, **extra):
    step = {"JOB_ID": "J1", "JOB_NAME": "job_one", "TYPE": step_type, **BASE[step_type], **extra}
    return {"engine": engine, "definition": [{"LEVEL_ID": "1", "THREADS": [{"THREAD_ID": "1", "STEPS": [step]}]}]}


def with_key(entry, step_type):
    """A definition whose step has the entry's key (and a key it yields to), for its first place."""
    engine, mode = (entry.modes or keys.MODES)[0].split(":")
    extra = {entry.key: VALUES.get(entry.key, "dataform-tag-executor")}
    if entry.instead:
        extra.setdefault(entry.instead[0], "dataform-tag-executor")
    return definition(engine, step_type, **extra), engine, mode


def line_of(path, key):
    """The line of the (only) `"key":` of a JSON file written one key a line."""
    lines = path.read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.strip().startswith(f'"{key}":'))


ERROR_CASES = [(entry, step_type) for entry in keys.CATALOGUE for step_type in entry.types
               if not keys.is_warning(entry, step_type)]
WARNING_CASES = [(entry, "async") for entry in keys.CATALOGUE if "async" in entry.types and keys.is_warning(entry, "async")]


def case_id(case):
    entry, step_type = case
    return f"{entry.key}-{step_type}-{(entry.modes or ['any'])[0]}"


@pytest.mark.parametrize("case", ERROR_CASES, ids=case_id)
def test_an_unread_key_is_a_located_error(write_json, case):
    entry, step_type = case
    data, engine, mode = with_key(entry, step_type)
    path = write_json(data)
    result = run_cli("validate", path, "--step-mode", mode)
    assert result.returncode == 1
    expected = f"error: {path}:{line_of(path, entry.key)}:"
    found = [line for line in result.stderr.splitlines() if f"{STEP_PATH}.{entry.key}:" in line]
    assert len(found) == 1 and found[0].startswith(expected), result.stderr
    article = "an" if step_type == "async" else "a"
    assert f"on {article} {step_type} step for the {engine} engine in {mode} mode: {entry.why}; {entry.fix}" in found[0]


@pytest.mark.parametrize("case", WARNING_CASES, ids=case_id)
def test_an_unread_key_of_aef_files_warns_and_strict_fails(write_json, case):
    entry, step_type = case
    data, engine, mode = with_key(entry, step_type)
    path = write_json(data)
    result = run_cli("validate", path, "--step-mode", mode)
    assert result.returncode == 0, result.stderr
    assert f"warning: {path}:{line_of(path, entry.key)}:" in result.stderr
    assert f"{STEP_PATH}.{entry.key}: {entry.key}" in result.stderr and "it is ignored" in result.stderr
    assert run_cli("validate", "--strict", path, "--step-mode", mode).returncode == 1


def test_every_place_of_every_entry_is_reported_through_the_api(write_json):
    """Each entry, on each of its TYPEs, in each of its engines and modes (not only the first)."""
    for entry in keys.CATALOGUE:
        for place in entry.modes or keys.MODES:
            engine, mode = place.split(":")
            for step_type in entry.types:
                if mode == "native" and step_type == "sync":
                    continue  # native mode refuses sync steps (and reports that first)
                extra = {entry.key: VALUES.get(entry.key, "dataform-tag-executor")}
                extra.update({key: "dataform-tag-executor" for key in entry.instead[:1]})
                path = write_json(definition(engine, step_type, **extra))
                try:
                    _, warnings = check_definition(path, step_mode=mode)
                    found = warnings
                    assert keys.is_warning(entry, step_type), (entry, place, step_type)
                except LevelflowError as exc:
                    found = exc.problems
                    assert not keys.is_warning(entry, step_type), (entry, place, step_type, exc)
                mine = [p for p in found if p.path[-1] == entry.key]
                assert len(mine) == 1 and mine[0].line == line_of(path, entry.key), (entry, place, step_type, found)


def test_generate_writes_nothing_for_an_unread_key(write_json, tmp_path):
    path = write_json(definition("cloud_workflows", "sync", WAIT_TIME_SECONDS="10"))
    out = tmp_path / "out"
    result = run_cli("generate", path, "--params", PARAMS, "--out", out)
    assert result.returncode == 1 and not out.exists()
    assert f"{path}:{line_of(path, 'WAIT_TIME_SECONDS')}:" in result.stderr
    assert f"{STEP_PATH}.WAIT_TIME_SECONDS: WAIT_TIME_SECONDS means nothing on a sync step" in result.stderr


def test_the_key_a_step_yields_to_is_named(write_json):
    path = write_json(definition("composer", "async", COMPOSER_STEP="dataproc-serverless-job-executor"))
    result = run_cli("validate", path)
    assert result.returncode == 0
    assert "FUNCTION_ID_NAME given with COMPOSER_STEP means nothing on an async step for the composer engine in operators mode" \
        in result.stderr
    result = run_cli("validate", path, "--step-mode", "functions")
    assert "COMPOSER_STEP given with FUNCTION_ID_NAME or FUNCTION_NAME means nothing" in result.stderr


def test_a_null_key_is_not_given(write_json):
    path = write_json(definition("cloud_workflows", "sync", WAIT_TIME_SECONDS=None, ASYNC_TIMEOUT_LOOP_IN_MINUTES=None))
    result = run_cli("validate", "--strict", path)
    assert result.returncode == 0, result.stderr


def test_what_the_engine_reads_is_not_reported(write_json):
    """A sync step's WAIT_TIME_SECONDS is its operator's poll interval in Composer operators mode."""
    path = write_json(definition("composer", "sync", FUNCTION_NAME="dataform-tag-executor", WAIT_TIME_SECONDS="10",
                                 TIMEOUT_SECONDS="60"))
    result = run_cli("validate", path)
    assert result.returncode == 0 and "means nothing" not in result.stderr, result.stderr


@pytest.mark.parametrize("mode", keys.MODES)
def test_aef_files_validate_and_generate_unchanged_in_every_engine_and_mode(tmp_path, mode):
    """The examples copied from the original generator (its demo definitions) never fail on a key."""
    engine, step_mode = mode.split(":")
    for name in ("demo_pipeline_cloud_workflows.json", "demo_pipeline_composer.json"):
        path = tmp_path / name
        shutil.copy(EXAMPLES / name, path)
        result = run_cli("validate", path, "--engine", engine, "--step-mode", step_mode)
        assert result.returncode == 0, result.stderr
        result = run_cli("generate", path, "--params", PARAMS, "--engine", engine, "--step-mode", step_mode,
                         "--out", tmp_path / f"out-{mode}")
        assert result.returncode == 0, result.stderr


def test_an_aef_cloud_workflows_file_for_composer_operators_warns_and_strict_writes_nothing(tmp_path):
    source = EXAMPLES / "demo_pipeline_cloud_workflows.json"
    result = run_cli("generate", source, "--params", PARAMS, "--engine", "composer", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("FUNCTION_STATUS_NAME: FUNCTION_STATUS_NAME means nothing on an async step") == 3
    result = run_cli("generate", source, "--params", PARAMS, "--engine", "composer", "--strict", "--out", tmp_path / "strict")
    assert result.returncode == 1 and not (tmp_path / "strict").exists()


def test_the_cloud_workflows_engine_writes_the_description(tmp_path, write_json):
    """description is read by both engines: Cloud Workflows shows it as comments with the source."""
    data = definition("cloud_workflows", "async", FUNCTION_STATUS_NAME=None)
    data["description"] = "Loads sales.\n\nThen a report\x07, \u2028done."
    out = tmp_path / "out"
    assert run_cli("generate", write_json(data), "--params", PARAMS, "--out", out).returncode == 0
    text = (out / "pipe.yaml").read_text()
    assert "\n# Loads sales.\n#\n# Then a report ,\n# done.\nmain:" in text
    assert "main" in yaml.safe_load(text)
    data["description"] = "x" * 100_000  # a long one is cut: it must not make the workflow split
    assert run_cli("generate", write_json(data), "--params", PARAMS, "--out", out).returncode == 0
    assert f"\n# {'x' * 2000}... [cut: 100,000 characters in all]\nmain:" in (out / "pipe.yaml").read_text()


def test_the_catalogue_names_known_keys_types_and_modes():
    """A misspelt key, TYPE or mode in the catalogue would never be reported."""
    from levelflow.backends import engines
    from levelflow.model import KEYS, STEP_TYPES, Step, known_keys

    assert keys.MODES == tuple(f"{e.name}:{mode}" for e in engines().values() for mode in e.step_modes)
    step_keys = set(known_keys(Step))
    for entry in keys.CATALOGUE:
        assert entry.key in step_keys and set(entry.instead) <= step_keys, entry
        assert set(entry.types) <= set(STEP_TYPES) and set(entry.modes or ()) <= set(keys.MODES), entry
    assert keys.AEF_ASYNC_KEYS <= step_keys
    table = keys.table()
    assert [row.split("|")[1].strip(" `") for row in table.splitlines()[2:]] == [key.name for key in KEYS[Step]]
    assert "| `READ_INPUT_FROM` | none | none | none | none |" in table
