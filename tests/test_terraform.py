"""The Terraform module (terraform/): Terraform cannot run here, so these tests parse every file
with python-hcl2, check its interface against the original AEF deployment, check that every
reference resolves, and run the levelflow commands it runs, through the very program its
`external` data sources run, on the examples."""
from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2

import levelflow
from levelflow_commands import (EXAMPLES, PARAMS, ROOT, example_definitions, output_name, run_levelflow,
                                search_path, unknown_flags)

MODULE = ROOT / "terraform"
EXTERNAL_PROGRAM = MODULE / "levelflow_external.py"
DOCS_SCRIPT = ROOT / "scripts" / "terraform_docs.py"
REQUIRED = object()

# The original deployment's variables and defaults (its variables.tf), plus definitions_dir.
ORIGINAL_DEFAULTS = {
    "project": REQUIRED,
    "region": REQUIRED,
    "environment": REQUIRED,
    "data_transformation_project": REQUIRED,
    "deploy_cloud_workflows": True,
    "deploy_composer_dags": False,
    "create_composer_environment": False,
    "composer_bucket_name": None,
    "composer_config": {},
    "workflows_log_level": "LOG_ERRORS_ONLY",
    "definitions_dir": "../workflow-definitions",
}
COMPOSER_CONFIG_FIELDS = [
    "vpc", "subnet", "connection_subnetwork", "cloud_sql", "gke_master", "service_encryption_keys",
    "environment_size", "software_config", "airflow_config_overrides", "pypi_packages", "env_variables",
    "image_version", "cloud_data_lineage_integration", "web_server_access_control", "workloads_config",
    "scheduler", "web_server", "worker", "cpu", "memory_gb", "storage_gb", "count", "min_count", "max_count",
]
EXAMPLE_VARS = {"project": "my-orchestration-dev", "region": "us-central1", "environment": "dev",
                "data_transformation_project": "my-transformation-dev"}


def load_docs_script():
    spec = importlib.util.spec_from_file_location("terraform_docs", DOCS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


unquote = load_docs_script().unquote


@lru_cache(maxsize=None)
def parsed() -> dict[str, dict]:
    return {path.name: hcl2.load(path.open(encoding="utf-8")) for path in sorted(MODULE.glob("*.tf"))}


def blocks(kind: str) -> list[dict]:
    return [entry for tree in parsed().values() for entry in tree.get(kind, [])]


def variables() -> dict[str, dict]:
    return {unquote(name): body for entry in blocks("variable") for name, body in entry.items()}


def module_locals() -> dict[str, object]:
    return {name: value for entry in blocks("locals") for name, value in entry.items() if name != "__is_block__"}


def data_source(kind: str, name: str) -> dict:
    found = [entry[f'"{kind}"'][f'"{name}"'] for entry in blocks("data") if f'"{name}"' in entry.get(f'"{kind}"', {})]
    assert len(found) == 1, f"data.{kind}.{name} should be declared once"
    return found[0]


def strings_in(node) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings_in(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings_in(value)]
    return [unquote(node)] if isinstance(node, str) else []


def render(value: str, overrides: dict[str, str]) -> str:
    """Evaluate an HCL string template whose ${...} are variables, plain locals or `overrides`."""
    local_values = module_locals()

    def resolve(match: re.Match) -> str:
        expression = match.group(1)
        if expression in overrides:
            return overrides[expression]
        if expression.startswith("var.") and expression[4:] in EXAMPLE_VARS:
            return EXAMPLE_VARS[expression[4:]]
        if expression.startswith("local.") and isinstance(local_values.get(expression[6:]), str):
            return render(local_values[expression[6:]], overrides)
        raise AssertionError(f"the test cannot evaluate ${{{expression}}}; give it a value in `overrides`")

    template = unquote(value) if value.startswith('"') else value  # keep a bare ${...} whole
    return re.sub(r"\$\{([^{}]+)\}", resolve, template)


def platform_parameters() -> list[dict]:
    return [{key: render(item[key], {}) for key in ("ParameterKey", "ParameterValue")}
            for item in module_locals()["platform_parameters"]]


def run_external(query: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the data source program as Terraform does: query on stdin, levelflow on PATH."""
    return subprocess.run([sys.executable, str(EXTERNAL_PROGRAM)], input=json.dumps(query), capture_output=True,
                          text=True, cwd=tmp_path, env={"PATH": search_path()}, timeout=300)


def generate_query(engine: str, definitions: list[Path], generated_dir: Path) -> dict[str, str]:
    """data.external.generate[engine]'s query for these definitions, rendered from generate.tf."""
    quote = shlex.quote
    params_json = json.dumps(platform_parameters())
    overrides = {
        "each.key": engine,
        "local.generated_dir": str(generated_dir),
        "local.platform_parameters_json": params_json,
        # for-expressions over the definitions: what they compute, for these files.
        "local.quoted_definitions[each.key]": " ".join(quote(str(path)) for path in definitions),
        "local.quoted_parameters_file": quote(f"{generated_dir}/{render(module_locals()['parameters_file_name'], {})}"),
        "local.quoted_out_dirs[each.key]": quote(f"{generated_dir}/{engine}"),
    }
    query = data_source("external", "generate")["query"]
    return {key: render(value, overrides) for key, value in query.items()}


# --- the files and the interface -----------------------------------------------------------

def test_every_terraform_file_parses_and_the_module_has_its_parts():
    trees = parsed()
    assert {"versions.tf", "variables.tf", "generate.tf", "workflows.tf", "composer.tf", "outputs.tf"} <= set(trees)
    resources = {unquote(kind) for entry in blocks("resource") for kind in entry}
    assert {"google_workflows_workflow", "google_storage_bucket_object", "google_composer_environment",
            "local_file"} <= resources


def test_variables_are_the_originals_with_their_defaults():
    found = variables()
    assert list(found) == list(ORIGINAL_DEFAULTS)
    for name, body in found.items():
        assert unquote(body.get("description", "")).strip(), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"
        expected = ORIGINAL_DEFAULTS[name]
        if expected is REQUIRED:
            assert "default" not in body, f"variable {name} must be required, as in the original"
        else:
            default = body["default"]
            assert (unquote(default) if isinstance(default, str) else default) == expected, name


def test_composer_config_keeps_every_optional_field_of_the_original():
    type_expression = variables()["composer_config"]["type"]
    for field in COMPOSER_CONFIG_FIELDS:
        assert re.search(rf"\b{field}\s*=\s*optional\(", type_expression), f"composer_config lost {field}"


def test_every_output_is_described():
    outputs = {unquote(name): body for entry in blocks("output") for name, body in entry.items()}
    assert {"workflow_ids", "dag_objects", "composer_bucket"} <= set(outputs)
    for name, body in outputs.items():
        assert unquote(body.get("description", "")).strip(), f"output {name} has no description"


def test_every_reference_resolves_and_every_variable_is_used():
    text = "\n".join(path.read_text(encoding="utf-8") for path in MODULE.glob("*.tf"))
    text = re.sub(r"(?m)#.*$", "", text)  # comments name arguments, not references
    declared_vars = set(variables())
    used_vars = set(re.findall(r"\bvar\.(\w+)", text))
    assert used_vars - declared_vars == set(), "undeclared variables"
    assert declared_vars - used_vars == set(), "variables nothing uses"
    assert set(re.findall(r"\blocal\.(\w+)", text)) - set(module_locals()) == set(), "undefined locals"

    resources = {f"{unquote(kind)}.{unquote(name)}" for entry in blocks("resource") for kind, named in entry.items()
                 for name in named}
    data = {f"data.{unquote(kind)}.{unquote(name)}" for entry in blocks("data") for kind, named in entry.items()
            for name in named}
    referenced = set(re.findall(r"(?<![\w.])((?:google|local)_\w+\.\w+)", text))
    assert referenced - resources == set(), "references to undeclared resources"
    assert set(re.findall(r"\b(data\.\w+\.\w+)", text)) - data == set(), "references to undeclared data sources"


def test_every_resource_type_has_its_provider_declared():
    required = {name for entry in parsed()["versions.tf"]["terraform"] for block in entry["required_providers"]
                for name in block if name != "__is_block__"}
    types = {unquote(kind) for block in ("resource", "data") for entry in blocks(block) for kind in entry}
    assert {kind.split("_")[0] for kind in types} <= required
    explicit = {unquote(body["provider"]) for entry in blocks("resource") for named in entry.values()
                for body in named.values() if "provider" in body}
    assert explicit <= required


def test_generation_reruns_on_content_not_on_time():
    text = "\n".join(path.read_text(encoding="utf-8") for path in MODULE.glob("*.tf"))
    assert "timestamp()" not in text
    inputs_hash = module_locals()["inputs_hash"]
    for input_ in ("filesha256", "local.platform_parameters_json", "data.external.levelflow_version.result.output"):
        assert input_ in inputs_hash, f"the generation hash ignores {input_}"
    assert "local.inputs_hash" in module_locals()["generated_dir"]


def test_platform_parameters_file_is_the_established_format_levelflow_reads(tmp_path):
    parameters = platform_parameters()
    assert [item["ParameterKey"] for item in parameters] == [
        "pProjectID", "pRegion", "pFunctionIntermediateName", "pJobsDefinitionsBucket", "pDataTransformationProjectID"]
    path = tmp_path / render(module_locals()["parameters_file_name"], {})
    assert path.name == "platform-parameters-dev.json"
    path.write_text(json.dumps(parameters))
    loaded = levelflow.load_params(path)
    assert loaded.pProjectID == "my-orchestration-dev" and loaded.pRegion == "us-central1"
    assert loaded.pJobsDefinitionsBucket == "my-transformation-dev_aef_jobs_bucket"
    assert loaded.extra == {"pDataTransformationProjectID": "my-transformation-dev"}


# --- the levelflow commands the module runs --------------------------------------------------

def module_commands() -> list[str]:
    """Every levelflow command line in the module: run by a data source, or quoted in a message."""
    texts = [text for tree in parsed().values() for text in strings_in(tree)]
    run = [text for text in texts if text.startswith("levelflow ")]
    quoted = [match for text in texts for match in re.findall(r"`(levelflow [^`]+)`", text)]
    return run + quoted


def test_module_runs_version_and_generate_with_real_flags():
    commands = module_commands()
    assert any(command == "levelflow --version" for command in commands)
    assert any(command.startswith("levelflow generate ") for command in commands)
    for command in commands:
        concrete = re.sub(r"\$\{[^{}]+\}", "x", command)
        assert unknown_flags(concrete) == [], command


def test_commands_quoted_in_error_messages_run_on_the_examples():
    quoted = [command for command in module_commands() if "${var.definitions_dir}" in command]
    assert quoted, "the unreadable-definition message should tell which command to run"
    for command in quoted:
        result = run_levelflow(render(command, {"var.definitions_dir": str(EXAMPLES)}))
        assert result.returncode == 0, result.stderr


def test_version_data_source_answers_levelflow_version(tmp_path):
    query = {key: render(value, {}) for key, value in data_source("external", "levelflow_version")["query"].items()}
    result = run_external(query, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"output": f"levelflow, version {levelflow.__version__}"}


def test_definitions_data_source_lists_what_the_commands_read(tmp_path):
    """The module's list of definitions is levelflow's own: recursive, .levelflowignore honoured."""
    definitions = tmp_path / "defs"
    (definitions / "sales").mkdir(parents=True)
    (definitions / "jobs" / "dataform-tag-executor").mkdir(parents=True)
    shutil.copy(EXAMPLES / "demo_pipeline_cloud_workflows.json", definitions / "sales" / "daily.json")
    shutil.copy(EXAMPLES / "demo_pipeline_composer.json", definitions / "nightly.json")
    (definitions / "jobs" / "dataform-tag-executor" / "job_1.json").write_text('{"repository_name": "r"}')
    (definitions / ".levelflowignore").write_text("jobs/\n")
    overrides = {"local.quoted_definitions_dir": shlex.quote(str(definitions))}
    query = {key: render(value, overrides) for key, value in data_source("external", "definitions")["query"].items()}
    result = run_external(query, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(json.loads(result.stdout)["output"])
    engines = {found["file"]: found["engine"] for found in report["files"]}  # what local.definition_engines holds
    assert engines == {str(definitions / "nightly.json"): "composer", str(definitions / "sales" / "daily.json"): "cloud_workflows"}
    assert sorted(engines) == [str(p) for p in levelflow.find_definitions([definitions])]
    (definitions / ".levelflowignore").unlink()  # the job file is then read as a definition, and fails the plan
    result = run_external(query, tmp_path)
    assert result.returncode == 1 and "job_1.json" in result.stderr


def test_generate_data_source_writes_every_output_once(tmp_path):
    generated_dir = tmp_path / ".levelflow" / "dev" / "0123456789abcdef"
    for engine, definitions in example_definitions().items():
        query = generate_query(engine, definitions, generated_dir)
        assert unknown_flags(query["command"]) == []
        result = run_external(query, tmp_path)
        assert result.returncode == 0, result.stderr
        out_dir = Path(json.loads(result.stdout)["out_dir"])
        assert out_dir == generated_dir / engine
        suffix = ".yaml" if engine == "cloud_workflows" else ".py"
        written = {path.name for path in out_dir.glob(f"*{suffix}")}
        for definition in definitions:
            assert f"{output_name(definition)}{suffix}" in written
        if engine == "cloud_workflows":  # each file becomes a workflow: child workflows are <name>-...
            assert all(any(name.startswith(output_name(d)) for d in definitions) for name in written)
        assert levelflow.load_params(generated_dir / "platform-parameters-dev.json").pProjectID == "my-orchestration-dev"


# --- the data source program itself, with commands that exist now ------------------------------

def validate_query(tmp_path: Path, definition: Path) -> dict[str, str]:
    return {"command": f"levelflow validate {shlex.quote(str(definition))}", "out_dir": str(tmp_path / "gen" / "out"),
            "params_file": str(tmp_path / "gen" / "platform-parameters-dev.json"), "params_json": PARAMS.read_text()}


def test_external_program_reports_a_failing_command_and_does_not_mark_it_done(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"engine": "cloud_workflows", "definition": []}')
    result = run_external(validate_query(tmp_path, bad), tmp_path)
    assert result.returncode == 1
    assert "failed (exit status 1)" in result.stderr and f"{bad}:" in result.stderr
    assert not (tmp_path / "gen" / "out.complete").exists()


def test_external_program_runs_the_command_only_for_new_inputs(tmp_path):
    good = tmp_path / "pipe.json"
    shutil.copy(EXAMPLES / "demo_pipeline_cloud_workflows.json", good)
    query = validate_query(tmp_path, good)
    first = run_external(query, tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"out_dir": query["out_dir"]}
    assert (tmp_path / "gen" / "out.complete").exists()
    assert json.loads((tmp_path / "gen" / "platform-parameters-dev.json").read_text()) == json.loads(PARAMS.read_text())
    # Same directory (same inputs hash): the command is not run again, even one that would fail.
    good.write_text("not json")
    assert run_external(query, tmp_path).returncode == 0
    # A new directory (new hash) runs it.
    query["out_dir"] = str(tmp_path / "gen2" / "out")
    assert run_external(query, tmp_path).returncode == 1


def test_external_program_says_when_levelflow_is_not_installed(tmp_path):
    result = subprocess.run([sys.executable, str(EXTERNAL_PROGRAM)], input=json.dumps({"command": "levelflow --version"}),
                            capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert result.returncode == 1 and "install levelflow" in result.stderr


# --- the README's variables table --------------------------------------------------------------

def test_readme_variables_table_is_up_to_date():
    result = subprocess.run([sys.executable, str(DOCS_SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docs_check_fails_when_a_variable_changes_and_the_script_fixes_it(tmp_path):
    readme, variables_tf = tmp_path / "README.md", tmp_path / "variables.tf"
    shutil.copy(ROOT / "README.md", readme)
    variables_tf.write_text((MODULE / "variables.tf").read_text().replace("LOG_ERRORS_ONLY", "LOG_ALL_CALLS"))
    command = [sys.executable, str(DOCS_SCRIPT), "--readme", str(readme), "--variables", str(variables_tf)]
    assert subprocess.run([*command, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert '`"LOG_ALL_CALLS"`' in readme.read_text()
    assert subprocess.run([*command, "--check"], capture_output=True).returncode == 0
