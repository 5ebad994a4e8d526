"""The Terraform module (terraform/): Terraform cannot run here, so these tests parse every file
with python-hcl2, check its interface against the original AEF deployment, check that every
reference resolves, and run the levelflow commands it runs, through the very program its
`external` data sources run, on the examples."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2

import levelflow
from levelflow.backends import engine_for
from conftest import pipeline, step
from levelflow_commands import (EXAMPLES, PARAMS, ROOT, example_definitions, output_name, run_levelflow,
                                search_path, unknown_flags)

MODULE = ROOT / "terraform"
EXTERNAL_PROGRAM = MODULE / "levelflow_external.py"
DOCS_SCRIPT = ROOT / "scripts" / "terraform_docs.py"
REQUIRED = object()

# The original deployment's variables and defaults (its variables.tf), plus definitions_dir,
# step_mode, jobs_dir and the secure deployment's (docs/deployment.md).
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
    "step_mode": "functions",
    "jobs_dir": None,
    "workflows_service_account_scope": "pipeline",
    "intermediate_function_generation": None,
    "crypto_key_name": None,
    "labels": {},
    "execution_history_level": None,
    "user_env_vars": {},
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


def resource(kind: str, name: str) -> dict:
    found = [entry[f'"{kind}"'][f'"{name}"'] for entry in blocks("resource") if f'"{name}"' in entry.get(f'"{kind}"', {})]
    assert len(found) == 1, f"{kind}.{name} should be declared once"
    return found[0]


def preconditions(body: dict) -> list[dict]:
    return [check for lifecycle in body.get("lifecycle", []) for check in lifecycle.get("precondition", [])]


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


def choose(expression: str, facts: dict[str, bool]) -> str:
    """The branch of an HCL conditional `${COND ? A : B}` that `facts` (COND's text => its value)
    selects; the cut is made outside strings, brackets and ${...}."""
    text, stack, cuts, i = expression[2:-1], [], [], 0
    while i < len(text):
        char = text[i]
        if stack and stack[-1] == '"':
            if char == "\\":
                i += 1
            elif char == '"':
                stack.pop()
            elif text.startswith("${", i):
                stack.append("}")
                i += 1
        elif char == '"':
            stack.append('"')
        elif char in "([{":
            stack.append({"(": ")", "[": "]", "{": "}"}[char])
        elif stack and char == stack[-1]:
            stack.pop()
        elif not stack and char in "?:":
            cuts.append(i)
        i += 1
    assert len(cuts) == 2, f"not a single conditional: {expression}"
    condition = text[:cuts[0]].strip()
    assert condition in facts, f"the test does not know the value of {condition!r}"
    return (text[cuts[0] + 1:cuts[1]] if facts[condition] else text[cuts[1] + 1:]).strip()


def platform_parameters() -> list[dict]:
    return [{key: render(item[key], {}) for key in ("ParameterKey", "ParameterValue")}
            for item in module_locals()["platform_parameters"]]


def run_external(query: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the data source program as Terraform does: query on stdin, levelflow on PATH."""
    # PYTHONPATH, when set, names the levelflow under test (the venv's script may be another checkout's).
    env = {"PATH": search_path(), **{key: os.environ[key] for key in ("PYTHONPATH",) if key in os.environ}}
    return subprocess.run([sys.executable, str(EXTERNAL_PROGRAM)], input=json.dumps(query), capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=300)


def engine_flags(engine: str, step_mode: str = "functions", jobs_dir: Path | None = None) -> str:
    """local.engine_flags[engine] for these settings, evaluated from generate.tf."""
    flags = module_locals()["engine_flags"]
    assert flags == {"cloud_workflows": "${local.step_mode_flags[var.step_mode]}", "composer": '""'}
    if engine == "composer":
        return ""
    chosen = module_locals()["step_mode_flags"][step_mode]
    if chosen.startswith("${"):
        chosen = choose(chosen, {"var.jobs_dir == null": jobs_dir is None})
    return render(chosen, {"local.quoted_jobs_dir": shlex.quote(str(jobs_dir))})


def command_overrides(engine: str, definitions: list[Path], generated_dir: Path, **settings) -> dict[str, str]:
    """What the for-expressions and conditionals of generate.tf compute, for these files and settings."""
    quote = shlex.quote
    return {
        "each.key": engine,
        "local.generated_dir": str(generated_dir),
        "local.platform_parameters_json": json.dumps(platform_parameters()),
        "local.quoted_definitions[each.key]": " ".join(quote(str(path)) for path in definitions),
        "local.quoted_parameters_file": quote(f"{generated_dir}/{render(module_locals()['parameters_file_name'], {})}"),
        "local.quoted_out_dirs[each.key]": quote(f"{generated_dir}/{engine}"),
        "local.engine_flags[each.key]": engine_flags(engine, **settings),
    }


def generate_query(engine: str, definitions: list[Path], generated_dir: Path, **settings) -> dict[str, str]:
    """data.external.generate[engine]'s query for these definitions, rendered from generate.tf."""
    overrides = command_overrides(engine, definitions, generated_dir, **settings)
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
    for input_ in ("filesha256", "local.platform_parameters_json", "data.external.levelflow_version.result.output",
                   "var.step_mode", 'filesha256("${var.jobs_dir}/${name}")'):
        assert input_ in inputs_hash, f"the generation hash ignores {input_}"
    assert "local.inputs_hash" in module_locals()["generated_dir"]


def test_the_generation_hash_covers_every_job_file_levelflow_reads(tmp_path):
    _, jobs = native_definitions(tmp_path)
    assert "for name in local.job_files" in module_locals()["inputs_hash"]
    pattern = re.fullmatch(r'\$\{var\.jobs_dir == null \? \[\] : sort\(fileset\(var\.jobs_dir, "([^"]+)"\)\)\}',
                           module_locals()["job_files"]).group(1)
    read = {str(path.relative_to(jobs)) for path in jobs.glob("*/*.json")}  # <executor>/<JOB_NAME>.json
    assert read and {str(path.relative_to(jobs)) for path in jobs.glob(pattern)} >= read


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


# --- native step mode: the workflows' own service account and its roles ------------------------

DATAPROC_JOB = {"dataproc_serverless_project_id": "proc-project", "dataproc_serverless_region": "europe-west1",
                "jar_file_location": "gs://jars/app.jar", "spark_app_main_class": "com.example.Main",
                "spark_args": ["--day", "1"], "dataproc_serverless_runtime_version": "2.2",
                "dataproc_service_account": "spark@proc-project.iam.gserviceaccount.com",
                "spark_app_properties": "{}", "subnetwork": "regions/europe-west1/subnetworks/default"}
OWN_PROJECT = f"projects/{EXAMPLE_VARS['project']}"  # pProjectID of the module's parameters


def native_definitions(tmp_path: Path) -> tuple[list[Path], Path]:
    """Two pipelines with Dataproc batches in one project, each run as another account, and the
    local copy of the jobs bucket that names them."""
    jobs = tmp_path / "jobs"
    (jobs / "dataproc-serverless-job-executor").mkdir(parents=True)
    (jobs / "dataproc-serverless-job-executor" / "job_1.json").write_text(json.dumps(DATAPROC_JOB))
    (jobs / "dataproc-serverless-job-executor" / "job_7.json").write_text(
        json.dumps({**DATAPROC_JOB, "dataproc_service_account": "123-compute@developer.gserviceaccount.com"}))
    child = {"JOB_ID": "3", "JOB_NAME": "job_3", "TYPE": "workflows", "workflows_name": "child-flow",
             "WAIT_TIME_SECONDS": "10", "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "5"}
    steps = {
        "sales": [step("1", FUNCTION_ID_NAME="dataproc-serverless-job-executor"),
                  step("2", FUNCTION_ID_NAME="bq-saved-query-executor", STEP_PROPERTIES={"dataform_project_id": "sql-project"})],
        "stock": [step("7", FUNCTION_ID_NAME="dataproc-serverless-job-executor"), child],
    }
    (tmp_path / "defs").mkdir()
    definitions = []
    for name, thread in steps.items():
        definitions.append(tmp_path / "defs" / f"{name}.json")
        definitions[-1].write_text(json.dumps(pipeline([[thread]])))
    return definitions, jobs


def workflows_plan_query(definitions: list[Path], generated_dir: Path, step_mode: str = "native",
                         jobs_dir: Path | None = None) -> dict[str, str]:
    """data.external.workflows_plan's query, rendered from identity.tf."""
    overrides = command_overrides("cloud_workflows", definitions, generated_dir, step_mode=step_mode, jobs_dir=jobs_dir)
    overrides['local.quoted_definitions["cloud_workflows"]'] = overrides.pop("local.quoted_definitions[each.key]")
    overrides['local.engine_flags["cloud_workflows"]'] = overrides.pop("local.engine_flags[each.key]")
    return {key: render(value, overrides) for key, value in data_source("external", "workflows_plan")["query"].items()}


def run_workflows_plan(tmp_path: Path, definitions: list[Path], jobs_dir: Path | None = None, step_mode: str = "native"):
    generated_dir = tmp_path / ".levelflow" / "dev" / "0123456789abcdef"
    query = workflows_plan_query(definitions, generated_dir, step_mode, jobs_dir)
    assert unknown_flags(query["command"]) == []
    assert ("--step-mode native" in query["command"]) == (step_mode == "native")
    assert ("--jobs-dir" in query["command"]) == (jobs_dir is not None)
    result = run_external(query, tmp_path)
    assert result.returncode == 0, result.stderr
    assert levelflow.load_params(generated_dir / "platform-parameters-dev.json").pProjectID == EXAMPLE_VARS["project"]
    return json.loads(json.loads(result.stdout)["output"])


def hcl_regex(expression: str) -> str:
    """The pattern of the regex("...") call in an HCL expression (HCL and JSON escape alike)."""
    return json.loads(re.search(r'regex\(("(?:[^"\\]|\\.)*")', expression).group(1))


GRANTED_ON = {"project_grants": ("projects/", "project"), "bucket_grants": ("buckets/", "bucket"),
              "service_account_grants": ("serviceAccounts/", "email"), "topic_grants": ("topics/", "topic"),
              "function_grants": ("functions/", "function")}  # identity.tf's local => (prefix, argument)


def module_grants(answer, scope: str = "pipeline") -> dict[str, dict]:
    """What identity.tf's locals make of plan's answer for this workflows_service_account_scope:
    each pipeline's account, its workflows' accounts, the unresolved keys, the resolved grants,
    and each grant resource's for_each map; an account's project comes from the module's regex."""
    found = module_locals()
    assert "flatten([jsondecode(data.external.workflows_plan[0].result.output)])" in found["workflow_reports"]
    assert unquote(found["per_pipeline"]) == 'var.workflows_service_account_scope == "pipeline"'
    assert squashed(found["account_of"]) == \
        squashed('{ for report in local.workflow_reports : report.pipeline => local.per_pipeline ? report.pipeline : "shared" }')
    assert '"${entry.account} ${entry.on} ${entry.role}" => entry...' in found["workflow_grants"]  # once per account
    assert 'strcontains(grant.on, "<")' in found["unresolved_grants"] and '!strcontains(grant.on, "<")' in found["resolved_grants"]
    reports = answer if isinstance(answer, list) else [answer]  # flatten([...])
    account_of = {report["pipeline"]: report["pipeline"] if scope == "pipeline" else "shared" for report in reports}
    grants: dict[str, dict] = {}
    for report in reports:
        account = account_of[report["pipeline"]]
        for entry in report["iam"]:
            key = f"{account} {entry['on']} {entry['role']}"
            grants.setdefault(key, {**entry, "account": account, "pipelines": []})["pipelines"].append(report["pipeline"])
    result: dict = {"account_of": account_of,
                    "workflow_account": {name: account_of[r["pipeline"]] for r in reports for name in r["workflows"]},
                    "unresolved": sorted(key for key, grant in grants.items() if "<" in grant["on"]),
                    "resolved": {key: grant for key, grant in grants.items() if "<" not in grant["on"]}}
    for local, (prefix, argument) in GRANTED_ON.items():
        assert f'startswith(grant.on, "{prefix}")' in found[local] and f'trimprefix(grant.on, "{prefix}")' in found[local]
        result[local] = {key: {argument: grant["on"].removeprefix(prefix), "role": grant["role"], "account": grant["account"]}
                         for key, grant in result["resolved"].items() if grant["on"].startswith(prefix)}
    for grant in result["service_account_grants"].values():
        match = re.search(hcl_regex(found["service_account_grants"]), grant["email"])
        grant["project"] = match.group(1) if match else "-"
    return result


def squashed(expression: str) -> str:
    """An HCL expression without its blanks (python-hcl2 writes `{ for` as `{for`)."""
    return re.sub(r"\s+", "", unquote(expression))


def account_id(pipeline: str, environment: str = "dev", scope: str = "pipeline") -> str:
    """identity.tf's account id for a pipeline, evaluated (lower, replace, substr, trim, sha256)."""
    accounts = module_locals()["workflow_accounts"]
    per_pipeline = re.search(r'account_id\s*=\s*("lf-\$\{trim\(substr\(replace\(lower\(report\.pipeline\), "_", "-"\), 0, (\d+)\), "-"\)\}'
                             r'-\$\{substr\(sha256\("\$\{var\.environment\}/\$\{report\.pipeline\}"\), 0, (\d+)\)\}")', accounts)
    assert per_pipeline, accounts
    if scope != "pipeline":
        assert 'shared={account_id="lf-wf-${local.environment_id}"' in squashed(accounts)
        return "lf-wf-" + environment.lower().replace("_", "-")
    cut, digits = int(per_pipeline.group(2)), int(per_pipeline.group(3))
    name = pipeline.lower().replace("_", "-")[:cut].strip("-")
    return f"lf-{name}-{hashlib.sha256(f'{environment}/{pipeline}'.encode()).hexdigest()[:digits]}"


def test_step_mode_is_a_cloud_workflows_mode_and_jobs_dir_goes_with_native_only():
    step_mode = variables()["step_mode"]
    modes = re.search(r"contains\((\[[^]]*\]), var\.step_mode\)", step_mode["validation"][0]["condition"]).group(1)
    assert json.loads(modes) == list(engine_for("cloud_workflows").step_modes) == ["functions", "native"]
    assert unquote(step_mode["default"]) == engine_for("cloud_workflows").default_mode
    checks = {unquote(check["condition"]): unquote(check["error_message"])
              for check in preconditions(resource("local_file", "platform_parameters"))}
    native_without_workflows = checks['var.step_mode != "native" || contains(keys(local.engine_definitions), "cloud_workflows")']
    assert "deploy_cloud_workflows" in native_without_workflows and "Unset step_mode" in native_without_workflows
    assert engine_for("cloud_workflows").inputs["jobs_dir"] == ("native",)
    jobs_dir_in_functions_mode = checks['var.jobs_dir == null || var.step_mode == "native"']
    assert "native" in jobs_dir_in_functions_mode and "Unset jobs_dir" in jobs_dir_in_functions_mode


def test_native_generate_command_writes_native_workflows(tmp_path):
    """Functions mode runs the command it always ran; native mode adds --step-mode native, and
    --jobs-dir, whose job files are embedded."""
    assert engine_flags("cloud_workflows") == "" and engine_flags("composer", "native", tmp_path) == ""
    definitions = [EXAMPLES / "demo_pipeline_cloud_workflows.json"]  # retail_daily's sync steps need functions
    texts = {}
    for mode in ("functions", "native"):
        query = generate_query("cloud_workflows", definitions, tmp_path / mode, step_mode=mode)
        assert unknown_flags(query["command"]) == []
        result = run_external(query, tmp_path)
        assert result.returncode == 0, result.stderr
        texts[mode] = "".join(path.read_text() for path in sorted((tmp_path / mode / "cloud_workflows").glob("*.yaml")))
    assert shlex.split(query["command"])[-2:] == ["--step-mode", "native"]
    intermediate = render(module_locals()["function_intermediate_name"], {})
    assert intermediate in texts["functions"] and intermediate not in texts["native"]
    assert "type: OAuth2" in texts["native"] and "https://dataproc.googleapis.com/v1/" in texts["native"]

    definitions, jobs = native_definitions(tmp_path)
    query = generate_query("cloud_workflows", definitions, tmp_path / "embedded", step_mode="native", jobs_dir=jobs)
    assert shlex.split(query["command"])[-4:] == ["--step-mode", "native", "--jobs-dir", str(jobs)]
    result = run_external(query, tmp_path)
    assert result.returncode == 0, result.stderr
    assert DATAPROC_JOB["jar_file_location"] in (tmp_path / "embedded" / "cloud_workflows" / "sales.yaml").read_text()


def test_each_pipeline_s_account_gets_the_native_roles_of_its_own_steps_only(tmp_path):
    definitions, jobs = native_definitions(tmp_path)
    grants = module_grants(run_workflows_plan(tmp_path, definitions, jobs))
    assert grants["unresolved"] == [] and grants["bucket_grants"] == {}  # embedded job files: no bucket to read
    assert grants["account_of"] == {"sales": "sales", "stock": "stock"}
    assert grants["workflow_account"] == {"sales": "sales", "stock": "stock"}
    assert grants["project_grants"] == {
        f"sales {OWN_PROJECT} roles/bigquery.jobUser": {"project": EXAMPLE_VARS["project"], "role": "roles/bigquery.jobUser", "account": "sales"},
        "sales projects/proc-project roles/dataproc.editor": {"project": "proc-project", "role": "roles/dataproc.editor", "account": "sales"},
        "sales projects/sql-project roles/dataform.viewer": {"project": "sql-project", "role": "roles/dataform.viewer", "account": "sales"},
        f"stock {OWN_PROJECT} roles/workflows.invoker": {"project": EXAMPLE_VARS["project"], "role": "roles/workflows.invoker", "account": "stock"},
        "stock projects/proc-project roles/dataproc.editor": {"project": "proc-project", "role": "roles/dataproc.editor", "account": "stock"},
    }
    spark, compute = DATAPROC_JOB["dataproc_service_account"], "123-compute@developer.gserviceaccount.com"
    user = "roles/iam.serviceAccountUser"
    assert grants["service_account_grants"] == {
        f"sales serviceAccounts/{spark} {user}": {"email": spark, "project": "proc-project", "role": user, "account": "sales"},
        f"stock serviceAccounts/{compute} {user}": {"email": compute, "project": "-", "role": user, "account": "stock"},
    }
    # The resources grant each for_each entry, to the account of the grant's pipeline.
    member = "${google_service_account.workflows[each.value.account].member}"
    for kind, local, arguments in [
        ("google_project_iam_member", "project_grants", {"project": "${each.value.project}"}),
        ("google_storage_bucket_iam_member", "bucket_grants", {"bucket": "${each.value.bucket}"}),
        ("google_pubsub_topic_iam_member", "topic_grants", {"topic": "${each.value.topic}"}),
        ("google_service_account_iam_member", "service_account_grants",
         {"service_account_id": '"projects/${each.value.project}/serviceAccounts/${each.value.email}"'}),
    ]:
        body = resource(kind, "workflows")
        assert body["for_each"] == f"${{local.{local}}}" and body["member"] == member
        assert body["role"] == "${each.value.role}" and {key: body[key] for key in arguments} == arguments
    service_account_id = resource("google_service_account_iam_member", "workflows")["service_account_id"]
    each = grants["service_account_grants"][f"sales serviceAccounts/{spark} {user}"]
    assert render(service_account_id, {"each.value.project": each["project"], "each.value.email": each["email"]}) == \
        f"projects/proc-project/serviceAccounts/{spark}"


def test_one_account_per_definitions_dir_holds_each_role_once_across_pipelines(tmp_path):
    definitions, jobs = native_definitions(tmp_path)
    grants = module_grants(run_workflows_plan(tmp_path, definitions, jobs), scope="definitions_dir")
    assert set(grants["account_of"].values()) == {"shared"} == set(grants["workflow_account"].values())
    assert grants["resolved"]["shared projects/proc-project roles/dataproc.editor"]["pipelines"] == ["sales", "stock"]
    assert len([key for key in grants["project_grants"] if key.endswith("roles/dataproc.editor")]) == 1
    scope = variables()["workflows_service_account_scope"]
    assert unquote(scope["default"]) == "pipeline"
    assert json.loads(re.search(r"contains\((\[[^]]*\]), var", scope["validation"][0]["condition"]).group(1)) == \
        ["pipeline", "definitions_dir"]


def test_functions_mode_accounts_may_invoke_the_intermediate_function_and_nothing_else(tmp_path):
    definitions = example_definitions()["cloud_workflows"]
    grants = module_grants(run_workflows_plan(tmp_path, definitions, step_mode="functions"))
    intermediate = render(module_locals()["function_intermediate_name"], {})
    assert grants["unresolved"] == []
    roles = {(grant["account"], grant["role"], grant["on"]) for grant in grants["resolved"].values()
             if grant["why"] != "start and cancel the child workflows"}  # a workflows step's (retail_daily has one)
    assert roles == {(pipeline_name, "roles/run.invoker", f"functions/{intermediate}") for pipeline_name in grants["account_of"]}
    assert set(grants["function_grants"]) == {f"{name} functions/{intermediate} roles/run.invoker" for name in grants["account_of"]}
    # 2nd gen (the default, as the AEF deploys it): the Cloud Run service; 1st gen: the function.
    run = resource("google_cloud_run_v2_service_iam_member", "workflows")
    assert unquote(run["for_each"]) == "coalesce(var.intermediate_function_generation, 2) == 2 ? local.function_grants : {}"
    assert unquote(run["name"]) == "each.value.function" and unquote(run["role"]) == "each.value.role"
    assert unquote(run["project"]) == "var.project" and unquote(run["location"]) == "var.region"  # pProjectID, pRegion
    gen1 = resource("google_cloudfunctions_function_iam_member", "workflows")
    assert unquote(gen1["for_each"]) == "var.intermediate_function_generation == 1 ? local.function_grants : {}"
    assert unquote(gen1["role"]) == "roles/cloudfunctions.invoker" and unquote(gen1["cloud_function"]) == "each.value.function"
    for body in (run, gen1):
        assert body["member"] == "${google_service_account.workflows[each.value.account].member}"
    assert {item["ParameterKey"]: item["ParameterValue"] for item in platform_parameters()}["pFunctionIntermediateName"] == intermediate


def test_a_split_pipeline_s_parts_run_as_its_account_and_its_parent_may_start_them(tmp_path):
    big = tmp_path / "big.json"
    threads = [[step(f"L{level}S{n}", FUNCTION_ID_NAME="dataform-tag-executor") for n in range(80)] for level in range(12)]
    big.write_text(json.dumps(pipeline([[thread] for thread in threads])))
    report = run_workflows_plan(tmp_path, [big], step_mode="functions")
    assert report["workflows"][0] == "big" and len(report["workflows"]) > 2
    assert report["workflows"][1:] == [f"big-part-{n}" for n in range(1, len(report["workflows"]))]
    query = generate_query("cloud_workflows", [big], tmp_path / "gen")
    assert run_external(query, tmp_path).returncode == 0
    assert sorted(path.stem for path in (tmp_path / "gen" / "cloud_workflows").glob("*.yaml")) == sorted(report["workflows"])
    grants = module_grants(report)
    assert grants["workflow_account"] == {name: "big" for name in report["workflows"]}
    invoker = grants["resolved"][f"big {OWN_PROJECT} roles/workflows.invoker"]
    assert invoker["why"] == "start and poll the pipeline's parts"
    workflow = resource("google_workflows_workflow", "this")
    assert workflow["service_account"] == "${google_service_account.workflows[local.workflow_account[each.key]].email}"


def test_workflows_run_as_their_pipeline_s_account_whose_id_google_accepts():
    account = resource("google_service_account", "workflows")
    assert account["for_each"] == "${local.workflow_accounts}"
    assert data_source("external", "workflows_plan")["count"] == "${local.deploys_workflows ? 1 : 0}"
    workflow = resource("google_workflows_workflow", "this")
    assert set(workflow["depends_on"]) == {f"${{{kind}.workflows}}" for kind in (
        "google_project_iam_member", "google_storage_bucket_iam_member", "google_service_account_iam_member",
        "google_pubsub_topic_iam_member", "google_cloud_run_v2_service_iam_member",
        "google_cloudfunctions_function_iam_member", "google_kms_crypto_key_iam_member")}
    # Every id is one Google accepts (6-30 characters, RFC 1035), or the plan says why not.
    check = next(check for check in preconditions(account) if "each.value.account_id" in check["condition"])
    pattern = hcl_regex(check["condition"])
    longest = int(re.search(r"length\(each\.value\.account_id\) <= (\d+)", check["condition"]).group(1))
    ids = set()
    for name in ["sales", "a", "Daily_Sales-EU", "x" * 64, "a" * 18 + "-b", "a" * 18 + "_" + "b" * 40]:
        for environment in ("dev", "prod"):
            derived = account_id(name, environment)
            assert len(derived) <= longest and len(derived) >= 6 and re.fullmatch(pattern, derived), derived
            ids.add(derived)
    assert len(ids) == 12  # no two pipelines, nor two environments, share an account
    for environment, valid in [("dev", True), ("Prod_EU", True), ("e" * 24, True), ("e" * 25, False), ("dev-", False)]:
        derived = account_id("any", environment, scope="definitions_dir")
        assert (len(derived) <= longest and re.fullmatch(pattern, derived) is not None) == valid, derived


def test_a_role_on_a_resource_named_in_an_unread_job_file_fails_the_plan_asking_for_jobs_dir(tmp_path):
    definitions = example_definitions()["cloud_workflows"]
    assert isinstance(run_workflows_plan(tmp_path, definitions[:1]), dict)  # one file, one report: hence flatten([...])
    grants = module_grants(run_workflows_plan(tmp_path, definitions))
    assert any("projects/<dataproc_serverless_project_id of dataproc-serverless-job-executor/" in key
               for key in grants["unresolved"])
    jobs_bucket = render(module_locals()["jobs_bucket"], {})
    assert {key: grant["bucket"] for key, grant in grants["bucket_grants"].items()} == {
        f"{name} buckets/{jobs_bucket} roles/storage.objectViewer": jobs_bucket  # job files read at run time
        for name in grants["account_of"] if any(g["bucket"] for g in grants["bucket_grants"].values() if g["account"] == name)}
    checks = preconditions(resource("google_service_account", "workflows"))
    unresolved = [check for check in checks if "local.unresolved_grants" in check["condition"]]
    assert len(unresolved) == 1 and unresolved[0]["condition"] == "${length(local.unresolved_grants) == 0}"
    message = render(unresolved[0]["error_message"], {'join(", ", local.unresolved_grants)': ", ".join(grants["unresolved"])})
    assert "set jobs_dir" in message and f"gs://{jobs_bucket}" in message
    assert all(key in message for key in grants["unresolved"])


def test_cmek_labels_history_and_environment_variables_reach_every_workflow():
    workflow = resource("google_workflows_workflow", "this")
    for argument in ("crypto_key_name", "execution_history_level", "user_env_vars"):
        assert unquote(workflow[argument]) == f"var.{argument}"
    assert squashed(workflow["labels"]) == \
        squashed("merge(var.labels, { levelflow-pipeline = substr(lower(local.workflow_pipeline[each.key]), 0, 63) })")
    for kind, name in [("google_pubsub_topic", "notify"), ("google_composer_environment", "this")]:
        assert unquote(resource(kind, name)["labels"]) == "var.labels"
    # The key: the project's Workflows service agent may use it, and it is in the workflows' region.
    identity = resource("google_project_service_identity", "workflows")
    assert unquote(identity["service"]) == "workflows.googleapis.com" and unquote(identity["provider"]) == "google-beta"
    grant = resource("google_kms_crypto_key_iam_member", "workflows")
    assert unquote(grant["role"]) == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert unquote(grant["member"]) == "google_project_service_identity.workflows[0].member"
    [region_check] = preconditions(grant)
    pattern = hcl_regex(region_check["condition"])
    key = "projects/keys/locations/{}/keyRings/ring/cryptoKeys/wf"
    assert re.search(pattern, key.format("us-central1")).group(1) == EXAMPLE_VARS["region"]
    assert re.search(pattern, key.format("europe-west1")).group(1) != EXAMPLE_VARS["region"]


def validation_accepts(variable: str, value) -> bool:
    """Evaluate a variable's validations for a value, in Python, from their HCL text."""
    conditions = [unquote(check["condition"]) for check in variables()[variable]["validation"]]
    patterns = [json.loads(found) for found in re.findall(r'regex\(("(?:[^"\\]|\\.)*")', conditions[0])]
    key_pattern, value_pattern = (patterns + ["", ""])[:2]
    checks = {
        "crypto_key_name": lambda v: v is None or re.fullmatch(hcl_regex(conditions[0]), v) is not None,
        "execution_history_level": lambda v: v is None or v in json.loads(re.search(r"contains\((\[[^]]*\])", conditions[0]).group(1)),
        "labels": lambda v: len(v) <= 63 and "levelflow-pipeline" not in v and all(
            re.fullmatch(key_pattern, key) and re.fullmatch(value_pattern, val) for key, val in v.items()),
        "user_env_vars": lambda v: len(v) <= 20 and all(name and not name.startswith(("GOOGLE", "WORKFLOWS")) and len(val) <= 4096
                                                       for name, val in v.items()),
    }
    if variable == "user_env_vars":
        assert all(part in conditions[0] for part in ('length(var.user_env_vars) <= 20', 'name != ""', '!startswith(name, "GOOGLE")',
                                                       '!startswith(name, "WORKFLOWS")', "length(value) <= 4096"))
    if variable == "labels":
        assert 'length(var.labels) <= 63' in conditions[0] and '!contains(keys(var.labels), "levelflow-pipeline")' in conditions[1]
    return bool(checks[variable](value))


def test_the_secure_settings_are_validated_as_google_documents_them():
    assert validation_accepts("crypto_key_name", "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k")
    assert not validation_accepts("crypto_key_name", "projects/p/keyRings/r/cryptoKeys/k")
    assert validation_accepts("execution_history_level", "EXECUTION_HISTORY_DETAILED")
    assert not validation_accepts("execution_history_level", "DETAILED")
    assert validation_accepts("labels", {"team": "data", "cost-center": "42_a"})
    assert not validation_accepts("labels", {"Team": "data"}) and not validation_accepts("labels", {"team": "Data"})
    assert not validation_accepts("labels", {"levelflow-pipeline": "x"})
    assert validation_accepts("user_env_vars", {"TEAM": "data"})
    assert not validation_accepts("user_env_vars", {"GOOGLE_X": "1"}) and not validation_accepts("user_env_vars", {"": "1"})
    assert not validation_accepts("user_env_vars", {f"V{n}": "1" for n in range(21)})
    assert not validation_accepts("user_env_vars", {"BIG": "x" * 4097})


def test_a_workflows_setting_without_workflows_to_deploy_is_an_error_not_ignored():
    checks = {unquote(check["condition"]): unquote(check["error_message"])
              for check in preconditions(resource("local_file", "platform_parameters"))}
    [condition] = [text for text in checks if "var.crypto_key_name == null" in text]
    assert condition.startswith("local.deploys_workflows || alltrue([")
    for setting in ("var.crypto_key_name == null", "var.execution_history_level == null", "length(var.user_env_vars) == 0",
                    "var.intermediate_function_generation == null"):
        assert setting in condition
    assert "unset them" in checks[condition]
    native = checks['var.intermediate_function_generation == null || var.step_mode == "functions"']
    assert "native" in native and "Unset it" in native


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


# --- schedules ---------------------------------------------------------------------------------

def scheduled_definitions(tmp_path) -> Path:
    """A cloud_workflows definition in each schedule form, an unscheduled one and a scheduled DAG."""
    definitions = tmp_path / "defs"
    definitions.mkdir()
    base = json.loads((EXAMPLES / "demo_pipeline_cloud_workflows.json").read_text())
    composer = json.loads((EXAMPLES / "demo_pipeline_composer.json").read_text())
    (definitions / "daily.json").write_text(json.dumps({**base, "schedule": "@daily"}))
    (definitions / "monthly.json").write_text(json.dumps({**base, "name": "sales-monthly", "schedule": {
        "cron": "30 2 1 * *", "time_zone": "Europe/Paris", "paused": True, "dates": "PREVIOUS_MONTH",
        "workflow_properties": {"region": "eu"}}}))
    (definitions / "by_hand.json").write_text(json.dumps(base))
    (definitions / "dag.json").write_text(json.dumps({**composer, "schedule": "0 4 * * *"}))
    return definitions


def scheduled_workflows(report: dict, deploy_cloud_workflows: bool = True) -> dict:
    """local.scheduled_workflows, evaluated in Python from the definitions data source's answer."""
    expression = module_locals()["scheduled_workflows"]
    assert "found.name => found.schedule" in expression and 'found.engine == "cloud_workflows"' in expression
    assert "found.schedule != null" in expression and "var.deploy_cloud_workflows" in expression
    return {found["name"]: found["schedule"] for found in report["files"]
            if deploy_cloud_workflows and found["engine"] == "cloud_workflows" and found["schedule"] is not None}


def test_each_scheduled_workflow_gets_a_scheduler_job_that_starts_an_execution(tmp_path):
    definitions = scheduled_definitions(tmp_path)
    overrides = {"local.quoted_definitions_dir": shlex.quote(str(definitions))}
    query = {key: render(value, overrides) for key, value in data_source("external", "definitions")["query"].items()}
    result = run_external(query, tmp_path)
    assert result.returncode == 0, result.stderr
    schedules = scheduled_workflows(json.loads(json.loads(result.stdout)["output"]))
    assert schedules == {
        "daily": {"cron": "@daily", "unix_cron": "0 0 * * *", "time_zone": "UTC", "paused": False, "dates": "YESTERDAY",
                  "workflow_properties": {}},
        "sales-monthly": {"cron": "30 2 1 * *", "unix_cron": "30 2 1 * *", "time_zone": "Europe/Paris", "paused": True,
                          "dates": "PREVIOUS_MONTH", "workflow_properties": {"region": "eu"}}}

    [job] = [body for entry in blocks("resource") for kind, named in entry.items() if unquote(kind) == "google_cloud_scheduler_job"
             for body in named.values()]
    assert unquote(job["for_each"]) == "local.scheduled_workflows"
    assert tuple(unquote(job[key]) for key in ("schedule", "time_zone", "paused")) == (
        "each.value.unix_cron", "each.value.time_zone", "each.value.paused")
    [target] = job["http_target"]
    uri = render(unquote(target["uri"]), {"each.key": "sales-monthly"})
    assert uri == ("https://workflowexecutions.googleapis.com/v1/projects/my-orchestration-dev/locations/us-central1"
                   "/workflows/sales-monthly/executions")
    assert unquote(target["http_method"]) == "POST"
    assert unquote(target["oauth_token"][0]["scope"]) == "https://www.googleapis.com/auth/cloud-platform"
    assert "google_service_account.scheduler[0].email" in target["oauth_token"][0]["service_account_email"]
    # the body: an Execution whose argument is the pipeline-executor's, less the dates the workflow computes
    assert re.sub(r"\s+", "", unquote(target["body"])) == (
        "base64encode(jsonencode({argument=jsonencode({workflow_name=each.key,"
        "workflow_properties=each.value.workflow_properties})}))")
    [invoker] = [body for entry in blocks("resource") for kind, named in entry.items()
                 if unquote(kind) == "google_project_iam_member" for name, body in named.items() if unquote(name) == "scheduler_invoker"]
    assert unquote(invoker["role"]) == "roles/workflows.invoker"


def test_a_scheduled_argument_runs_the_workflow_with_the_rule_s_dates(tmp_path):
    """The argument the Scheduler job sends, decoded as the Executions API does, runs the generated
    workflow for the rule's dates (here the previous month, in Paris)."""
    import datetime as dt

    import cloud_workflows_emulator as cwe
    from native_jobs import dataform, stocked_fake
    from conftest import pipeline

    path = tmp_path / "sales-monthly.json"
    path.write_text(json.dumps(pipeline([[[dataform()]]], schedule={"cron": "30 2 1 * *", "time_zone": "Europe/Paris",
                                                                     "dates": "PREVIOUS_MONTH"})))
    plan = levelflow.load_plan(path, levelflow.load_params(PARAMS))
    from levelflow.backends import GenerateOptions, engine_for

    files = engine_for("cloud_workflows").generate(plan, GenerateOptions(step_mode="native"))
    argument = json.loads(json.dumps({"workflow_name": "sales-monthly", "workflow_properties": {
        "dataform_project_id": "sql-project", "dataform_location": "europe-west1", "repository_name": "warehouse"}}))
    fired = dt.datetime(2026, 3, 1, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))).timestamp()  # 02:30 in Paris
    with stocked_fake("sales-monthly") as fake:
        outcome = cwe.run(files, argument, google=fake, now=fired)
        assert outcome.error is None, outcome.error
        [compiled] = fake.calls("dataform.projects.locations.repositories.compilationResults.create")
    assert compiled.body["codeCompilationConfig"]["vars"] == {"start_date": "'2026-02-01'", "end_date": "'2026-02-28'"}


# --- notifications -----------------------------------------------------------------------------

def test_notify_topics_are_created_with_an_alert_policy_mailing_their_addresses(tmp_path):
    definitions = tmp_path / "defs"
    definitions.mkdir()
    base = json.loads((EXAMPLES / "demo_pipeline_cloud_workflows.json").read_text())
    composer = json.loads((EXAMPLES / "demo_pipeline_composer.json").read_text())
    (definitions / "a.json").write_text(json.dumps({**base, "notify": {"pubsub_topic": "alerts", "email": ["ops@example.com"]}}))
    (definitions / "b.json").write_text(json.dumps({**base, "notify": {"pubsub_topic": "alerts", "email": ["data@example.com"]}}))
    (definitions / "c.json").write_text(json.dumps({**composer, "notify": {"pubsub_topic": "dags", "on_success": True}}))
    overrides = {"local.quoted_definitions_dir": shlex.quote(str(definitions))}
    query = {key: render(value, overrides) for key, value in data_source("external", "definitions")["query"].items()}
    result = run_external(query, tmp_path)
    assert result.returncode == 0, result.stderr
    files = json.loads(json.loads(result.stdout)["output"])["files"]
    locals_ = module_locals()
    assert "found.notify != null && contains(local.deployed_engines, found.engine)" in locals_["notifying"]
    assert "notify.pubsub_topic => notify.email..." in locals_["notify_topics"]
    deployed = {"cloud_workflows"}  # the module's defaults: deploy_cloud_workflows only
    grouped: dict = {}
    for found in files:
        if found["notify"] is not None and found["engine"] in deployed:
            grouped.setdefault(found["notify"]["pubsub_topic"], []).append(found["notify"]["email"])
    notify_topics = {topic: sorted({email for emails in lists for email in emails}) for topic, lists in grouped.items()}
    assert notify_topics == {"alerts": ["data@example.com", "ops@example.com"]}

    topic = resource("google_pubsub_topic", "notify")
    assert unquote(topic["for_each"]) == "local.notify_topics" and unquote(topic["name"]) == "each.key"
    channel = resource("google_monitoring_notification_channel", "notify")
    assert unquote(channel["type"]) == "email" and "each.key" in str(channel["labels"])
    policy = resource("google_monitoring_alert_policy", "notify")
    [condition] = policy["conditions"][0]["condition_threshold"]
    assert 'resource.labels.topic_id = \\"${each.key}\\"' in condition["filter"] or "topic_id" in condition["filter"]
    assert "pubsub.googleapis.com/topic/send_message_operation_count" in condition["filter"]
    assert unquote(condition["comparison"]) == "COMPARISON_GT" and condition["threshold_value"] == 0
    assert "google_monitoring_notification_channel.notify[email].id" in policy["notification_channels"]


def test_native_workflows_may_publish_to_their_notify_topic(tmp_path):
    path = tmp_path / "alerting.json"
    path.write_text(json.dumps({**json.loads((EXAMPLES / "demo_pipeline_cloud_workflows.json").read_text()),
                                "notify": {"pubsub_topic": "alerts"}}))
    planned = run_levelflow(f"levelflow plan {path} --params {PARAMS} --step-mode native --format json")
    assert planned.returncode == 0, planned.stderr
    report = json.loads(planned.stdout)
    [grant] = [g for g in report["iam"] if g["role"] == "roles/pubsub.publisher"]
    assert grant["on"] == "topics/alerts"
    topic_grants = module_locals()["topic_grants"]
    assert 'startswith(grant.on, "topics/")' in topic_grants and 'trimprefix(grant.on, "topics/")' in topic_grants
    member = resource("google_pubsub_topic_iam_member", "workflows")
    assert unquote(member["topic"]) == "each.value.topic" and unquote(member["role"]) == "each.value.role"


def test_the_module_readme_names_every_file_output_and_variable():
    text = (MODULE / "README.md").read_text(encoding="utf-8")
    for path in MODULE.glob("*.tf"):
        if path.name not in ("variables.tf", "outputs.tf", "versions.tf"):
            assert f"`{path.name}`" in text, f"terraform/README.md does not say what {path.name} creates"
    outputs = [unquote(name) for entry in blocks("output") for name in entry]
    assert outputs and all(f"`{name}`" in text for name in outputs), [name for name in outputs if f"`{name}`" not in text]
    assert all(f"| `{name}` |" in text for name in variables())
