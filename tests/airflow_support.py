"""Helpers for the tests that run generated DAGs in real Airflow 2 and 3 environments.

The environments are made by scripts/airflow-envs.sh (scripts/test.sh runs it first). Each
Airflow run is one subprocess of `tests/airflow_harness.py` in that environment, with no Google
credentials and a fresh copy of the environment's initialised metadata database.
"""
from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from levelflow.backends.composer import BUILDER_TASKS
from levelflow.backends.composer.compiler import component
from levelflow.executors import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_name("airflow_harness.py")
AIRFLOW_VERSIONS = {"airflow3": ROOT / ".venv-airflow3", "airflow2": ROOT / ".venv-airflow2"}

# Operator tasks of each executor's step, in run order (after the job_params task): the names
# `levelflow plan` counts with (the Composer engine's BUILDER_TASKS), which the real-Airflow
# tests check against the builders and the DAGs.
CATALOGUE_TASKS = {name: list(BUILDER_TASKS[entry.composer]) for name, entry in CATALOGUE.items()}


def airflow_venv(version: str) -> Path:
    venv = AIRFLOW_VERSIONS[version]
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"{venv.name} is missing: run `bash scripts/airflow-envs.sh` (scripts/test.sh does)")
    return venv


@functools.lru_cache(maxsize=None)
def can_unshare_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def clean_environment(version: str, work: Path) -> dict:
    """An Airflow environment with no credentials, its own HOME and its own database copy."""
    venv = airflow_venv(version)
    home = work / f"{version}-home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(venv / "airflow-home" / "airflow.db", home / "airflow.db")
    return {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


def run_harness(version: str, work: Path, *args, isolate_network: bool = False, timeout: int = 900) -> dict:
    """Run the harness in a clean environment: no credentials, own HOME, own database copy."""
    env = {**clean_environment(version, work),
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "30",
           "AIRFLOW__CORE__DAGS_FOLDER": str(args[1])}  # dag.test() in Airflow 3 serializes DAGs from there
    out = work / f"{version}-{args[0]}.json"
    command = [str(airflow_venv(version) / "bin" / "python"), str(HARNESS), args[0], str(args[1]), str(out), *map(str, args[2:])]
    if isolate_network and can_unshare_network():
        command = ["unshare", "-n", *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=work)
    assert result.returncode == 0, f"harness failed ({version}):\n{result.stderr[-4000:]}"
    return json.loads(out.read_text())


def step_executor(step: dict) -> str:
    if step["TYPE"] == "workflows":
        return "workflows"
    return step.get("COMPOSER_STEP") or step.get("FUNCTION_ID_NAME") or step.get("FUNCTION_NAME")


def run_order(steps: list[dict]) -> list[dict]:
    by_id = {str(step["JOB_ID"]): i for i, step in enumerate(steps)}
    order, i = [], 0
    while i < len(steps):
        order.append(steps[i])
        i = by_id[steps[i]["NEXT"]] if steps[i].get("NEXT") else i + 1
    return order


def step_task_ids(prefix: str, step: dict, mode: str) -> list[str]:
    """The task ids one step becomes, in run order: `<thread>.<step>` in functions mode, else
    `<thread>.<step>.<task>` (tasks of the thread's group; a step has no group of its own)."""
    name = f"{prefix}.{component(step['JOB_NAME'])}"
    if mode == "functions" and step["TYPE"] != "workflows":
        return [name]
    executor = step_executor(step)
    params = [] if executor == "workflows" else ["job_params"]
    return [f"{name}.{task}" for task in params + CATALOGUE_TASKS[executor]]


def expected_upstream(definition: dict, mode: str) -> dict[str, list[str]]:
    """Every task id of the DAG with its upstream task ids, as the semantics demand.

    Steps of a thread in order; each level's threads start after the previous level's `done`
    gate; `done` waits for the end of every thread. After a CONTINUE_IF_FAIL step, the next one
    waits for the step's `continue` gate and for the last non-gate task the step waited for.
    """
    upstream: dict[str, list[str]] = {}
    entry: list[str] = []
    for level in definition["definition"]:
        level_id = f"level_{component(level['LEVEL_ID'])}"
        ends: list[str] = []
        for thread in level["THREADS"]:
            prefix = f"{level_id}.thread_{component(thread['THREAD_ID'])}"
            waits = list(entry)
            for step in run_order(thread["STEPS"]):
                tasks = step_task_ids(prefix, step, mode)
                upstream[tasks[0]] = sorted(waits)
                for before, after in zip(tasks, tasks[1:]):
                    upstream[after] = [before]
                if _flag(step.get("CONTINUE_IF_FAIL")):
                    gate = f"{prefix}.{component(step['JOB_NAME'])}.continue"
                    upstream[gate] = [tasks[-1]]
                    waits = [gate] + [task for task in waits if not task.endswith(".continue")]
                else:
                    waits = [tasks[-1]]
            ends += [task for task in waits if task not in ends]
        upstream[f"{level_id}.done"] = sorted(ends)
        entry = [f"{level_id}.done"]
    return upstream


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "")
    return bool(value)


def thread_prefix(level: dict, thread: dict) -> str:
    return f"level_{component(level['LEVEL_ID'])}.thread_{component(thread['THREAD_ID'])}"


def gate_id(prefix: str, step: dict) -> str:
    return f"{prefix}.{component(step['JOB_NAME'])}.continue"


def run_airflow_script(version: str, work: Path, script: str, *args, timeout: int = 600) -> dict:
    """Run a Python script in an Airflow environment, as clean as run_harness's (no credentials,
    own HOME and database copy); the script gets an output path then ARGS and writes JSON there."""
    source, out = work / f"{version}-script.py", work / f"{version}-script.json"
    source.write_text(script)
    command = [str(airflow_venv(version) / "bin" / "python"), str(source), str(out), *map(str, args)]
    if can_unshare_network():
        command = ["unshare", "-n", *command]
    result = subprocess.run(command, env=clean_environment(version, work), capture_output=True, text=True,
                            timeout=timeout, cwd=work)
    assert result.returncode == 0, f"script failed ({version}):\n{result.stderr[-4000:]}"
    return json.loads(out.read_text())
