"""DagBag parse time of generated Composer DAGs of 1,000, 5,000 and 10,000 steps, beside dag-factory.

    .venv/bin/python benchmarks/dag_parse.py [--airflow-venv .venv-airflow3] [--sizes 1000 5000 10000]
                                             [--repeat 5] [--variants functions operators dag-factory]

Every size has the same shape (`shape`): 10 levels of threads of 10 steps (fewer levels and
steps below 100 steps), e.g. 10,000 steps = 10 levels x 100 threads x 10 steps. For each size
it generates one levelflow DAG in functions mode (one PythonOperator per step) and one in
operators mode (a job_params task plus a deferrable Dataflow operator per step), timing
`levelflow generate`, and writes the same pipeline for dag-factory: the same DAG (params, tags,
owner), the same level and thread task groups, one PythonOperator per step (functions mode's
tasks), a `done` EmptyOperator per level that waits for the end of each thread, each thread's
first step waiting for the previous level's `done` (levelflow's functions-mode DAG, task for
task and dependency for dependency). Two more dag-factory pipelines on request:
`dag-factory-operators`, levelflow's operators-mode DAG (per step a job_params PythonOperator,
then the Dataflow operator with the same arguments), and `dag-factory-bare`, the functions-mode
one without the DAG's params.

Each DAG file is parsed by a DagBag in a fresh process of the Airflow environment, with no
bytecode cache (as on the first parse of a new file); the figure is the DagBag's own per-file
load time (module import, including the provider modules the file imports, and DAG
construction; Airflow's own import is excluded), the median of --repeat processes; the
processes of the variants of one size alternate, so that a change of load on the machine
touches them alike. The DAG import time-out is raised for the benchmark, so that a file over
Airflow's 30 s is measured (and flagged) instead of failing.

dag-factory (`DAG_FACTORY`) is installed for the benchmark only, into a folder of its own
(`uv pip install --target ... --no-deps`) that only the dag-factory processes put on their
path; its dependencies (PyYAML, packaging, pathspec, typer) come with Airflow.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import levelflow  # noqa: E402
from levelflow.backends import GenerateOptions  # noqa: E402

DAG_FACTORY = "dag-factory==1.1.0"
IMPORT_TIMEOUT = 30  # Airflow's default dagbag_import_timeout, seconds
LEVELS, STEPS_PER_THREAD = 10, 10
VARIANTS = ("functions", "operators", "dag-factory", "dag-factory-operators", "dag-factory-bare")
DEFAULT_VARIANTS = VARIANTS[:3]
DAG_PARAMS = {"workflow_name": "", "start_date": "", "end_date": "", "workflow_properties": {}}  # as levelflow's DAG

PARSE = """
import json, sys, time
from airflow.models import DagBag
started = time.process_time()
bag = DagBag(sys.argv[1])
cpu = time.process_time() - started
assert not bag.import_errors, bag.import_errors
(stat,) = bag.dagbag_stats
seconds = stat.duration.total_seconds() if hasattr(stat.duration, "total_seconds") else stat.duration
print(json.dumps({"seconds": seconds, "cpu": cpu, "tasks": stat.task_num, "dags": stat.dag_num}))
"""


def shape(steps: int) -> tuple[int, int, int]:
    """(levels, threads per level, steps per thread): 10 levels of threads of 10 steps."""
    per_thread = min(STEPS_PER_THREAD, steps)
    levels = max(1, min(LEVELS, steps // per_thread))
    threads = steps // (levels * per_thread)
    if levels * threads * per_thread != steps:
        raise SystemExit(f"{steps} steps do not make {levels} levels of threads of {per_thread} steps: "
                         f"give a multiple of {levels * per_thread}")
    return levels, threads, per_thread


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


def dag_factory_yaml(name: str, steps: int, variant: str = "dag-factory") -> dict:
    """The pipeline for dag-factory (module docstring): levelflow's functions-mode DAG, or its
    operators-mode DAG (dag-factory-operators: a job_params PythonOperator then the Dataflow
    operator per step, with the same arguments), or the functions-mode DAG without the DAG's
    params (dag-factory-bare)."""
    levels, threads, per_thread = shape(steps)
    groups, tasks = {}, {}
    python = "airflow.providers.standard.operators.python.PythonOperator"
    dataflow = "airflow.providers.google.cloud.operators.dataflow.DataflowStartFlexTemplateOperator"
    for li in range(levels):
        groups[f"level_{li}"] = {}
        ends = []
        for ti in range(threads):
            group = f"level_{li}_thread_{ti}"
            groups[group] = {"parent_group_name": f"level_{li}"}
            last = f"done_{li - 1}" if li else None
            for si in range(per_thread):
                job = f"job_{li}_{ti}_{si}"
                step = [(job, {"operator": python, "python_callable": "json.dumps", "op_args": [job]})]
                if variant == "dag-factory-operators":
                    step = [(f"{job}_job_params", step[0][1]), (f"{job}_run", {
                        "operator": dataflow, "project_id": "{{ job_param(ti, 'project_id') }}",
                        "location": "{{ job_param(ti, 'location') }}", "body": "{{ job_param(ti, 'body') }}",
                        "deferrable": True, "poll_sleep": 30})]
                for task_name, task in step:
                    task.update(task_group_name=group, retries=0)
                    if last:
                        task["dependencies"] = [last]
                    tasks[task_name] = task
                    last = task_name
            ends.append(last)
        tasks[f"done_{li}"] = {"operator": "airflow.providers.standard.operators.empty.EmptyOperator",
                               "task_group_name": f"level_{li}", "dependencies": ends}
    dag = {"default_args": {"owner": "levelflow", "start_date": "2024-01-01"}, "schedule": None,
           "catchup": False, "params": DAG_PARAMS, "tags": ["levelflow", "functions"],
           "render_template_as_native_obj": True, "task_groups": groups, "tasks": tasks}
    if variant == "dag-factory-bare":
        del dag["params"]
    if variant == "dag-factory-operators":
        dag["tags"] = ["levelflow", "operators"]
    return {name: dag}


def parse(python: Path, folder: Path, path: list[Path]) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": str(folder.parent / "home"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(folder), "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "900",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.pathsep.join(map(str, path))}
    result = subprocess.run([str(python), "-c", PARSE, str(folder)], capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode:
        raise SystemExit(f"parse failed for {folder}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def install_dag_factory(python: Path, target: Path) -> None:
    uv = ROOT / ".venv" / "bin" / "uv"
    subprocess.run([str(uv), "pip", "install", "--quiet", "--no-deps", "--python", str(python), "--target", str(target),
                    DAG_FACTORY], check=True)
    missing = subprocess.run([str(python), "-c", "import yaml, packaging, pathspec, typer"], capture_output=True)
    if missing.returncode:
        raise SystemExit(f"dag-factory needs PyYAML, packaging, pathspec and typer in {python}:\n{missing.stderr.decode()}")


def write_variant(work: Path, steps: int, variant: str, params: Path) -> tuple[Path, float]:
    """The variant's DAG folder, and the seconds `levelflow generate` took (0 for dag-factory)."""
    folder = work / f"{steps}-{variant}" / "dags"
    folder.mkdir(parents=True)
    name = f"bench_{steps}"
    if variant.startswith("dag-factory"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(dag_factory_yaml(name, steps, variant)))
        (folder / f"{name}.py").write_text(
            "# airflow DAG built by dag-factory\nfrom pathlib import Path\n"
            "from dagfactory import load_yaml_dags\n\n"
            "load_yaml_dags(globals_dict=globals(), config_filepath=str(Path(__file__).with_suffix('.yaml')))\n")
        return folder, 0.0
    source = work / f"{name}.json"
    source.write_text(json.dumps(definition(name, steps)))
    started = time.perf_counter()
    levelflow.generate([source], params, folder, options=GenerateOptions(step_mode=variant))
    return folder, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-venv", type=Path, default=ROOT / ".venv-airflow3")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure (median)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS),
                        help="dag-factory-operators: operators mode's DAG built by dag-factory; dag-factory-bare: "
                             "functions mode's without the DAG's params (neither is a default)")
    args = parser.parse_args()
    python = args.airflow_venv / "bin" / "python"
    params = ROOT / "examples" / "platform-parameters-dev.json"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if any(variant.startswith("dag-factory") for variant in args.variants):
            install_dag_factory(python, work / "dag-factory")
        for steps in args.sizes:
            levels, threads, per_thread = shape(steps)
            folders, generated = {}, {}
            for variant in args.variants:
                folders[variant], generated[variant] = write_variant(work, steps, variant, params)
            stats: dict[str, list[dict]] = {variant: [] for variant in args.variants}
            for _ in range(args.repeat):
                for variant in args.variants:
                    path = [work / "dag-factory"] if variant.startswith("dag-factory") else []
                    stats[variant].append(parse(python, folders[variant], path))
            row = {"steps": steps, "shape": f"{levels} x {threads} x {per_thread}"}
            for variant in args.variants:
                size = sum(p.stat().st_size for p in folders[variant].iterdir())
                row[variant] = {"seconds": statistics.median(s["seconds"] for s in stats[variant]),
                                "cpu": statistics.median(s["cpu"] for s in stats[variant]),
                                "runs": sorted(round(s["seconds"], 2) for s in stats[variant]),
                                "tasks": stats[variant][0]["tasks"], "generate": generated[variant], "bytes": size}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print_tables(rows, args.variants, args.repeat)


def print_tables(rows: list[dict], variants: list[str], repeat: int) -> None:
    base = "dag-factory" if "dag-factory" in variants else None
    made = [v for v in variants if not v.startswith("dag-factory")]
    print(f"\nDagBag parse time (s), median of {repeat} fresh processes; in brackets the process's CPU time "
          f"(s); ratio = levelflow / dag-factory; * = over Airflow's {IMPORT_TIMEOUT} s import time-out")
    head = ["steps", "levels x threads x steps"] + [f"{v} (tasks)" for v in variants]
    pairs = [(v, base) for v in made if base]
    if "operators" in variants and "dag-factory-operators" in variants:
        pairs.append(("operators", "dag-factory-operators"))
    head += [f"{v} / {b}" for v, b in pairs]
    lines = [head]
    for row in rows:
        cells = [f"{row['steps']:,}", row["shape"]]
        for v in variants:
            flag = "*" if row[v]["seconds"] > IMPORT_TIMEOUT else ""
            cells.append(f"{row[v]['seconds']:.2f}{flag} [{row[v]['cpu']:.2f}] ({row[v]['tasks']:,})")
        cells += [f"{row[v]['seconds'] / row[b]['seconds']:.2f} [{row[v]['cpu'] / row[b]['cpu']:.2f}]" for v, b in pairs]
        lines.append(cells)
    _table(lines)
    if made:
        print("\nlevelflow generate (s) and DAG file size")
        lines = [["steps"] + [f"{v} generate" for v in made] + [f"{v} file" for v in made]]
        for row in rows:
            lines.append([f"{row['steps']:,}"] + [f"{row[v]['generate']:.2f}" for v in made]
                         + [f"{row[v]['bytes'] / 1e6:.1f} MB" for v in made])
        _table(lines)
    print("\nEach run (s): " + "; ".join(f"{row['steps']:,} {v}: {row[v]['runs']}" for row in rows for v in variants))


def _table(lines: list[list[str]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print("| " + " | ".join(cell.ljust(w) for cell, w in zip(lines[0], widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for line in lines[1:]:
        print("| " + " | ".join(cell.rjust(w) for cell, w in zip(line, widths)) + " |")


if __name__ == "__main__":
    main()
