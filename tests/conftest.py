import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PARAMS = EXAMPLES / "platform-parameters-dev.json"


def run_cli(*args, cwd=None, env=None, timeout=120):
    """Run the real `levelflow` console entry point in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "levelflow", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def step(job_id, **extra):
    body = {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "async",
            "FUNCTION_ID_NAME": "dataform-tag-executor", "WAIT_TIME_SECONDS": "10",
            "ASYNC_TIMEOUT_LOOP_IN_MINUTES": "5"}
    body.update(extra)
    return body


def pipeline(levels, engine="cloud_workflows", **top):
    """levels: list of lists of lists of steps (level -> thread -> steps)."""
    return {
        "engine": engine,
        **top,
        "definition": [
            {"LEVEL_ID": str(li + 1), "THREADS": [
                {"THREAD_ID": str(ti + 1), "STEPS": steps} for ti, steps in enumerate(threads)
            ]}
            for li, threads in enumerate(levels)
        ],
    }


@pytest.fixture
def write_json(tmp_path):
    def write(data, name="pipe.json"):
        path = tmp_path / name
        path.write_text(json.dumps(data, indent=2))
        return path

    return write


@pytest.fixture(autouse=True)
def generated_workflows_follow_the_documented_rules(monkeypatch):
    """Every Cloud Workflows file any test generates passes tests/workflow_rules.py."""
    import workflow_rules
    from levelflow.backends.cloud_workflows import compiler as cloud_workflows

    generate_files = cloud_workflows.generate_files

    def checked(plan, options):
        files = generate_files(plan, options)
        problems = workflow_rules.check(files)
        assert not problems, "generated workflows break documented rules:\n" + "\n".join(problems)
        return files

    monkeypatch.setattr(cloud_workflows, "generate_files", checked)


@contextlib.contextmanager
def stub_executors(tmp_path, scenario: str):
    """`levelflow executors serve --scenario ... --log FILE` in its own process, scripted by the
    scenario YAML text; yields (its URL, the call log's path)."""
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(scenario)
    log = tmp_path / "calls.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "levelflow", "executors", "serve", "--port", "0", "--scenario",
                                str(scenario_file), "--log", str(log)], stderr=subprocess.PIPE, text=True)
    try:
        yield re.search(r"http://[\d.]+:\d+", process.stderr.readline()).group(), log
    finally:
        process.terminate()
        process.wait(10)
