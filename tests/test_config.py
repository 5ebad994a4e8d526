"""Project settings (levelflow.toml or [tool.levelflow]): found from any directory below them,
beaten by LEVELFLOW_* environment variables, beaten by flags; `levelflow config` says which is which."""
import json
import shutil

from conftest import EXAMPLES, run_cli


def project(tmp_path, settings: str, file: str = "pyproject.toml"):
    """A repository with retail_daily (Cloud Workflows) and the Composer demo in workflow-definitions/,
    the dev parameters beside them, and the settings in `file`."""
    definitions = tmp_path / "workflow-definitions"
    (definitions / "nested").mkdir(parents=True)
    for name in ("retail_daily.json", "demo_pipeline_composer.json"):
        shutil.copy(EXAMPLES / name, definitions / name)
    shutil.copy(EXAMPLES / "platform-parameters-dev.json", definitions / "platform-parameters-dev.json")
    header = '[project]\nname = "pipelines"\n\n[tool.levelflow]\n' if file == "pyproject.toml" else ""
    (tmp_path / file).write_text(header + settings)
    return definitions


def test_settings_give_the_definitions_parameters_step_modes_and_record(tmp_path):
    definitions = project(tmp_path, 'definitions = "workflow-definitions"\nenv = "dev"\nstate = "state/runs.db"\n'
                                    'step_mode = {composer = "functions"}\n')
    below = definitions / "nested"  # found walking up from a directory below
    checked = run_cli("validate", cwd=below)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("ok: ") == 2
    built = run_cli("generate", "--out", tmp_path / "build", cwd=below)
    assert built.returncode == 0, built.stderr
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["demo_pipeline_composer.py", "retail-daily.yaml"]
    assert "'mode': 'functions'," in (tmp_path / "build" / "demo_pipeline_composer.py").read_text()  # the table's mode
    ran = run_cli("run", definitions / "retail_daily.json", "--simulate", "--format", "json", cwd=below)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["state_db"] == str(tmp_path / "state" / "runs.db")
    listed = json.loads(run_cli("runs", "list", "--format", "json", cwd=below).stdout)
    assert [r["pipeline"] for r in listed] == ["retail-daily"]
    shown = json.loads(run_cli("config", "--format", "json", cwd=below).stdout)
    assert shown["file"] == str(tmp_path / "pyproject.toml")
    assert shown["settings"]["env"] == {"value": "dev", "source": "pyproject.toml [tool.levelflow]"}
    assert shown["settings"]["engine"]["source"] == "default"
    assert shown["parameters"] == str(definitions / "platform-parameters-dev.json")


def test_environment_variables_beat_the_file_and_flags_beat_both(tmp_path):
    definitions = project(tmp_path, 'definitions = "workflow-definitions"\nenv = "dev"\nengine = "cloud_workflows"\n')
    demo = definitions / "demo_pipeline_composer.json"
    as_file = run_cli("generate", demo, "--out", tmp_path / "a", cwd=tmp_path)
    assert as_file.returncode == 0 and (tmp_path / "a" / "demo_pipeline_composer.yaml").exists()  # engine from the file
    as_env = run_cli("generate", demo, "--out", tmp_path / "b", "--step-mode", "functions", cwd=tmp_path,
                     env={"LEVELFLOW_ENGINE": "composer"})
    assert as_env.returncode == 0, as_env.stderr
    assert (tmp_path / "b" / "demo_pipeline_composer.py").exists()
    shown = run_cli("config", cwd=tmp_path, env={"LEVELFLOW_ENGINE": "composer"}).stdout
    assert "engine       composer  [LEVELFLOW_ENGINE]" in shown
    as_flag = run_cli("generate", demo, "--out", tmp_path / "c", "--engine", "cloud_workflows", cwd=tmp_path,
                      env={"LEVELFLOW_ENGINE": "composer"})
    assert as_flag.returncode == 0 and (tmp_path / "c" / "demo_pipeline_composer.yaml").exists()
    bad_params = tmp_path / "bad-params.json"
    bad_params.write_text("[]")
    by_variable = run_cli("generate", demo, "--out", tmp_path / "e", cwd=tmp_path, env={"LEVELFLOW_PARAMS": str(bad_params)})
    assert by_variable.returncode == 1 and str(bad_params) in by_variable.stderr  # LEVELFLOW_PARAMS beats the file's env


def test_env_picks_an_environments_parameters(tmp_path):
    definitions = project(tmp_path, 'definitions = "workflow-definitions"\n\n[params]\nstaging = "elsewhere/staging.json"\n',
                          file="levelflow.toml")
    shutil.copy(EXAMPLES / "platform-parameters-dev.json", definitions / "platform-parameters-prod.json")
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(EXAMPLES / "platform-parameters-dev.json", tmp_path / "elsewhere" / "staging.json")
    retail = definitions / "retail_daily.json"
    for env in ("prod", "staging"):
        result = run_cli("generate", retail, "--env", env, "--out", tmp_path / env, cwd=tmp_path)
        assert result.returncode == 0, (env, result.stderr)
    missing = run_cli("generate", retail, "--env", "qa", "--out", tmp_path / "qa", cwd=tmp_path)
    assert missing.returncode == 1 and "platform-parameters-qa.json: no such parameters file" in missing.stderr
    assert not (tmp_path / "qa").exists()
    both = run_cli("generate", retail, "--env", "prod", "--params", definitions / "platform-parameters-dev.json",
                   "--out", tmp_path / "x", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
    neither = run_cli("generate", retail, "--out", tmp_path / "x", cwd=tmp_path)  # no env set: say what to give
    assert neither.returncode == 2 and "--params FILE or --env NAME" in neither.stderr


def test_an_unknown_or_malformed_setting_is_an_error_never_ignored(tmp_path):
    project(tmp_path, 'definitons = "workflow-definitions"\n', file="levelflow.toml")
    typo = run_cli("validate", cwd=tmp_path)
    assert typo.returncode == 1 and "definitons: unknown setting; did you mean definitions?" in typo.stderr
    (tmp_path / "levelflow.toml").write_text('definitions = "workflow-definitions"\nstate = 3\n')
    wrong = run_cli("validate", cwd=tmp_path)
    assert wrong.returncode == 1 and "state: must be a run record file (text), got 3" in wrong.stderr
    (tmp_path / "levelflow.toml").write_text('definitions = "workflow-definitions"\nenv = \n')
    broken = run_cli("validate", cwd=tmp_path)
    assert broken.returncode == 1 and f"{tmp_path / 'levelflow.toml'}:2:" in broken.stderr and "Traceback" not in broken.stderr
    (tmp_path / "levelflow.toml").write_text('engine = "airflow"\n')
    engine = run_cli("validate", EXAMPLES / "retail_daily.json", cwd=tmp_path)
    assert engine.returncode == 1 and "engine: must be one of cloud_workflows, composer, got 'airflow'" in engine.stderr


def every_option(command, path=("levelflow",)):
    """(command path, option) for every option of every levelflow command."""
    import click

    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:
            yield path, param
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_option(sub, (*path, name))


def test_every_option_has_a_variable_named_after_its_command_and_flag():
    from levelflow.cli import main
    from levelflow.config import ENVIRONMENT

    names = {}
    for path, option in every_option(main):
        flag = max((o for o in option.opts if o.startswith("--")), key=len)
        expected = "_".join(["LEVELFLOW", *(p.upper() for p in path[1:]), flag[2:].upper()]).replace("-", "_")
        assert option.envvar == expected, (path, flag)
        names.setdefault(expected, []).append((path, flag))
    assert all(len(uses) == 1 for uses in names.values())
    assert not set(names) & set(ENVIRONMENT.values())  # the settings' own variables mean something else
    assert {"LEVELFLOW_GENERATE_OUT", "LEVELFLOW_RUN_TIME_SCALE", "LEVELFLOW_EXECUTORS_SERVE_PORT", "LEVELFLOW_QUIET"} <= set(names)


def test_an_option_from_the_environment_and_the_flag_winning(tmp_path):
    demo = EXAMPLES / "demo_pipeline_cloud_workflows.json"
    params = EXAMPLES / "platform-parameters-dev.json"
    built = run_cli("generate", demo, "--params", params, env={"LEVELFLOW_GENERATE_OUT": str(tmp_path / "from-env")})
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "from-env" / "demo_pipeline_cloud_workflows.yaml").is_file()
    flagged = run_cli("generate", demo, "--params", params, "--out", tmp_path / "from-flag",
                      env={"LEVELFLOW_GENERATE_OUT": str(tmp_path / "unused")})
    assert flagged.returncode == 0 and (tmp_path / "from-flag").is_dir() and not (tmp_path / "unused").exists()
    as_json = run_cli("validate", demo, env={"LEVELFLOW_VALIDATE_FORMAT": "json", "LEVELFLOW_QUIET": "1"})
    assert json.loads(as_json.stdout)["valid"] is True
    as_text = run_cli("validate", demo, "--format", "text", env={"LEVELFLOW_VALIDATE_FORMAT": "json"})
    assert as_text.stdout.startswith("ok: ")


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path):
    result = run_cli("run", EXAMPLES / "retail_daily.json", "--simulate", env={"LEVELFLOW_RUN_TIME_SCALE": "fast"})
    assert result.returncode == 2
    assert "'fast' is not a valid float range (from the environment variable LEVELFLOW_RUN_TIME_SCALE)" in result.stderr
    assert "Traceback" not in result.stderr
