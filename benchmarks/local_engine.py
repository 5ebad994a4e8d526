"""How much the local engine itself costs, and whether threads really run side by side.

    .venv/bin/python benchmarks/local_engine.py [--runs 5] [--rows sim1k,http1k,...]

Prints a table, one row per figure, each the median of `--runs` fresh processes (the script
runs itself with `--row NAME` for each, so no row inherits another's warm caches, threads or
connections), with the target beside it and the engine process's CPU time per step (the
machine may be shared: CPU time says how much of the wall time was the engine's own work):

- `sim1k`, `sim10k`: the engine's overhead per step for 1,000 and 10,000 zero-duration
  simulated steps (time scale 0: no waits at all, so the time is the engine's own: scheduling,
  the SQLite record, the protocol client and the in-process double);
- `http1k`: the same for 1,000 steps over 10 threads against `levelflow executors serve` in
  its own process (each step two calls, each through both hops of the double over loopback
  HTTP: the figure includes the stub's answers);
- `par10`: the wall time of one level of 10 threads of one 1-second step (about 1 s when the
  threads run concurrently, 10 s if they did not);
- `par100`: one level of 100 one-second threads at max parallel 20: 5 waves of 1 s.

To compare with another checkout, run this file with that checkout's `src` first on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import levelflow
from levelflow.backends.local import LocalRunOptions, run_local
from levelflow.scenario import Scenario

PARAMS = Path(__file__).resolve().parents[1] / "examples" / "platform-parameters-dev.json"

# name: (label, unit, target, shape (levels, threads, steps), how)
ROWS = {
    "sim1k": ("simulated, 1,000 zero-duration steps (10 levels x 10 threads x 10)", "ms/step", 0.2, (10, 10, 10), "sim"),
    "sim10k": ("simulated, 10,000 zero-duration steps (20 levels x 20 threads x 25)", "ms/step", 0.2, (20, 20, 25), "sim"),
    "http1k": ("HTTP stub, 1,000 zero-duration steps (10 x 10 x 10), 2 calls each", "ms/step", 2.0, (10, 10, 10), "http"),
    "par10": ("one level of 10 threads of one 1-second step (10 s if serial)", "s wall", 1.1, (1, 10, 1), "parallel"),
    "par100": ("one level of 100 one-second threads, max parallel 20", "s wall", 5.25, (1, 100, 1), "parallel"),
}


def make_plan(directory: Path, levels: int, threads: int, steps: int, **step_keys):
    definition = {"engine": "cloud_workflows", "name": f"bench-{levels}x{threads}x{steps}", "definition": [
        {"LEVEL_ID": str(li), "THREADS": [
            {"THREAD_ID": str(t), "STEPS": [
                {"JOB_ID": f"L{li}T{t}S{s}", "JOB_NAME": f"job_{li}_{t}_{s}", "TYPE": "async",
                 "FUNCTION_ID_NAME": "dataform-tag-executor", "WAIT_TIME_SECONDS": "1", **step_keys}
                for s in range(steps)]}
            for t in range(threads)]}
        for li in range(levels)]}
    path = directory / f"{definition['name']}.json"
    path.write_text(json.dumps(definition))
    return levelflow.load_plan(path, levelflow.load_params(PARAMS))


@contextlib.contextmanager
def stub_process():
    """`levelflow executors serve` in its own process, as a user would run it."""
    process = subprocess.Popen([sys.executable, "-m", "levelflow", "executors", "serve", "--port", "0"],
                               stderr=subprocess.PIPE, text=True)
    try:
        yield re.search(r"http://[\d.]+:\d+", process.stderr.readline()).group()
    finally:
        process.terminate()
        process.wait(10)


def timed_run(plan, state: Path, options: LocalRunOptions) -> tuple[float, float]:
    """Wall and CPU seconds (this process, every thread) of one run to its end."""
    start, cpu = time.perf_counter(), _cpu()
    report = run_local(plan, state, options)
    elapsed, used = time.perf_counter() - start, _cpu() - cpu
    assert report["status"] == "succeeded", report["status"]
    return elapsed, used


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str) -> dict:
    """One row, in this process: {"value": figure in the row's unit, "cpu_ms_per_step": ...}."""
    _label, _unit, _target, shape, how = ROWS[name]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        plan = make_plan(directory, *shape)
        state = directory / "runs.db"
        if how == "sim":
            elapsed, cpu = timed_run(plan, state, LocalRunOptions(scenario=Scenario(), time_scale=0))
        elif how == "http":
            with stub_process() as url:
                elapsed, cpu = timed_run(plan, state, LocalRunOptions(executor_url=url, time_scale=0))
        else:
            scenario = Scenario.model_validate({"default": {"duration_s": 1}})
            elapsed, cpu = timed_run(plan, state, LocalRunOptions(scenario=scenario, time_scale=1, max_parallel=20))
    steps = plan.step_count
    value = elapsed / steps * 1000 if how != "parallel" else elapsed
    return {"value": value, "cpu_ms_per_step": cpu / steps * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per row (the median is shown)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"rows to measure, of {', '.join(ROWS)}")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)  # one measurement, as JSON (used by the table)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(measure(args.row)))
        return
    print(f"python {sys.version.split()[0]}; levelflow from {Path(levelflow.__file__).parent}; "
          f"median of {args.runs} fresh processes per row")
    print(f"{'':70} {'median':>16} {'min..max':>12} {'target':>9} {'cpu ms/step':>12}")
    for name in args.rows.split(","):
        label, unit, target, _shape, _how = ROWS[name]
        results = []
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, __file__, "--row", name], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"row {name} failed:\n{done.stderr}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        values = [r["value"] for r in results]
        median = statistics.median(values)
        cpu = statistics.median(r["cpu_ms_per_step"] for r in results)
        mark = "ok" if median <= target else "MISSED"
        digits = 3 if unit == "ms/step" else 2
        figure = f"{median:.{digits}f} {unit}"
        spread = f"{min(values):.{digits}f}..{max(values):.{digits}f}"
        print(f"{label:70} {figure:>16} {spread:>12} {'<= ' + format(target, 'g'):>9} {cpu:>12.3f}  {mark}", flush=True)


if __name__ == "__main__":
    main()
