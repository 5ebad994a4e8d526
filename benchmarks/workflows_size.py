"""Size and speed of the Cloud Workflows backend.

    .venv/bin/python benchmarks/workflows_size.py [--original DIR] [--runs N]

Prints, for each step mode (functions, native), the source bytes each further async step costs
and the largest pipeline that fits one workflow file (128 KB); then generation time in process (median of a few runs) for 10 to 10,000
steps, and whole-process `levelflow generate` (fresh processes: median seconds and peak memory).
With --original DIR (a checkout of the original AEF generator, whose `workflows_generator.py`
takes DEFINITION PARAMETERS OUTPUT), the original runs on the same definitions in the same way,
and the ratio is printed. Pipelines have levels of 5 threads of 4 async steps, like a typical
ingestion pipeline.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from levelflow import load_params, load_plan
from levelflow.backends import GenerateOptions
from levelflow.backends.cloud_workflows import ENGINE
from levelflow.backends.cloud_workflows.compiler import LevelflowWarning, MAX_SOURCE_BYTES, generate_workflows

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "examples" / "platform-parameters-dev.json")
THREADS_PER_LEVEL, STEPS_PER_THREAD = 5, 4


def definition(steps: int) -> dict:
    """`steps` async steps in threads of 4, levels of 5 threads."""
    jobs = [{"JOB_ID": f"J{n:05d}", "JOB_NAME": f"load_table_{n:05d}", "TYPE": "async",
             "FUNCTION_ID_NAME": "dataflow-flextemplate-job-executor", "WAIT_TIME_SECONDS": "30",
             "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "30"} for n in range(steps)]
    threads = [jobs[i:i + STEPS_PER_THREAD] for i in range(0, steps, STEPS_PER_THREAD)]
    levels = [threads[i:i + THREADS_PER_LEVEL] for i in range(0, len(threads), THREADS_PER_LEVEL)]
    return {"engine": "cloud_workflows", "definition": [
        {"LEVEL_ID": str(li + 1), "THREADS": [{"THREAD_ID": str(ti + 1), "STEPS": t} for ti, t in enumerate(level)]}
        for li, level in enumerate(levels)]}


def generate(steps: int, folder: Path, mode: str = "functions") -> dict[str, str]:
    path = folder / f"bench_{steps}.json"
    if not path.exists():
        path.write_text(json.dumps(definition(steps)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LevelflowWarning)  # big pipelines polled to their time-outs
        plan = load_plan(path, PARAMS)
        return generate_workflows(plan) if mode == "functions" else ENGINE.generate(plan, GenerateOptions(step_mode=mode))


def size(files: dict[str, str]) -> int:
    return sum(len(text.encode()) for text in files.values())


def largest_single_file(folder: Path, mode: str) -> int:
    low, high = 1, 4000
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(generate(middle, folder, mode)) == 1 else (low, middle)
    return low


# A small launcher measures each run: a child's peak RSS counts from its fork, so it must be
# forked from a small process, not from this one after it generated 10,000 steps.
LAUNCHER = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
            "code = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
            "print(code, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def whole_process(command: list[str], runs: int) -> tuple[float, float]:
    """Median seconds and median peak RSS (MiB) of `command` in fresh processes (after one not
    counted, which writes the bytecode cache: the measured ones start as an installed package does,
    whatever the shell's PYTHONDONTWRITEBYTECODE)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    times, peaks = [], []
    for run in range(runs + 1):
        result = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True,
                                env={**environment, "PYTHONWARNINGS": "ignore"})
        if run == 0:
            continue
        code, seconds, peak_kib = result.stdout.split()
        if code != "0":
            raise SystemExit(f"{' '.join(command)} failed (exit {code})")
        times.append(float(seconds))
        peaks.append(int(peak_kib) / 1024)
    return statistics.median(times), statistics.median(peaks)


def compare_processes(folder: Path, runs: int, original: "Path | None") -> None:
    print(f"\nwhole process, median of {runs} fresh processes (peak RSS):")
    params = ROOT / "examples" / "platform-parameters-dev.json"
    for steps in (10, 1_000, 10_000):
        definition_path = folder / f"bench_{steps}.json"
        definition_path.write_text(json.dumps(definition(steps)))
        ours = whole_process([sys.executable, "-m", "levelflow", "generate", str(definition_path), "--params", str(params),
                              "--out", str(folder / f"out_{steps}")], runs)
        line = f"{steps:>6,} steps: levelflow {ours[0]:6.3f} s {ours[1]:6.0f} MiB"
        if original is not None:
            theirs = whole_process([sys.executable, str(original / "workflows_generator.py"), str(definition_path), str(params),
                                    str(folder / f"original_{steps}.yaml")], runs)
            line += f" | original {theirs[0]:6.3f} s {theirs[1]:6.0f} MiB | ratio {ours[0] / theirs[0]:.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, help="a checkout of the original generator (has workflows_generator.py)")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per whole-process figure (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        for mode in ENGINE.step_modes:
            base, more = size(generate(100, folder, mode)), size(generate(200, folder, mode))
            print(f"{mode} mode: bytes per further async step: {(more - base) / 100:.0f} "
                  f"(100 -> 200 steps: {base:,} -> {more:,} bytes)")
            largest = largest_single_file(folder, mode)
            print(f"{mode} mode: largest single-file pipeline: {largest:,} steps "
                  f"({size(generate(largest, folder, mode)):,} of {MAX_SOURCE_BYTES:,} bytes)")
        for steps in (10, 100, 1_000, 10_000):
            runs = 5 if steps < 10_000 else 3
            times, files = [], {}
            for _ in range(runs):
                start = time.perf_counter()
                files = generate(steps, folder)
                times.append(time.perf_counter() - start)
            print(f"{steps:>6,} steps: {statistics.median(times) * 1000:8.1f} ms median of {runs}, "
                  f"{len(files)} file(s), {size(files):,} bytes")
        compare_processes(folder, args.runs, args.original)


if __name__ == "__main__":
    sys.exit(main())
