"""The `levelflow` command line: a thin layer over the Python API."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from . import __version__
from .api import find_definitions, load_pipeline
from .errors import LevelflowError, Problem
from .schema import schema_text


def reports_problems(command):
    """Bad input becomes located messages on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LevelflowError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="levelflow")
def main():
    """Compile LEVEL / THREAD / STEP pipeline definitions into Cloud Workflows or Airflow.

    A definition (JSON or YAML) lists LEVELs that run in order; each holds THREADs that run in
    parallel; each thread holds STEPs that run in order. Start with `levelflow validate`.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per file or problem; json: a machine-readable report on stdout.")
@reports_problems
def validate(paths, output_format):
    """Check definition files (or directories of them) against the definition format.

    Directories are scanned for *.json, *.yaml and *.yml files, skipping
    platform-parameters-*.json. Every problem of every file is reported, each with its
    file:line:column and JSON path. Exit status: 0 all valid, 1 a problem, 2 usage error.
    """
    results: list[dict] = []
    failed = False
    for path in find_definitions(paths):
        try:
            pipeline = load_pipeline(path)
        except LevelflowError as exc:
            failed = True
            results.append({"file": str(path), "valid": False, "problems": [p.as_dict() for p in exc.problems]})
            if output_format == "text":
                for problem in exc.problems:
                    click.echo(f"error: {problem}", err=True)
            continue
        threads = sum(len(level.threads) for level in pipeline.definition)
        steps = sum(len(t.steps) for level in pipeline.definition for t in level.threads)
        results.append({"file": str(path), "valid": True, "engine": pipeline.engine,
                        "levels": len(pipeline.definition), "threads": threads, "steps": steps})
        if output_format == "text":
            click.echo(f"ok: {path} ({pipeline.engine}: {len(pipeline.definition)} levels, {threads} threads, {steps} steps)")
    if output_format == "json":
        click.echo(json.dumps({"valid": not failed, "files": results}, indent=2))
    sys.exit(1 if failed else 0)


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
@reports_problems
def schema(output):
    """Print the JSON Schema (2020-12) of the definition format, for editors.

    Point an editor at it with "$schema" in a definition, or map it to
    workflow-definitions/*.json in your editor's settings.
    """
    from .writer import write_atomic

    if output:
        write_atomic(output, schema_text())
    else:
        click.echo(schema_text(), nl=False)



# ---------------------------------------------------------------- graph, plan, init (issue 6)

def _plan_for(definition: Path, params_file, engine):
    from .api import load_params, load_plan

    params = load_params(params_file) if params_file else None
    return load_plan(definition, params, engine=engine)


@main.command()
@click.argument("definition", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Picture to write; its suffix picks the format: .svg, .html (interactive page), .mmd (Mermaid), .dot (Graphviz).")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Platform parameters file (optional).")
@click.option("--engine", type=click.Choice(["cloud_workflows", "composer"]), help="Override the definition's engine.")
@click.option("--run", "run_id", help="Colour each step by its status in this run recorded by `levelflow run`.")
@click.option("--state", "state_db", type=click.Path(path_type=Path), help="State database of recorded runs (default .levelflow/state.db).")
@reports_problems
def graph(definition, output, params_file, engine, run_id, state_db):
    """Draw a pipeline: levels as columns, threads as lanes, steps as boxes.

    Each box shows the job name, type, executor and time-out; continue-if-fail steps have a
    dashed orange border and NEXT jumps a dashed arc. The SVG and HTML need no other program;
    the HTML page zooms (wheel), pans (drag) and shows a step's details on hover. Mermaid
    (.mmd) renders in GitHub Markdown inside a ```mermaid block.
    """
    from . import graph as graphs
    from .writer import write_atomic

    try:
        output_format = graphs.graph_format(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    if state_db and not run_id:
        raise click.UsageError("--state names the database of recorded runs; give --run RUN_ID too")
    plan = _plan_for(definition, params_file, engine)
    statuses = graphs.load_run_statuses(state_db or graphs.DEFAULT_STATE_DB, run_id) if run_id else None
    write_atomic(output, graphs.render(plan, output_format, statuses))
    click.echo(f"wrote {output} ({output_format}: {len(plan.levels)} levels, {plan.step_count} steps)")



@main.command("plan")
@click.argument("definition", type=click.Path(path_type=Path))
@click.option("--params", "params_file", type=click.Path(path_type=Path),
              help="Platform parameters file; needed to measure the generated Cloud Workflows source.")
@click.option("--engine", type=click.Choice(["cloud_workflows", "composer"]), help="Override the definition's engine.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a readable report; json: the same figures for scripts.")
@reports_problems
def plan_command(definition, params_file, engine, output_format):
    """Show a pipeline's size, critical path and how close it is to each platform limit.

    Counts levels, threads, steps and executors; finds the longest chain of steps from each
    step's ESTIMATED_MINUTES (else its time-out); and, for the engine, lists every limit of
    Cloud Workflows or Composer beside the pipeline's figure (ok, near = 80% or more, over).
    """
    from .report import build_report, format_text

    report = build_report(_plan_for(definition, params_file, engine))
    click.echo(json.dumps(report, indent=2) if output_format == "json" else format_text(report), nl=output_format == "json")


if __name__ == "__main__":  # pragma: no cover
    main()
