"""DagBag parse time of generated DAGs of 10, 100 and 1,000 steps, beside dag-factory.

    .venv/bin/python benchmarks/dag_parse.py [--airflow-venv .venv-airflow3] [--sizes 10 100 1000]

For each size it generates one levelflow DAG in functions mode (one PythonOperator per step)
and one in operators mode (a job_params task plus a deferrable Dataflow operator per step), and
writes an equivalent dag-factory YAML pipeline (the same level and thread task groups, one
PythonOperator per step, levels chained). Each DAG file is parsed by a DagBag in a fresh
process of the Airflow environment; the figure is the DagBag's own per-file load time (module
import, including the provider modules the file imports, and DAG construction; Airflow's own
import is excluded), the median of --repeat fresh processes.

dag-factory is installed into the Airflow environment on first use (only there, only for this
benchmark: `uv pip install --python .venv-airflow3/bin/python dag-factory==1.1.0`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import levelflow  # noqa: E402
from levelflow.backends import GenerateOptions  # noqa: E402

DAG_FACTORY = "dag-factory==1.1.0"
SHAPES = {10: (2, 5, 1), 100: (5, 5, 4), 1000: (10, 10, 10)}  # steps: (levels, threads per level, steps per thread)

PARSE = """
import json, sys
from airflow.models import DagBag
bag = DagBag(sys.argv[1])
assert not bag.import_errors, bag.import_errors
(stat,) = bag.dagbag_stats
seconds = stat.duration.total_seconds() if hasattr(stat.duration, "total_seconds") else stat.duration
print(json.dumps({"seconds": seconds, "tasks": stat.task_num, "dags": stat.dag_num}))
"""


def shape(steps: int) -> tuple[int, int, int]:
    if steps in SHAPES:
        return SHAPES[steps]
    return 1, 1, steps


def definition(name: str, steps: int) -> dict:
    levels, threads, per_thread = shape(steps)
    return {"engine": "composer", "name": name, "definition": [
        {"LEVEL_ID": str(li), "THREADS": [
            {"THREAD_ID": str(ti), "STEPS": [
                {"JOB_ID": f"s{li}_{ti}_{si}", "JOB_NAME": f"job_{li}_{ti}_{si}", "TYPE": "async",
                 "COMPOSER_STEP": "dataflow-flextemplate-job-executor", "WAIT_TIME_SECONDS": 30}
                for si in range(per_thread)]}
            for ti in range(threads)]}
        for li in range(levels)]}


def dag_factory_yaml(name: str, steps: int) -> dict:
    levels, threads, per_thread = shape(steps)
    groups, tasks = {}, {}
    for li in range(levels):
        groups[f"level_{li}"] = {"dependencies": [f"level_{li - 1}"]} if li else {}
        for ti in range(threads):
            group = f"level_{li}_thread_{ti}"
            groups[group] = {"parent_group_name": f"level_{li}"}
            for si in range(per_thread):
                task = {"operator": "airflow.providers.standard.operators.python.PythonOperator",
                        "python_callable": "json.dumps", "op_args": [f"job_{li}_{ti}_{si}"], "task_group_name": group}
                if si:
                    task["dependencies"] = [f"job_{li}_{ti}_{si - 1}"]
                tasks[f"job_{li}_{ti}_{si}"] = task
    return {name: {"default_args": {"owner": "bench", "start_date": "2024-01-01"}, "schedule": None,
                   "catchup": False, "task_groups": groups, "tasks": tasks}}


def parse_seconds(python: Path, folder: Path) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": str(folder.parent / "home"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    result = subprocess.run([str(python), "-c", PARSE, str(folder)], capture_output=True, text=True, env=env, timeout=900)
    if result.returncode:
        raise SystemExit(f"parse failed for {folder}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ensure_dag_factory(python: Path) -> None:
    check = subprocess.run([str(python), "-c", "import dagfactory"], capture_output=True)
    if check.returncode:
        uv = ROOT / ".venv" / "bin" / "uv"
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(python), DAG_FACTORY], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-venv", type=Path, default=ROOT / ".venv-airflow3")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure (median)")
    args = parser.parse_args()
    python = args.airflow_venv / "bin" / "python"
    ensure_dag_factory(python)
    params = ROOT / "examples" / "platform-parameters-dev.json"
    print(f"{'steps':>6} {'variant':<22} {'tasks':>6} {'parse s':>8}")
    with tempfile.TemporaryDirectory() as work:
        for steps in args.sizes:
            for variant in ("levelflow functions", "levelflow operators", "dag-factory"):
                folder = Path(work) / f"{steps}-{variant.replace(' ', '-')}" / "dags"
                folder.mkdir(parents=True)
                name = f"bench_{steps}"
                if variant == "dag-factory":
                    (folder / f"{name}.yaml").write_text(yaml.safe_dump(dag_factory_yaml(name, steps)))
                    (folder / f"{name}.py").write_text(
                        "# airflow DAG built by dag-factory\nfrom pathlib import Path\n"
                        "from dagfactory import load_yaml_dags\n\n"
                        "load_yaml_dags(globals_dict=globals(), config_filepath=str(Path(__file__).with_suffix('.yaml')))\n")
                else:
                    source = Path(work) / f"{name}.json"
                    source.write_text(json.dumps(definition(name, steps)))
                    levelflow.generate([source], params, folder, options=GenerateOptions(step_mode=variant.split()[1]))
                stats = [parse_seconds(python, folder) for _ in range(args.repeat)]
                seconds = statistics.median(stat["seconds"] for stat in stats)
                print(f"{steps:>6} {variant:<22} {stats[0]['tasks']:>6} {seconds:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
