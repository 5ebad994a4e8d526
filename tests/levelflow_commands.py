"""Helpers shared by the Terraform and CI example tests: are the `levelflow ...` command lines
that our deployment files run real commands with real flags, and what do they produce?"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import levelflow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PARAMS = EXAMPLES / "platform-parameters-dev.json"


def search_path(*first: Path) -> str:
    """PATH with the given directories, then the one holding this venv's `levelflow` script."""
    return os.pathsep.join([*map(str, first), str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@lru_cache(maxsize=None)
def help_text(subcommand: str | None) -> subprocess.CompletedProcess:
    args = [subcommand, "--help"] if subcommand else ["--help"]
    return subprocess.run([sys.executable, "-m", "levelflow", *args], capture_output=True, text=True)


def subcommand_of(words: list[str]) -> str | None:
    return None if len(words) < 2 or words[1].startswith("-") else words[1]


def unknown_flags(command: str) -> list[str]:
    """Flags of `command` that `levelflow [SUBCOMMAND] --help` does not list."""
    words = shlex.split(command)
    assert words[0] == "levelflow", command
    shown = help_text(subcommand_of(words))
    assert shown.returncode == 0, f"{command!r}: no such levelflow command\n{shown.stderr}"
    flags = [word.split("=", 1)[0] for word in words[1:] if word.startswith("-")]
    return [flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown.stdout)]


def run_levelflow(command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    return subprocess.run([sys.executable, "-m", "levelflow", *words[1:]], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def example_definitions() -> dict[str, list[Path]]:
    """The example definition files by engine, read with levelflow's own API."""
    by_engine: dict[str, list[Path]] = {}
    for path in levelflow.find_definitions([EXAMPLES]):
        by_engine.setdefault(levelflow.load_pipeline(path).engine, []).append(path)
    return by_engine


def output_name(path: Path) -> str:
    return levelflow.load_pipeline(path).name or path.stem
