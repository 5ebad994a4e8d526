"""The CI/CD integration: the pre-commit hook and the GitHub Actions / Cloud Build examples.

The examples are checked against their platforms' published schemas (vendored by
check-jsonschema), their levelflow command lines against the real CLI, and their scripts are
run with bash as the platforms run them: levelflow for real, `gcloud` (which cannot reach
Google Cloud here) replaced by a program that records how it was called."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pre_commit.clientlib import load_manifest

from levelflow_commands import EXAMPLES, PARAMS, ROOT, example_definitions, output_name, search_path, unknown_flags

GITHUB = ROOT / "ci-examples" / "github-actions.yaml"
CLOUDBUILD = ROOT / "ci-examples" / "cloudbuild.yaml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
SCHEMAS = {GITHUB: "vendor.github-workflows", CLOUDBUILD: "vendor.cloudbuild"}


def check_schema(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True)


def github_scripts() -> dict[str, str]:
    """`run` scripts of the GitHub workflow by step id, in job order."""
    jobs = yaml.safe_load(GITHUB.read_text())["jobs"]
    return {f"{job}.{step['id']}": step["run"] for job, body in jobs.items() for step in body["steps"] if "run" in step}


def cloudbuild_scripts() -> dict[str, str]:
    return {step["id"]: step["script"] for step in yaml.safe_load(CLOUDBUILD.read_text())["steps"]}


def levelflow_lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip().startswith("levelflow ")]


# --- the files are what their platforms accept -----------------------------------------------

@pytest.mark.parametrize("path", [GITHUB, CLOUDBUILD], ids=["github-actions", "cloudbuild"])
def test_ci_example_matches_its_platform_schema(path):
    result = check_schema(path, SCHEMAS[path])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path, breakage", [(GITHUB, ("runs-on: ubuntu-latest", "runs-on: [1, {}]")),
                                            (CLOUDBUILD, ("automapSubstitutions: true", "automapSubstitutions: maybe"))],
                         ids=["github-actions", "cloudbuild"])
def test_schema_check_rejects_a_broken_example(tmp_path, path, breakage):
    broken = tmp_path / path.name
    broken.write_text(path.read_text().replace(*breakage))
    assert broken.read_text() != path.read_text()
    assert check_schema(broken, SCHEMAS[path]).returncode == 1


def test_precommit_hook_manifest_is_valid_and_runs_levelflow_validate():
    (hook,) = load_manifest(str(HOOKS))
    assert hook["id"] == "levelflow-validate"
    assert hook["entry"] == "levelflow validate" and unknown_flags(hook["entry"]) == []
    assert hook["language"] == "python" and hook["pass_filenames"] is True


@pytest.mark.parametrize("path, selected", [
    ("workflow-definitions/daily.json", True),
    ("workflow-definitions/daily.yaml", True),
    ("pipelines/workflow-definitions/hourly.yml", True),
    ("workflow-definitions/platform-parameters-dev.json", False),
    ("workflow-definitions/nested/daily.json", False),
    ("workflow-definitions/.hidden.json", False),
    ("workflow-definitions/notes.md", False),
    ("src/daily.json", False),
])
def test_precommit_hook_selects_definition_files_only(path, selected):
    (hook,) = load_manifest(str(HOOKS))
    # pre-commit matches `files` and `exclude` with re.search on the repository-relative path.
    chosen = bool(re.search(hook["files"], path)) and not re.search(hook["exclude"], path)
    assert chosen is selected


def test_precommit_hook_entry_passes_good_files_and_fails_bad_ones(tmp_path):
    (hook,) = load_manifest(str(HOOKS))
    good = [str(path) for paths in example_definitions().values() for path in paths]
    bad = tmp_path / "bad.json"
    bad.write_text('{"engine": "cloud_workflows", "definition": [{"LEVEL_ID": "1", "THREADS": []}]}')
    entry = [sys.executable, "-m", "levelflow", *shlex.split(hook["entry"])[1:]]
    assert subprocess.run([*entry, *good], capture_output=True).returncode == 0
    failed = subprocess.run([*entry, *good, str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and f"{bad}:" in failed.stderr


# --- their levelflow commands are real ---------------------------------------------------------

@pytest.mark.parametrize("scripts", [github_scripts, cloudbuild_scripts], ids=["github-actions", "cloudbuild"])
def test_ci_levelflow_commands_are_real_and_cover_validate_and_generate(scripts):
    lines = [line for script in scripts().values() for line in levelflow_lines(script)]
    assert {shlex.split(line)[1] for line in lines} == {"validate", "generate"}
    for line in lines:
        assert unknown_flags(line) == [], line


def test_github_scripts_take_settings_from_env_not_expressions():
    # ${{ }} in a script is pasted in as shell text (script injection); env variables are not.
    for step, script in github_scripts().items():
        assert "${{" not in script, step


# --- their scripts, run -------------------------------------------------------------------------

def fake_tools(tmp_path: Path) -> Path:
    """`gcloud` that records its arguments; `pip` that does nothing (levelflow is installed here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      "with open(os.environ['GCLOUD_LOG'], 'a') as log:\n    log.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    (bin_dir / "pip").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


class CiRun:
    """Runs CI scripts with bash -eo pipefail (GitHub's default shell) in a scratch workspace."""

    def __init__(self, tmp_path: Path, settings: dict[str, str]):
        self.log = tmp_path / "gcloud.log"
        self.workspace = tmp_path / "workspace"
        self.workspace.mkdir()
        self.env = {**settings, "PATH": search_path(fake_tools(tmp_path)), "GCLOUD_LOG": str(self.log)}

    def __call__(self, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=self.workspace,
                              env=self.env, capture_output=True, text=True, timeout=300)

    def ok(self, script: str) -> None:
        result = self(script)
        assert result.returncode == 0, result.stdout + result.stderr

    def gcloud_calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def github_settings(out_dir: Path, bucket: str) -> dict[str, str]:
    env = yaml.safe_load(GITHUB.read_text())["env"]
    return {**env, "DEFINITIONS_DIR": str(EXAMPLES), "PARAMS_FILE": str(PARAMS), "OUT_DIR": str(out_dir),
            "COMPOSER_BUCKET": bucket}


def cloudbuild_settings(out_dir: Path, bucket: str) -> dict[str, str]:
    substitutions = yaml.safe_load(CLOUDBUILD.read_text())["substitutions"]
    return {**substitutions, "PROJECT_ID": "my-orchestration-dev", "_DEFINITIONS_DIR": str(EXAMPLES),
            "_PARAMS_FILE": str(PARAMS), "_OUT_DIR": str(out_dir), "_COMPOSER_BUCKET": bucket}


PLATFORMS = {
    "github-actions": (github_settings, github_scripts, ["deploy.deploy-workflows", "deploy.upload-dags"], "REGION"),
    "cloudbuild": (cloudbuild_settings, cloudbuild_scripts, ["deploy-workflows", "upload-dags"], "_REGION"),
}


def expected_calls(out_dir: Path, settings: dict[str, str], region_key: str) -> list[list[str]]:
    workflows = [["workflows", "deploy", path.stem, "--source", str(path), "--location", settings[region_key],
                  "--project", "my-orchestration-dev"] for path in sorted(out_dir.glob("*.yaml"))]
    dags = sorted(out_dir.glob("*.py"))
    return workflows + ([["storage", "cp", *map(str, dags), "gs://my-composer-bucket/dags/"]] if dags else [])


@pytest.mark.parametrize("platform", PLATFORMS)
def test_deploy_steps_deploy_every_generated_workflow_and_upload_the_dags(tmp_path, platform):
    settings_of, scripts_of, deploy_steps, region_key = PLATFORMS[platform]
    out_dir = tmp_path / "generated"
    out_dir.mkdir()
    # What a split pipeline and a composer definition generate.
    for name in ("orders.yaml", "orders-part-1.yaml", "orders-part-2.yaml", "daily.py", "hourly.py"):
        (out_dir / name).write_text("# generated\n")
    settings = settings_of(out_dir, "my-composer-bucket")
    run = CiRun(tmp_path, settings)
    scripts = scripts_of()
    for step in deploy_steps:
        run.ok(scripts[step])
    assert run.gcloud_calls() == expected_calls(out_dir, settings, region_key)
    assert len(run.gcloud_calls()) == 4


@pytest.mark.parametrize("platform", PLATFORMS)
def test_deploy_steps_do_nothing_without_generated_files_and_refuse_dags_without_bucket(tmp_path, platform):
    settings_of, scripts_of, deploy_steps, _ = PLATFORMS[platform]
    out_dir = tmp_path / "generated"
    out_dir.mkdir()
    run = CiRun(tmp_path, settings_of(out_dir, ""))
    for step in deploy_steps:
        run.ok(scripts_of()[step])
    assert run.gcloud_calls() == []
    (out_dir / "daily.py").write_text("# generated\n")
    refused = run(scripts_of()[deploy_steps[-1]])
    assert refused.returncode == 1 and "COMPOSER_BUCKET is empty" in refused.stderr
    assert run.gcloud_calls() == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_ci_pipeline_generates_and_deploys_the_examples(tmp_path, platform):
    settings_of, scripts_of, _, region_key = PLATFORMS[platform]
    out_dir = tmp_path / "generated"
    settings = settings_of(out_dir, "my-composer-bucket")
    run = CiRun(tmp_path, settings)
    for script in scripts_of().values():
        run.ok(script)
    definitions = example_definitions()
    for definition in definitions["cloud_workflows"]:
        assert (out_dir / f"{output_name(definition)}.yaml").exists()
    for definition in definitions["composer"]:
        assert (out_dir / f"{output_name(definition)}.py").exists()
    calls = run.gcloud_calls()
    assert calls == expected_calls(out_dir, settings, region_key)
    assert len(calls) >= len(definitions["cloud_workflows"]) + 1
