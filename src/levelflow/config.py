"""Project settings: a `levelflow.toml`, or the `[tool.levelflow]` table of a `pyproject.toml`,
found by walking up from the working directory (the nearest directory holding either).

    definitions = "workflow-definitions"     # what validate, plan and generate read when given no PATHS
    env = "dev"                              # the environment used when neither --params nor --env is given
    engine = "composer"                      # --engine's default (it overrides the definitions' own engine)
    step_mode = {composer = "operators"}     # --step-mode's default, per engine (or one word for every engine)
    state = ".levelflow/runs.db"             # the run record of run, runs and graph --run
    [params]                                 # ([tool.levelflow.params] in pyproject.toml)
    prod = "deploy/prod-parameters.json"     # an environment's parameters file, when not the usual name

`--env NAME` (or `env`) picks the environment's parameters: the file `[params]` names, else
`platform-parameters-<NAME>.json` in the definitions directory (else in the project's root).
Paths are relative to the file's directory. Each setting can also come from an environment
variable (LEVELFLOW_DEFINITIONS, LEVELFLOW_ENV, LEVELFLOW_ENGINE, LEVELFLOW_STEP_MODE,
LEVELFLOW_STATE; LEVELFLOW_PARAMS names a parameters file); a command's flag beats both, and
an environment variable beats the file. An unknown key is an error, never ignored.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import LevelflowError, Problem

FILE_NAME = "levelflow.toml"
KEYS = {
    "definitions": "a directory (text)",
    "env": "an environment name (text)",
    "engine": "an engine name (text)",
    "step_mode": "a step mode (text), or a table of engine = step mode",
    "state": "a run record file (text)",
    "params": "a table of environment = parameters file",
}
ENVIRONMENT = {key: f"LEVELFLOW_{key.upper()}" for key in ("definitions", "env", "engine", "step_mode", "state", "params")}
_ENV_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Settings:
    """The effective settings: `values` by key, `sources` saying where each came from."""

    file: Optional[Path] = None  # the file read, if any
    root: Path = field(default_factory=Path.cwd)  # what relative paths are relative to
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def path(self, key: str) -> Optional[Path]:
        value = self.values.get(key)
        if value is None:
            return None
        source = self.sources.get(key, "")
        return Path(value) if source.startswith("LEVELFLOW_") or Path(value).is_absolute() else self.root / value

    def step_mode(self, engine: str) -> Optional[str]:
        modes = self.values.get("step_mode")
        return modes.get(engine) if isinstance(modes, dict) else modes

    def params_file(self, env: Optional[str]) -> Optional[Path]:
        """The parameters file of environment `env` (or of the settings' `env`), or the one
        LEVELFLOW_PARAMS names; None when there is neither."""
        if env is None and self.sources.get("params") == ENVIRONMENT["params"]:  # the variable beats the file's env
            return self.path("params")
        env = env or self.values.get("env")
        if env is None:
            return None
        if not _ENV_NAME.fullmatch(env):
            raise LevelflowError([Problem(self.sources.get("env", "--env"), f"an environment name is letters, digits, '_', '-' "
                                                                           f"or '.', got {env!r}")])
        configured = self.values.get("params")
        named: dict = configured if isinstance(configured, dict) else {}
        if env in named:
            return self.root / named[env]
        folder = self.path("definitions") or self.root
        return folder / f"platform-parameters-{env}.json"


def load_settings(start: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None) -> Settings:
    """The settings for a command run in `start` (the working directory)."""
    environ = os.environ if environ is None else environ
    file, table = _find_file(Path(start or Path.cwd()).resolve())
    values, sources = {}, {}
    if file is not None:
        label = file.name if file.name == FILE_NAME else f"{file.name} [tool.levelflow]"
        for key, value in table.items():
            values[key], sources[key] = value, label
    for key, variable in ENVIRONMENT.items():
        if environ.get(variable):
            values[key], sources[key] = environ[variable], variable
    return Settings(file, file.parent if file else Path(start or Path.cwd()).resolve(), values, sources)


def _find_file(start: Path) -> tuple[Optional[Path], dict]:
    for folder in (start, *start.parents):
        own = folder / FILE_NAME
        if own.is_file():
            return own, _checked(own, _read(own))
        project = folder / "pyproject.toml"
        if project.is_file():
            table = _read(project).get("tool", {}).get("levelflow")
            if table is not None:
                return project, _checked(project, table)
    return None, {}


def _read(path: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LevelflowError([Problem(str(path), f"cannot read the settings: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+), column (\d+)", str(exc))
        problem = Problem(str(path), f"not valid TOML: {exc}", (), int(line[1]), int(line[2])) if line else \
            Problem(str(path), f"not valid TOML: {exc}")
        raise LevelflowError([problem]) from None


def _checked(path: Path, table: Any) -> dict:
    where = "[tool.levelflow]" if path.name == "pyproject.toml" else "the file"
    if not isinstance(table, dict):
        raise LevelflowError([Problem(str(path), f"{where} must be a table of settings")])
    problems = []
    for key, value in table.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the settings are {', '.join(KEYS)}"
            problems.append(Problem(str(path), f"{key}: unknown setting; {hint}", (key,)))
        elif not _valid(key, value):
            problems.append(Problem(str(path), f"{key}: must be {KEYS[key]}, got {value!r}", (key,)))
    if problems:
        raise LevelflowError(problems)
    return table


def _valid(key: str, value: Any) -> bool:
    if key == "params":
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if key == "step_mode" and isinstance(value, dict):
        return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return isinstance(value, str) and bool(value)
