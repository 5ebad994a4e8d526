"""The live view of `levelflow run` in a real terminal: tmux, at 100x24 and 200x50.

A run of examples/retail_daily.json on the simulator, with the first async step of every
thread of one level scripted never to finish, is left running in a detached tmux session;
once the run record says those steps are running, the screen tmux shows is read back
(`capture-pane`). The running level and each of its running steps must be on it, with the
whole view inside the terminal: no line wider than the terminal, no more lines than it has.
"""
from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

import levelflow
from conftest import EXAMPLES, PARAMS

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (scripts/test.sh installs it)")
RETAIL = EXAMPLES / "retail_daily.json"


def stuck_steps(level_index: int) -> list:
    """The first async step of each thread of that level: the steps scripted to keep running."""
    level = levelflow.load_plan(RETAIL).levels[level_index]
    return [next(s for s in thread.steps if s.type == "async") for thread in level.threads]


def running_job_ids(state_db) -> set[str]:
    if not state_db.exists():
        return set()
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as db:
        try:
            return {row[0] for row in db.execute("SELECT job_id FROM steps WHERE status = 'running'")}
        except sqlite3.OperationalError:  # the run record is still being created
            return set()


class Terminal:
    """A detached tmux server of its own (its own socket), one window of a fixed size."""

    def __init__(self, tmp_path, width: int, height: int):
        self.socket, self.width, self.height = str(tmp_path / "tmux.sock"), width, height

    def tmux(self, *args) -> str:
        return subprocess.run([TMUX, "-S", self.socket, *args], capture_output=True, text=True, timeout=30, check=True).stdout

    def start(self, command: str) -> None:
        # `sleep` keeps the pane (and the view's last frame) after the command ends
        self.tmux("new-session", "-d", "-x", str(self.width), "-y", str(self.height), f"{command}; sleep 600")

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-J").rstrip("\n").split("\n")

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.mark.parametrize("width,height", [(100, 24), (200, 50)])
@pytest.mark.parametrize("level_index", [0, 1], ids=["level-1-running", "level-2-running"])
def test_the_running_level_and_its_running_steps_are_on_screen(tmp_path, width, height, level_index):
    stuck = stuck_steps(level_index)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"default": {"polls": 1}, "jobs": {s.job_name: {"outcome": "never"} for s in stuck}}))
    state_db = tmp_path / "runs.db"
    command = shlex.join([sys.executable, "-m", "levelflow", "run", str(RETAIL), "--params", str(PARAMS),
                          f"--simulate={scenario}", "--time-scale", "0.01", "--state", str(state_db)])
    terminal = Terminal(tmp_path, width, height)
    terminal.start(command)
    try:
        wanted = {s.job_id for s in stuck}
        deadline = time.monotonic() + 90
        while not wanted <= running_job_ids(state_db):
            assert time.monotonic() < deadline, "the stuck steps never all ran; screen:\n" + "\n".join(terminal.screen())
            time.sleep(0.2)
        time.sleep(1.0)  # the view redraws 4 times a second
        screen = terminal.screen()
    finally:
        terminal.close()
    shown = "\n".join(screen)
    assert len(screen) <= height, shown
    assert all(len(line) <= width for line in screen), shown  # -J joins wrapped lines: none may have wrapped
    level_id = levelflow.load_plan(RETAIL).levels[level_index].level_id
    assert any(line.startswith(f"LEVEL {level_id} ") and "running" in line for line in screen), shown
    for step in stuck:
        rows = [line for line in screen if line.strip().startswith(step.job_id + " ")]
        assert rows and "running" in rows[0], f"running step {step.job_id} is not on screen:\n{shown}"
    assert not any("… 0 more" in line for line in screen), shown
    if level_index == 1:  # the finished level folds to one line
        assert sum(line.startswith("LEVEL 1 ") for line in screen) == 1
        assert not any(line.strip().startswith("L1_") for line in screen), shown
