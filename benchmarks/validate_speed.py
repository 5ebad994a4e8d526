"""`levelflow validate`: time and memory for 1,000 to 100,000 steps, and start-up.

    .venv/bin/python benchmarks/validate_speed.py [--sizes 1000 10000 100000] [--repeat 5] [--src DIR]

Each definition has levels of 10 threads of 10 steps; the steps cycle through those of
examples/retail_daily.json (async, sync and workflows steps, string-quoted numbers,
STEP_PROPERTIES, CONTINUE_IF_FAIL, a NEXT jump per thread), renamed to be unique, written as
indented JSON like the examples. Each is validated by `python -m levelflow validate` in
--repeat fresh processes; the figures are medians of the whole process: wall seconds, CPU
seconds (user + system: steadier than wall time on a shared machine) and peak RSS, with the
figures per 1,000 steps to show linearity. The start-up row validates
examples/demo_pipeline_composer.json, beside `python -c "import yaml, json"`. --src measures
another copy of levelflow's sources (e.g. an older commit's, for a before / after).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "retail_daily.json"
SMALL = ROOT / "examples" / "demo_pipeline_composer.json"
THREADS_PER_LEVEL, STEPS_PER_THREAD = 10, 10


def definition(steps: int) -> dict:
    """`steps` steps in threads of 10, levels of 10 threads, cycling through retail_daily's steps."""
    templates = [step for level in json.loads(EXAMPLE.read_text())["definition"]
                 for thread in level["THREADS"] for step in thread["STEPS"] if "NEXT" not in step]
    levels = []
    for n in range(steps):
        li, ti, si = n // (THREADS_PER_LEVEL * STEPS_PER_THREAD), n // STEPS_PER_THREAD % THREADS_PER_LEVEL, n % STEPS_PER_THREAD
        if ti == si == 0:
            levels.append({"LEVEL_ID": str(li + 1), "THREADS": []})
        if si == 0:
            levels[-1]["THREADS"].append({"THREAD_ID": f"thread_{ti + 1}", "STEPS": []})
        step = copy.deepcopy(templates[n % len(templates)])
        step["JOB_ID"], step["JOB_NAME"] = f"J{n:06d}", f"{step['JOB_NAME']}_{n:06d}"
        if si == 2:  # one NEXT jump per thread, over the next step
            step["NEXT"] = f"J{n + 2:06d}"
        levels[-1]["THREADS"][-1]["STEPS"].append(step)
    return {"name": f"bench-{steps}", "engine": "cloud_workflows", "schedule": "0 3 * * *", "definition": levels}


def child_environment(src: Path) -> dict[str, str]:
    """This environment for a measured process, with the bytecode cache on (as for an installed
    package: a shell's PYTHONDONTWRITEBYTECODE would make every run compile levelflow again)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**environment, "PYTHONPATH": str(src)}


def run(args: list[str], src: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one fresh process."""
    start = time.perf_counter()
    pid = subprocess.Popen(args, stdout=subprocess.DEVNULL, env=child_environment(src)).pid
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit status {os.waitstatus_to_exitcode(status)})")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KiB


def measure(args: list[str], repeat: int, src: Path) -> tuple[float, float, float]:
    run(args, src)  # a first run, not counted, writes the bytecode cache
    runs = [run(args, src) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="levelflow's sources to measure (default: this checkout's)")
    parser.add_argument("--write", nargs=2, metavar=("STEPS", "FILE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.write:  # in a child process, so that this one stays small: a child's peak RSS counts its parent's at fork
        Path(options.write[1]).write_text(json.dumps(definition(int(options.write[0])), indent=2))
        return
    validate = [sys.executable, "-m", "levelflow", "validate"]
    print(f"python {sys.version.split()[0]}; {options.src}; median of {options.repeat} fresh processes each")
    print(f"{'definition':<36} {'seconds':>8} {'cpu s':>7} {'peak MiB':>9} {'s / 1k steps':>13} {'MiB / 1k steps':>15}")
    with tempfile.TemporaryDirectory() as temp:
        for steps in options.sizes:
            path = Path(temp) / f"bench-{steps}.json"
            subprocess.run([sys.executable, __file__, "--write", str(steps), str(path)], check=True)
            seconds, cpu, mib = measure([*validate, str(path)], options.repeat, options.src)
            label = f"{steps:,} steps ({path.stat().st_size / 2 ** 20:.1f} MiB of JSON)"
            print(f"{label:<36} {seconds:8.2f} {cpu:7.2f} {mib:9.0f} {seconds / steps * 1000:13.4f} {mib / steps * 1000:15.2f}")
    small = measure([*validate, str(SMALL)], options.repeat, options.src)
    floor = measure([sys.executable, "-c", "import yaml, json"], options.repeat, options.src)
    for label, (seconds, cpu, mib) in ((f"start-up: validate {SMALL.stem}", small), ('python -c "import yaml, json"', floor)):
        print(f"{label:<36} {seconds:8.3f} {cpu:7.3f} {mib:9.0f}")
    print(f"start-up: {small[0] / floor[0]:.2f}x the imports of yaml and json (CPU: {small[1] / floor[1]:.2f}x)")


if __name__ == "__main__":
    main()
