"""Engines: each compiles a Plan into deployable files. One package per engine, registered here.

An engine is one `Engine` object, declared in its package's `__init__.py` and registered once.
Everything the rest of levelflow knows about an engine comes from it: the CLI's `--engine` and
`--step-mode` choices, what `validate` checks, the figures of `levelflow plan`, the limits
table of docs/platform-limits.md (`scripts/engine_docs.py`) and `generate` itself.

How to add an engine (as sqlglot adds a dialect):

1. Create `backends/<name>/__init__.py` declaring `ENGINE = Engine(...)`:
   - `name` (the definition's `engine` value), `title`, `step_modes` (the first is the default);
   - `inputs`: the generation inputs it reads (`GenerateOptions` fields such as `jobs_dir`),
     each with the step modes it means something in; any other input given is an error;
   - `limits`: the platform limits it must respect, as data, each with its documentation URL;
   - `generate_files(plan, options) -> {file name: text}`: the first file is the main one;
   - `check(plan, options) -> [Problem]`: what `levelflow validate` runs for the engine, so
     the pre-commit hook catches what `generate` would reject (it gets no platform parameters);
   - `figures(plan, options) -> [Figure]`: its rows of `levelflow plan` for the options' step
     mode, usually `limit.figure(value)`.
   Keep `__init__.py` light: import the compiler inside those functions, so that a command
   never pays for an engine it does not use.
2. Add the package to `BUILTIN_ENGINES` below (a plugin or a test calls `register(ENGINE)`).
3. Tests: generate the examples with it (golden files), and run what it generates on the real
   platform or its emulator (tests/).
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from ..errors import LevelflowError, Problem

if TYPE_CHECKING:
    from ..plan import Plan

BUILTIN_ENGINES = ("levelflow.backends.cloud_workflows", "levelflow.backends.composer")

# The command-line flag of each generation input (a GenerateOptions field)
INPUT_FLAGS = {"jobs_dir": "--jobs-dir", "dataform_dir": "--dataform-dir"}


@dataclass(frozen=True)
class GenerateOptions:
    """What `generate` gives an engine besides the plan. Each engine declares which inputs it
    reads, in which step modes (`Engine.inputs`); an input it does not read is an error."""
    step_mode: Optional[str] = None  # None: step_modes' mode for the engine, else the engine's default mode
    step_modes: Mapping[str, str] = field(default_factory=dict)  # engine -> step mode (levelflow.config's step_mode table)
    jobs_dir: Optional[Path] = None  # a local copy of the jobs bucket: job files embedded at generation time
    dataform_dir: Optional[Path] = None  # a local checkout of the Dataform repository: queries embedded
    # Set by Engine.generate: levelflow.provenance's line, which every file the engine writes
    # starts with (after its language's comment sign), within the engine's size limits.
    provenance: str = ""


@dataclass(frozen=True)
class Figure:
    """One row of `levelflow plan`: the pipeline's figure beside the platform's limit."""
    name: str
    value: Optional[float]  # None: cannot be measured here (see note)
    limit: Optional[float]
    unit: str = ""
    note: str = ""

    @property
    def percent(self) -> Optional[float]:
        if self.value is None or not self.limit:
            return None
        return round(100 * self.value / self.limit, 1)

    @property
    def status(self) -> str:
        if self.percent is None:
            return "n/a" if self.value is None else "info"
        return "over" if self.percent > 100 else "near" if self.percent >= 80 else "ok"

    def as_dict(self) -> dict:
        return {**asdict(self), "percent": self.percent, "status": self.status}


@dataclass(frozen=True)
class Limit:
    """A documented platform limit: the one place its value is written."""
    key: str  # how the engine's code names it
    name: str  # as `levelflow plan` and the docs show it
    value: int
    unit: str = ""
    source: str = ""  # the documentation that states it
    respected: str = ""  # how levelflow respects it (docs/platform-limits.md)

    def figure(self, value: Optional[float], note: str = "") -> Figure:
        return Figure(self.name, value, self.value, self.unit, note)


def _no_problems(plan: "Plan", options: GenerateOptions) -> list[Problem]:
    return []


@dataclass(frozen=True)
class Engine:
    name: str
    title: str
    step_modes: tuple[str, ...]
    generate_files: Callable[["Plan", GenerateOptions], dict[str, str]]
    figures: Callable[["Plan", GenerateOptions], list[Figure]]
    check: Callable[["Plan", GenerateOptions], list[Problem]] = _no_problems
    inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # input -> the step modes that read it
    limits: tuple[Limit, ...] = ()

    @property
    def default_mode(self) -> str:
        return self.step_modes[0]

    def limit(self, key: str) -> int:
        return next(limit.value for limit in self.limits if limit.key == key)

    def options_for(self, plan: "Plan", options: GenerateOptions) -> GenerateOptions:
        """`options` with the step mode filled in; a mode or an input this engine does not use is
        a located error (no option is silently ignored)."""
        mode = options.step_mode or options.step_modes.get(self.name) or self.default_mode
        given = [name for name in INPUT_FLAGS if getattr(options, name) is not None]
        problem = self.mode_problem(mode) or next(filter(None, (self.input_problem(name, mode) for name in given)), None)
        if problem:
            raise LevelflowError([Problem(plan.source or plan.name, f"{problem} (this definition's engine is {self.name})")])
        return replace(options, step_mode=mode)

    def mode_problem(self, mode: str) -> Optional[str]:
        if mode in self.step_modes:
            return None
        return f"--step-mode {mode} is not a mode of the {self.name} engine; its modes: {', '.join(self.step_modes)}"

    def input_problem(self, name: str, mode: str) -> Optional[str]:
        """Why the input `name` (a GenerateOptions field) means nothing here, if it does not."""
        flag, modes = INPUT_FLAGS[name], self.inputs.get(name, ())
        if not modes:
            readers = engines_reading(name)
            return f"{flag} is for the {' or '.join(readers) or 'no'} engine only; give --engine {readers[0]} or drop {flag}" \
                if readers else f"{flag} is read by no engine; drop it"
        if mode not in modes:
            return f"{flag} is for {' and '.join(modes)} mode only, not {mode} mode; drop {flag} or give --step-mode {modes[0]}"
        return None

    def generate(self, plan: "Plan", options: GenerateOptions) -> dict[str, str]:
        from ..provenance import provenance_line

        options = self.options_for(plan, options)
        return self.generate_files(plan, replace(options, provenance=provenance_line(plan, options.step_mode)))

    def problems(self, plan: "Plan", options: GenerateOptions) -> list[Problem]:
        """What `validate` reports for this engine: unusable options first, then its own checks."""
        try:
            options = self.options_for(plan, options)
        except LevelflowError as exc:
            return list(exc.problems)
        return self.check(plan, options)


_REGISTRY: dict[str, Engine] = {}


def _registry() -> dict[str, Engine]:
    """The engines by name: the built-in ones first (imported on first use), then registered ones."""
    if not _REGISTRY:
        for module in BUILTIN_ENGINES:
            engine = importlib.import_module(module).ENGINE
            _REGISTRY[engine.name] = engine
    return _REGISTRY


def register(engine: Engine) -> Engine:
    """Make an engine known to every command; registering a name again replaces it."""
    _registry()[engine.name] = engine
    return engine


def unregister(name: str) -> None:
    _registry().pop(name, None)


def engines() -> dict[str, Engine]:
    return dict(_registry())


def engine_names() -> tuple[str, ...]:
    return tuple(_registry())


def engine_for(name: str) -> Engine:
    known = _registry()
    if name not in known:
        raise LevelflowError([Problem("levelflow", f"unknown engine {name!r}; engines: {', '.join(known)}")])
    return known[name]


def all_step_modes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(mode for engine in _registry().values() for mode in engine.step_modes))


def engines_reading(input_name: str) -> list[str]:
    return [engine.name for engine in _registry().values() if engine.inputs.get(input_name)]


def usage_problem(engine: Optional[str], mode: Optional[str], inputs: Mapping[str, object]) -> Optional[str]:
    """Why command-line flags contradict each other, before any definition is read: a mode the
    named engine lacks, or an input that the engine (or, without --engine, every engine in that
    mode) does not read. `inputs` maps GenerateOptions fields to the values given (None: not given)."""
    given = [name for name, value in inputs.items() if value is not None]
    if engine:
        chosen = engine_for(engine)
        if mode and (problem := chosen.mode_problem(mode)):
            return problem
        return next(filter(None, (chosen.input_problem(name, mode or chosen.default_mode) for name in given)), None)
    for name in given if mode else ():
        if not any(mode in e.inputs.get(name, ()) for e in _registry().values()):
            readers = " or ".join(f"{e.title} {' and '.join(e.inputs[name])} mode" for e in _registry().values() if e.inputs.get(name))
            return f"{INPUT_FLAGS[name]} is for {readers or 'no engine'} only, not --step-mode {mode}"
    return None
