"""The Python API that the CLI is a thin layer over."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from .discovery import find_definitions
from .errors import LevelflowError, LevelflowWarning, Problem
from .loader import Document, gc_paused, load_document
from .model import WORKFLOW_ID_PATTERN, Pipeline, PlatformParams
from .plan import Plan, build_plan
from .validate import validate_params, validate_pipeline

if TYPE_CHECKING:
    from .backends import GenerateOptions



def load_pipeline(path: str | Path) -> Pipeline:
    """Load and validate a definition file; raises LevelflowError listing every problem."""
    return check_pipeline(path)[0]


def check_pipeline(path: str | Path) -> tuple[Pipeline, list[Problem]]:
    """Load and validate a definition file; also return its warnings (located problems of a
    definition that validates but would fail against the deployed functions)."""
    _document, pipeline, advice = _checked(path)
    return pipeline, advice


def check_definition(path: str | Path, *, engine: Optional[str] = None, step_mode: Optional[str] = None,
                     step_modes: Optional[dict] = None) -> tuple[Pipeline, list[Problem]]:
    """What `levelflow validate` checks: the definition format, then what its engine's
    `generate` would reject that is known without platform parameters (Engine.check, in
    `step_mode` or the engine's default mode), and the keys that engine and mode do not read
    (levelflow.keys), as `generate` checks them. Returns the warnings; raises LevelflowError."""
    from .backends import GenerateOptions, engine_for

    with gc_paused():  # one pause for the whole check (see loader.gc_paused)
        document, pipeline, advice = _checked(path)
        plan = build_plan(pipeline, source=str(path), engine=engine)
        options = GenerateOptions(step_mode=step_mode, step_modes=step_modes or {})
        problems = engine_for(plan.engine).problems(plan, options)
        unread, unread_warnings = _unread_keys(document, plan, options)
    problems += unread
    if problems:  # engines locate by JSON path; the document knows the line
        raise LevelflowError([document.problem(p.path, p.message) if p.path and p.line is None else p for p in problems])
    return pipeline, advice + unread_warnings


def _unread_keys(document: Document, plan: Plan, options: "GenerateOptions") -> tuple[list[Problem], list[Problem]]:
    """The keys that the plan's engine, in the options' step mode, does not read: (errors,
    warnings) (levelflow.keys); none when the mode is unusable, which Engine.problems and
    generate report."""
    from .backends import engine_for
    from .keys import findings

    try:
        mode = engine_for(plan.engine).options_for(plan, options).step_mode
    except LevelflowError:
        return [], []
    assert mode is not None  # options_for fills it in
    return findings(document, plan.engine, mode)


def _checked(path: str | Path):
    from .advice import pipeline_warnings

    with gc_paused():  # a big definition's data and models (see loader.gc_paused)
        document = load_document(path)
        pipeline = validate_pipeline(document)
        if pipeline.name is None and not re.fullmatch(WORKFLOW_ID_PATTERN, Path(path).stem):
            raise LevelflowError([document.problem((), f"the file name {Path(path).stem!r} cannot name a workflow or DAG (a letter, "
                                                        "then letters, digits, '_' or '-', ending with a letter or digit, at most 64 "
                                                        "characters); rename the file or add a \"name\" key")])
        return document, pipeline, pipeline_warnings(document, pipeline, pipeline.name or Path(path).stem)


def warn_about(problems: Iterable[Problem]) -> None:
    """Emit located warnings through the `warnings` module (the CLI prints them)."""
    import warnings

    for problem in problems:
        warnings.warn(LevelflowWarning(str(problem)), stacklevel=2)


def load_params(path: str | Path) -> PlatformParams:
    """Load platform parameters (list of ParameterKey/ParameterValue, or a plain mapping)."""
    return validate_params(load_document(path))


def load_plan(path: str | Path, params: Optional[PlatformParams] = None, engine: Optional[str] = None) -> Plan:
    """A definition's plan; its warnings are emitted as LevelflowWarning."""
    pipeline, advice = check_pipeline(path)
    warn_about(advice)
    with gc_paused():
        return build_plan(pipeline, params, source=str(path), engine=engine)


def generate(
    paths: Iterable[str | Path],
    params_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    output_file: str | Path | None = None,
    engine: Optional[str] = None,
    options: Optional["GenerateOptions"] = None,
    progress: Optional[Callable[[Path], None]] = None,
    strict: bool = False,
) -> list[Path]:
    """Validate and compile definitions; write every output atomically, or nothing at all.

    `out_dir` receives `<name>.yaml` (Cloud Workflows, plus child workflow files when a
    pipeline is split) or `<name>.py` (Composer). `output_file` names the single output of a
    single definition instead. Every definition is compiled before anything is written.
    Warnings are emitted as LevelflowWarning; with `strict`, they are errors and nothing is written.
    """
    from .writer import write_all_atomic

    files = compile_outputs(paths, params_path, out_dir, output_file=output_file, engine=engine, options=options,
                            progress=progress, strict=strict)
    write_all_atomic(files)
    return sorted(files)


def stale_outputs(files: dict[Path, str]) -> list[tuple[Path, Optional[str], Optional[str]]]:
    """What `generate` would change on disk: (path, text on disk or None, text it would write
    or None), for each output that is missing or differs, and each part file beside an output
    (`<name>-part-N.<ext>`) that it would no longer write."""
    changes: list[tuple[Path, Optional[str], Optional[str]]] = []
    for path, text in sorted(files.items()):
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            changes.append((path, current, text))
    mains = {path for path in files if "-part-" not in path.stem}
    for main in sorted(mains):
        for leftover in sorted(main.parent.glob(f"{main.stem}-part-*{main.suffix}")):
            if leftover not in files and re.fullmatch(rf"{re.escape(main.stem)}-part-\d+", leftover.stem):
                changes.append((leftover, leftover.read_text(encoding="utf-8", errors="replace"), None))
    return changes


def compile_outputs(
    paths: Iterable[str | Path],
    params_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    output_file: str | Path | None = None,
    engine: Optional[str] = None,
    options: Optional["GenerateOptions"] = None,
    progress: Optional[Callable[[Path], None]] = None,
    strict: bool = False,
) -> dict[Path, str]:
    """The files `generate` writes, by path, computed without writing anything."""
    import warnings
    from .backends import GenerateOptions, engine_for

    options = options or GenerateOptions()
    params = load_params(params_path)
    definitions = find_definitions(paths)
    if output_file is not None and len(definitions) != 1:
        raise LevelflowError(
            [Problem(str(output_file), f"-o/--output takes exactly one definition, got {len(definitions)}; use --out DIR")]
        )
    files: dict[Path, str] = {}
    problems: list[Problem] = []
    for definition in definitions:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", LevelflowWarning)
                document, pipeline, advice = _checked(definition)
                with gc_paused():
                    plan = build_plan(pipeline, params, source=str(definition), engine=engine)
                unread, unread_warnings = _unread_keys(document, plan, options)
                if unread:
                    raise LevelflowError(unread)
                warn_about(advice + unread_warnings)
                generated = engine_for(plan.engine).generate(plan, options)
        except LevelflowError as exc:
            problems.extend(exc.problems)
            continue
        for warning in caught:
            if strict and issubclass(warning.category, LevelflowWarning):
                problems.append(Problem(str(definition), f"{warning.message} (a warning; --strict makes it an error)"))
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if progress:
            progress(definition)
        for name, text in generated.items():
            target = _target(name, generated, out_dir, output_file)
            if target in files:
                problems.append(
                    Problem(str(definition), f'output {target} is also produced by another definition; give one of them a different "name"')
                )
            files[target] = text
    inputs = {Path(p).resolve() for p in (*definitions, params_path)}
    problems += [
        Problem(str(target), "this output would overwrite an input file (a definition or the parameters); choose another --out / -o")
        for target in files
        if target.resolve() in inputs
    ]
    if problems:
        raise LevelflowError(problems)
    return files


def _target(name: str, generated: dict, out_dir, output_file) -> Path:
    """Where one generated file goes: -o names the main file; child files sit beside it."""
    if output_file is None:
        return Path(out_dir) / name
    main_name = next(iter(generated))
    return Path(output_file) if name == main_name else Path(output_file).parent / name
