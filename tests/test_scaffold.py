"""`levelflow init`: a repository of pipelines that validates and generates with no edits."""
import json
import re
import subprocess
import sys

import pytest
import yaml
from pre_commit.clientlib import load_config, load_manifest

import levelflow
from levelflow.scaffold import SCAFFOLD_ENGINES, scaffold_files
from conftest import ROOT, run_cli

EXPECTED = {
    "workflow-definitions/example_pipeline.json", "workflow-definitions/platform-parameters-dev.json",
    ".github/workflows/levelflow.yaml", ".pre-commit-config.yaml", ".gitignore", "README.md",
}


def files_under(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("engine", ["cloud_workflows", "composer"])
def test_init_writes_a_repository_that_validates(tmp_path, engine):
    repo = tmp_path / "pipelines"
    result = run_cli("init", repo, "--engine", engine)
    assert result.returncode == 0, result.stderr
    assert files_under(repo) == EXPECTED
    checked = run_cli("validate", "workflow-definitions/", cwd=repo)
    assert checked.returncode == 0, checked.stderr
    assert f"ok: workflow-definitions/example_pipeline.json ({engine}:" in checked.stdout
    assert run_cli("plan", "workflow-definitions/example_pipeline.json", "--params", "workflow-definitions/platform-parameters-dev.json", cwd=repo).returncode == 0
    assert run_cli("graph", "workflow-definitions/example_pipeline.json", "-o", "example.svg", cwd=repo).returncode == 0


@pytest.mark.parametrize("engine", ["cloud_workflows", "composer"])
def test_init_output_generates_with_the_ci_command(tmp_path, engine):
    repo = tmp_path / "pipelines"
    assert run_cli("init", repo, "--engine", engine).returncode == 0
    result = run_cli("generate", "workflow-definitions/", "--params", "workflow-definitions/platform-parameters-dev.json", "--out", "build/", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert any((repo / "build").iterdir())


@pytest.mark.parametrize("engine", SCAFFOLD_ENGINES)
def test_init_writes_only_keys_its_engine_reads(engine):
    """Every key of the example is read by its engine, in each of the engine's step modes: the
    step keys by levelflow.keys (what that catalogue leaves read), the others by the model."""
    from levelflow.backends import engine_for
    from levelflow.keys import read_keys
    from levelflow.model import Pipeline, Schedule, known_keys

    example = json.loads(scaffold_files(engine)["workflow-definitions/example_pipeline.json"])
    assert example["engine"] == engine and set(example) <= set(known_keys(Pipeline)) - {"$schema"}
    schedule = example.get("schedule")
    assert isinstance(schedule, str) or set(schedule) <= set(known_keys(Schedule))
    steps = [step for level in example["definition"] for thread in level["THREADS"] for step in thread["STEPS"]]
    for mode in engine_for(engine).step_modes:
        for step in steps:
            assert read_keys(f"{engine}:{mode}", step["TYPE"], step) == set(step), (mode, step)


def test_init_reports_its_files_as_json(tmp_path):
    result = run_cli("init", tmp_path / "repo", "--format", "json")
    assert result.returncode == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    written = sorted(str(p) for p in (tmp_path / "repo").rglob("*") if p.is_file())
    assert sorted(report["files"]) == written and len(written) >= 6
    assert report["engine"] == "cloud_workflows" and report["next"].endswith("levelflow validate workflow-definitions/")


def test_ci_workflow_validates_then_generates():
    workflow = yaml.safe_load(scaffold_files()[".github/workflows/levelflow.yaml"])
    runs = [s["run"] for s in workflow["jobs"]["validate-and-generate"]["steps"] if "run" in s]
    assert runs[0].startswith("pip install levelflow")
    assert runs[1:] == ["levelflow validate workflow-definitions/",
                        "levelflow generate workflow-definitions/ --params workflow-definitions/platform-parameters-dev.json --out build/"]
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as true


def test_ci_workflow_is_a_valid_github_actions_workflow(tmp_path):
    assert run_cli("init", tmp_path / "repo").returncode == 0
    workflow = tmp_path / "repo" / ".github" / "workflows" / "levelflow.yaml"
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                              str(workflow)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_pre_commit_config_uses_the_levelflow_hook(tmp_path):
    assert run_cli("init", tmp_path / "repo").returncode == 0
    (repo,) = load_config(str(tmp_path / "repo" / ".pre-commit-config.yaml"))["repos"]
    assert [hook["id"] for hook in repo["hooks"]] == ["levelflow-validate"]
    assert repo["rev"] == f"v{levelflow.__version__}"


def test_hook_repo_names_where_pre_commit_fetches_the_hook(tmp_path):
    url = "https://git.example.com/data/levelflow.git#fork"
    assert run_cli("init", tmp_path / "repo", "--hook-repo", url).returncode == 0
    (repo,) = load_config(str(tmp_path / "repo" / ".pre-commit-config.yaml"))["repos"]
    assert repo["repo"] == url


def test_the_hook_selects_the_example_definition_and_not_the_parameters():
    (hook,) = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))
    assert hook["id"] == "levelflow-validate"
    selected = {name for name in scaffold_files()
                if re.search(hook["files"], name) and not re.search(hook["exclude"], name)}
    assert selected == {"workflow-definitions/example_pipeline.json"}


def test_existing_files_stop_init_and_nothing_is_written(tmp_path):
    repo = tmp_path / "pipelines"
    repo.mkdir()
    (repo / "README.md").write_text("mine")
    result = run_cli("init", repo)
    assert result.returncode == 1
    assert "README.md: already exists" in result.stderr and "--force" in result.stderr
    assert files_under(repo) == {"README.md"} and (repo / "README.md").read_text() == "mine"
    forced = run_cli("init", repo, "--force")
    assert forced.returncode == 0, forced.stderr
    assert files_under(repo) == EXPECTED and (repo / "README.md").read_text() != "mine"


def test_init_is_deterministic(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli("init", first).returncode == 0 and run_cli("init", second).returncode == 0
    for name in EXPECTED:
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_init_into_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = run_cli("init", target)
    assert result.returncode == 1 and "not a directory" in result.stderr
    assert target.read_text() == "x"


def test_the_parameters_live_where_ci_and_terraform_read_them():
    """One location everywhere: `init` writes the parameters beside the definitions, where the
    CI examples read them and the Terraform module writes them (definitions_dir)."""
    import re

    [params] = [path for path in scaffold_files() if "platform-parameters-" in path]
    assert params == "workflow-definitions/platform-parameters-dev.json"
    for example in ("cloudbuild.yaml", "github-actions.yaml"):
        text = (ROOT / "ci-examples" / example).read_text()
        assert re.search(r"PARAMS_FILE: workflow-definitions/platform-parameters-dev\.json", text), example
    variables = (ROOT / "terraform" / "variables.tf").read_text()
    assert re.search(r'variable "definitions_dir"[^}]*default\s*=\s*"\.\./workflow-definitions"', variables)
    assert "platform-parameters-<environment>.json is written there too" in variables
