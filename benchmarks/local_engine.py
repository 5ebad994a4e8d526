"""How much the local engine itself costs, and whether threads really run side by side.

    .venv/bin/python benchmarks/local_engine.py

Prints the engine's overhead per step for 1,000 and 10,000 zero-duration simulated steps
(time scale 0: no waits at all, so the time is the engine's own: scheduling, the SQLite
record with one commit per state change, the protocol client), the same for 1,000 steps
against the stub executor server over HTTP (its own process; that figure includes the stub's
answers and a new loopback connection per call), and the wall time of one level of 10 threads of
one 1-second step (about 1 s when the threads run concurrently, 10 s if they did not).
"""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import levelflow
from levelflow.backends.local import LocalRunOptions, run_local
from levelflow.scenario import Scenario

PARAMS = Path(__file__).resolve().parents[1] / "examples" / "platform-parameters-dev.json"


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


def timed_run(plan, state: Path, options: LocalRunOptions) -> float:
    start = time.perf_counter()
    report = run_local(plan, state, options)
    elapsed = time.perf_counter() - start
    assert report["status"] == "succeeded", report["status"]
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        print(f"python {sys.version.split()[0]}; state database in {directory}")
        simulated = LocalRunOptions(scenario=Scenario(), time_scale=0)
        for levels, threads, steps in ((10, 10, 10), (20, 20, 25)):
            plan = make_plan(directory, levels, threads, steps)
            elapsed = timed_run(plan, directory / f"sim-{plan.step_count}.db", simulated)
            print(f"simulated, {plan.step_count:>6,} zero-duration steps ({levels} levels x {threads} threads x {steps}): "
                  f"{elapsed:6.2f} s, {elapsed / plan.step_count * 1000:.2f} ms per step")
        with stub_process() as url:
            plan = make_plan(directory, 10, 10, 10)
            elapsed = timed_run(plan, directory / "http.db", LocalRunOptions(executor_url=url, time_scale=0))
            print(f"HTTP stub, {plan.step_count:>6,} zero-duration steps (2 calls each):          "
                  f"{elapsed:6.2f} s, {elapsed / plan.step_count * 1000:.2f} ms per step")
        plan = make_plan(directory, 1, 10, 1)
        scenario = Scenario.model_validate({"default": {"duration_s": 1}})
        elapsed = timed_run(plan, directory / "parallel.db", LocalRunOptions(scenario=scenario, time_scale=1))
        print(f"one level of 10 threads of one 1-second step (WAIT_TIME_SECONDS 1): {elapsed:.2f} s wall")


if __name__ == "__main__":
    main()
