"""The Composer DAG's fixed code as real modules: dag_runtime.py and the builder modules.

The modules are imported in real Airflow 3 and 2 (an import or name error in a builder fails
here, not in a user's Composer environment); the text a generated DAG holds of them follows
the rule of `levelflow.backends.composer.dag_source`, and a DAG that uses every executor has
no undefined or unused name.
"""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from levelflow.backends.composer import dag_source
from levelflow.backends.composer.compiler import render
from levelflow.executors import CATALOGUE

from airflow_support import CATALOGUE_TASKS, ROOT, run_airflow_script

VERSIONS = ["airflow3", "airflow2"]
MODULES = {entry.name: entry.composer for entry in CATALOGUE.values()}

IMPORT_SCRIPT = r'''
import importlib
import inspect
import json
import sys
import traceback

out, src, *modules = sys.argv[1:]
sys.path.insert(0, src)
result = {"errors": {}, "builders": {}}
runtime = importlib.import_module("levelflow.backends.composer.dag_runtime")
runtime.PIPELINE.update(project_id="p", region="europe-west1")  # what build_workflows reads from the literal
step = {"wait_seconds": 7, "timeout_seconds": 60, "retries": 0, "workflow_id": "child"}


def make(operator, task_id, **kwargs):
    """The builder's tasks as data: no DAG; every "{{ ... }}" argument must be a template field."""
    templates = sorted(name for name, value in kwargs.items() if isinstance(value, str) and "{{" in value)
    return {"task_id": task_id, "class": operator.__name__, "base_classes": [c.__name__ for c in operator.__mro__],
            "untemplated": [name for name in templates if name not in operator.template_fields]}


for name in modules:
    try:
        module = importlib.import_module(f"levelflow.backends.composer.builders.{name}")
        build = getattr(module, f"build_{name}")
        result["builders"][name] = {"parameters": list(inspect.signature(build).parameters),
                                    "tasks": build(step, make)}
    except Exception:
        result["errors"][name] = traceback.format_exc()
result["job_requests"] = sorted(runtime.JOB_REQUESTS)
result["macros"] = sorted(runtime.MACROS)
with open(out, "w") as handle:
    json.dump(result, handle, indent=1, sort_keys=True)
'''


@pytest.fixture(scope="module", params=VERSIONS)
def imported(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"builders-{request.param}")
    return request.param, run_airflow_script(request.param, work, IMPORT_SCRIPT, ROOT / "src", *MODULES.values())


def test_every_builder_module_imports_in_real_airflow(imported):
    version, result = imported
    assert result["errors"] == {}, (version, result["errors"])
    assert set(result["builders"]) == set(MODULES.values())
    for executor, module in MODULES.items():
        builder = result["builders"][module]
        assert builder["parameters"] == ["step", "make"], (version, module)
        assert [task["task_id"] for task in builder["tasks"]] == CATALOGUE_TASKS[executor], (version, module)
        assert all(task["untemplated"] == [] for task in builder["tasks"]), (version, builder["tasks"])
        assert all("BaseOperator" in task["base_classes"] for task in builder["tasks"]), (version, module)
    # every executor with job files registers its request function; the Dataform builder its macro
    assert result["job_requests"] == sorted(entry.name for entry in CATALOGUE.values() if entry.needs_job_params)
    assert {"job_param", "sibling", "unique_id", "dataform_invocation"} <= set(result["macros"])


def test_a_dag_with_every_executor_has_no_undefined_or_unused_name(tmp_path):
    """The DAG holds the executors.py functions and constants its builders use: ruff finds
    every name defined (F821) and none unused (F401, F811) in the file as the golden files are linted."""
    text = render({"dag_id": "all"}, list(CATALOGUE.values()))
    path = tmp_path / "all_executors.py"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,B",
                             "--ignore", "E501,B905", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    module = ast.parse(text)
    assert isinstance(module.body[1], ast.ImportFrom) and module.body[1].module == "__future__"
    imports = [node for node in ast.walk(module) if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = [node.module if isinstance(node, ast.ImportFrom) else alias.name
               for node in imports for alias in node.names]
    assert modules.count("__future__") == 1 and not any(name and name.startswith("levelflow") for name in modules)
    defined = [node.name for node in module.body if isinstance(node, ast.FunctionDef)]
    assert len(defined) == len(set(defined))  # each function once
    for entry in CATALOGUE.values():
        assert f"build_{entry.composer}" in defined


def test_included_text_drops_what_serves_the_module_form_only(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text('"""Module docstring."""\nfrom __future__ import annotations\n\n'
                    "from airflow.providers.google.cloud.operators.bigquery import (\n    BigQueryInsertJobOperator,\n)\n"
                    "from levelflow.backends.composer.dag_runtime import JOB_REQUESTS\n"
                    "from levelflow.executors import bq_request\n\n"
                    "# registered by the module\nJOB_REQUESTS['x'] = bq_request\n")
    text = dag_source.module_text(path)
    assert text.imports == ("from airflow.providers.google.cloud.operators.bigquery import (\n"
                            "    BigQueryInsertJobOperator,\n)",)
    assert text.body == "# registered by the module\nJOB_REQUESTS['x'] = bq_request\n"
    assert text.executors_names == ("bq_request",)
    # a name brings the executors.py definitions it uses, each once, in executors.py's order
    done: set[str] = set()
    first = dag_source.executors_source(("bq_request",), done)
    assert [chunk.split("(")[0] for chunk in first] == ["def bq_query_configuration", "def bq_request"]
    again = dag_source.executors_source(("bq_query_configuration", "BQ_REPOSITORY_KEYS"), done)
    assert [chunk.split(" =")[0] for chunk in again] == ["BQ_REPOSITORY_KEYS"]


@pytest.mark.parametrize("line", ["from levelflow.plan import Plan", "from ..dag_runtime import MACROS",
                                  "import levelflow.executors"])
def test_a_builder_may_import_from_levelflow_only_the_runtime_and_the_executors(tmp_path, line):
    path = tmp_path / "bad.py"
    path.write_text(f'"""A builder."""\n{line}\n\n\ndef build_bad(step, make):\n    return []\n')
    with pytest.raises(ValueError, match="imports from levelflow only"):
        dag_source.module_text(path)


SAME_AS_AIRFLOW_SCRIPT = r'''
import json
import sys

out, *dag_files = sys.argv[1:]
import types

try:
    from airflow.sdk.definitions.param import process_params
except ImportError:  # Airflow 2: process_params(dag, task, dag_run) reads dag_run.conf
    from airflow.models.param import process_params as _process_params

    def process_params(dag, task, conf, suppress_exception):
        return _process_params(dag, task, types.SimpleNamespace(conf=conf), suppress_exception=suppress_exception)


def build(text, official):
    """The DAG of a generated file; `official`: dependencies through set_upstream, and the params
    given to the DAG's constructor, as Airflow's documentation builds a DAG."""
    namespace = {"__name__": "dag_module"}
    exec(compile(text.replace("\ndag = build_dag()\n", "\n"), "dag_module", "exec"), namespace)
    if official:
        namespace["depend"] = lambda task, upstream: task.set_upstream(list(upstream))
        real_dag = namespace["DAG"]
        namespace["DAG"] = lambda **kwargs: real_dag(params=namespace["run_params"](), **kwargs)
    return namespace["build_dag"]()


def shape(dag):
    conf = {"start_date": "2024-03-01", "workflow_properties": {"k": "v"}}
    return {task_id: {"upstream": sorted(task.upstream_task_ids), "downstream": sorted(task.downstream_task_ids),
                      "run_params": json.loads(json.dumps(dict(process_params(dag, task, conf, suppress_exception=False)))),
                      "group": task.task_group.group_id if task.task_group else None}
            for task_id, task in sorted(dag.task_dict.items())} | {"(dag params)": dict(dag.params)}


result = {}
for path in dag_files:
    text = open(path).read()
    result[path] = {"levelflow": shape(build(text, official=False)), "airflow": shape(build(text, official=True))}
with open(out, "w") as handle:
    json.dump(result, handle, indent=1, sort_keys=True, default=str)
'''


@pytest.mark.parametrize("version", VERSIONS)
def test_the_dag_is_the_one_airflows_own_calls_build(version, tmp_path):
    """`depend` and the params given after the tasks (dag_runtime, for linear build time) make the
    same DAG as set_upstream and the DAG's params argument: every task's dependencies, group
    and the params a run gives it (Airflow's process_params, with a run's conf)."""
    files = sorted((ROOT / "tests" / "golden").glob("composer-*/*.py"))
    result = run_airflow_script(version, tmp_path, SAME_AS_AIRFLOW_SCRIPT, *files)
    assert len(result) == len(files) >= 2
    for path, built in result.items():
        assert built["levelflow"] == built["airflow"], (version, path)
        tasks = [key for key in built["levelflow"] if not key.startswith("(")]
        assert sum(len(built["levelflow"][task]["upstream"]) for task in tasks) >= len(tasks) - 5, path  # a real graph
        assert built["levelflow"][tasks[0]]["run_params"]["start_date"] == "2024-03-01"
