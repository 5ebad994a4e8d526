"""The `levelflow` command line: a thin layer over the Python API."""
from __future__ import annotations

import gc
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import click

from . import __version__
from .cli_common import (definition_paths, engine_and_modes, engine_option, env_option, give_options_envvars, print_warnings,
                         reports_problems, resolve_params, say, settings, step_mode_option, strict_option)
from .cli_backfill import register as register_backfill_command
from .cli_local import register as register_local_commands
from .errors import LevelflowError, Problem
from .scaffold import SCAFFOLD_ENGINES

# Each command imports what it needs (the API, an engine, the local engine's pydantic scenario) when it runs, so
# that `levelflow --help` or a small `validate` starts fast.


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="levelflow")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only warnings and errors (and what a command is asked to print, such as JSON): "
                   "the exit status says the rest.")
def main(quiet):
    """Compile LEVEL / THREAD / STEP pipeline definitions into Cloud Workflows or Airflow.

    A definition (JSON or YAML) lists LEVELs that run in order; each holds THREADs that run in
    parallel; each thread holds STEPs that run in order. Start with `levelflow validate`.

    Every option can also come from the environment, as LEVELFLOW_<COMMAND>_<OPTION>
    (e.g. LEVELFLOW_GENERATE_OUT=build/, LEVELFLOW_RUN_TIME_SCALE=0.01,
    LEVELFLOW_VALIDATE_STRICT=1); a flag on the command line wins. Settings for every
    command: levelflow.toml (see `levelflow config`).

    Shell completion: eval "$(_LEVELFLOW_COMPLETE=bash_source levelflow)" in ~/.bashrc
    (zsh_source in ~/.zshrc, fish_source for fish).
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per file or problem; json: a machine-readable report on stdout.")
@engine_option()
@step_mode_option
@strict_option
@reports_problems
def validate(paths, output_format, engine, step_mode, strict):
    """Check definition files (or directories of them): the definition format, and everything
    `generate` would reject that is known without platform parameters (for the definition's
    engine and step mode, e.g. an executor Composer operators mode does not know).

    Directories are searched recursively for *.json, *.yaml and *.yml files, skipping
    platform-parameters-*.json, hidden names and what a .levelflowignore file (gitignore
    patterns) excludes. Every problem of every file is reported, each with its
    file:line:column and JSON path. Warnings name definitions that validate but would fail
    against the deployed AEF functions. Exit status: 0 all valid, 1 a problem (or, with
    --strict, a warning), 2 usage error.
    """
    from .api import check_definition, find_definitions
    from .backends import usage_problem

    if problem := usage_problem(engine, step_mode, {}):
        raise click.UsageError(problem)
    engine, step_mode, step_modes = engine_and_modes(engine, step_mode)
    paths = definition_paths(paths)
    # No cyclic garbage collection in this short process: it would rescan a big definition's
    # data and models again and again as they grow, and they hold no reference cycles.
    gc.disable()
    results: list[dict] = []
    failed = False
    warned = 0
    for path in find_definitions(paths):
        try:
            pipeline, advice = check_definition(path, engine=engine, step_mode=step_mode, step_modes=step_modes)
        except LevelflowError as exc:
            failed = True
            results.append({"file": str(path), "valid": False, "problems": [p.as_dict() for p in exc.problems]})
            if output_format == "text":
                for problem in exc.problems:
                    click.echo(f"error: {problem}", err=True)
            continue
        threads = sum(len(level.threads) for level in pipeline.definition)
        steps = sum(len(t.steps) for level in pipeline.definition for t in level.threads)
        warned += len(advice)
        chosen = engine or pipeline.engine
        results.append({"file": str(path), "valid": True, "engine": chosen, "name": pipeline.name or path.stem,
                        "schedule": pipeline.schedule.as_data(chosen) if pipeline.schedule else None,
                        "notify": {**pipeline.notify._asdict(), "email": list(pipeline.notify.email)} if pipeline.notify else None,
                        "levels": len(pipeline.definition), "threads": threads, "steps": steps,
                        "warnings": [p.as_dict() for p in advice]})
        if output_format == "text":
            for problem in advice:
                click.echo(f"warning: {problem}", err=True)
            say(f"ok: {path} ({engine or pipeline.engine}: {len(pipeline.definition)} levels, {threads} threads, {steps} steps)")
    if output_format == "json":
        click.echo(json.dumps({"valid": not failed and not (strict and warned), "files": results}, indent=2))
    elif strict and warned:
        click.echo(f"error: {warned} warning(s), and --strict treats warnings as errors", err=True)
    sys.exit(1 if failed or (strict and warned) else 0)


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
@reports_problems
def schema(output):
    """Print the JSON Schema (2020-12) of the definition format, for editors.

    Point an editor at it with "$schema" in a definition, or map it to
    workflow-definitions/*.json in your editor's settings.
    """
    from .schema import schema_text
    from .writer import write_atomic

    if output:
        write_atomic(output, schema_text())
        say(f"wrote {output}")
    else:
        click.echo(schema_text(), nl=False)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--params", "params_path", type=click.Path(path_type=Path),
              help="Platform parameters file (platform-parameters-<env>.json); or --env.")
@env_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Directory receiving <name>.yaml (Cloud Workflows) or <name>.py (Composer).")
@click.option("-o", "--output", "output_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file, when exactly one definition is given.")
@engine_option()
@click.option("--jobs-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Composer operators mode and Cloud Workflows native mode: local copy of the jobs bucket; job parameters "
                   "are checked and embedded at generation time.")
@step_mode_option
@click.option("--dataform-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Composer operators mode: local checkout of the Dataform repository; each BigQuery step's "
                   "definitions/<pipeline>/<JOB_NAME>.sqlx is embedded at generation time.")
@strict_option
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when the files on disk differ from what would be generated (for CI).")
@click.option("--diff", "show_diff", is_flag=True, help="With --check: print a unified diff of each stale file.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help='json: {"written": [...]}, or with --check {"up_to_date": ..., "outputs": [{"path", "state"}]}, on stdout.')
@reports_problems
def generate(paths, params_path, env, out_dir, output_file, engine, jobs_dir, step_mode, strict, dataform_dir, check,
             show_diff, output_format):
    """Compile definitions (files or directories) into deployable orchestration.

    Every definition is validated and compiled before anything is written; outputs are
    written atomically, so a failed run leaves earlier files as they were. With --check,
    nothing is written: the command says which files are stale (missing, different, or a
    part file no longer generated) and exits 1 if any is.
    """
    from .api import compile_outputs, find_definitions
    from .backends import GenerateOptions
    from .writer import write_all_atomic

    if (out_dir is None) == (output_file is None):
        raise click.UsageError("give exactly one of --out DIR or -o FILE")
    if show_diff and not check:
        raise click.UsageError("--diff goes with --check")
    if show_diff and output_format == "json":
        raise click.UsageError("--diff prints text; drop it or --format json")
    from .backends import usage_problem

    # flags that contradict each other; each definition's own engine is checked by generate()
    if problem := usage_problem(engine, step_mode, {"jobs_dir": jobs_dir, "dataform_dir": dataform_dir}):
        raise click.UsageError(problem)
    params_path = resolve_params(params_path, env, required=True)
    engine, step_mode, step_modes = engine_and_modes(engine, step_mode)
    definitions = find_definitions(definition_paths(paths))
    options = GenerateOptions(jobs_dir=jobs_dir, step_mode=step_mode, dataform_dir=dataform_dir, step_modes=step_modes)
    with warnings.catch_warnings(record=True) as caught, _progress(len(definitions)) as advance:
        warnings.simplefilter("always")
        files = compile_outputs(definitions, params_path, out_dir, output_file=output_file,
                                engine=engine, options=options, progress=advance, strict=strict)
    print_warnings(caught, False)  # e.g. a pipeline that could exceed the engine's executed-steps limit
    if check:
        sys.exit(_check_outputs(files, show_diff, output_format))
    write_all_atomic(files)
    if output_format == "json":
        click.echo(json.dumps({"written": [str(path) for path in sorted(files)]}, indent=2))
        return
    for path in sorted(files):
        say(f"wrote {path}")


def _check_outputs(files: dict, show_diff: bool, output_format: str) -> int:
    """generate --check: report each stale output (and its diff); the exit status."""
    import difflib

    from .api import stale_outputs

    changes = stale_outputs(files)
    states = {path: "missing" if current is None else "no longer generated" if text is None else "stale"
              for path, current, text in changes}
    if output_format == "json":
        outputs = [{"path": str(path), "state": states.get(path, "up to date")} for path in sorted({*files, *states})]
        click.echo(json.dumps({"up_to_date": not changes, "outputs": outputs}, indent=2))
        return 1 if changes else 0
    for path, current, text in changes:
        click.echo(f"{states[path]}: {path}")
        if show_diff:
            lines = difflib.unified_diff((current or "").splitlines(keepends=True), (text or "").splitlines(keepends=True),
                                         f"{path} (on disk)", f"{path} (generated)")
            click.echo("".join(lines), nl=False)
    if changes:
        click.echo(f"{len(changes)} output{'s' if len(changes) != 1 else ''} not as generate would write "
                   f"{'them' if len(changes) != 1 else 'it'}; run the same command without --check", err=True)
        return 1
    say(f"up to date: {len(files)} file{'s' if len(files) != 1 else ''}")
    return 0


def _progress(total: int):
    """A progress bar on stderr for many files; silent for a few (without importing rich: a
    third of a small `generate`'s start-up)."""
    import contextlib

    if total < 5 or not sys.stderr.isatty():
        return contextlib.nullcontext(lambda _path: None)
    from rich.progress import Progress

    @contextlib.contextmanager
    def bar():
        with Progress(transient=True, console=None) as progress:
            task = progress.add_task("compiling", total=total)
            yield lambda _path: progress.advance(task)

    return bar()


@main.command("config")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: {setting: {value, source}} and the file read.")
@reports_problems
def config_command(output_format):
    """Show the effective settings and where each comes from.

    Settings are read from levelflow.toml, or the [tool.levelflow] table of pyproject.toml, in
    the working directory or the nearest directory above it; LEVELFLOW_* environment variables
    override them, and a command's flags override both. Keys: definitions, env, engine,
    step_mode (one word, or a table engine = mode), state, and [params] (environment = file).
    """
    from .backends.local import default_state_path
    from .config import KEYS

    found = settings()
    defaults = {"definitions": "(give PATHS)", "env": "(give --params or --env)", "engine": "(each definition's own)",
                "step_mode": "(each engine's first)", "state": str(default_state_path()), "params": "(none named)"}
    rows = {key: {"value": found.get(key), "source": found.sources.get(key, "default")} for key in KEYS}
    env = found.get("env")
    chosen = found.params_file(None)  # (None when neither env nor LEVELFLOW_PARAMS says)
    if output_format == "json":
        click.echo(json.dumps({"file": str(found.file) if found.file else None, "settings": rows,
                               "parameters": str(chosen) if chosen else None}, indent=2, default=str))
        return
    click.echo(f"settings file: {found.file or '(none: levelflow.toml or [tool.levelflow] in pyproject.toml)'}")
    for key, row in rows.items():
        value = row["value"] if row["value"] is not None else defaults[key]
        shown = ", ".join(f"{k} = {v}" for k, v in value.items()) if isinstance(value, dict) else value
        click.echo(f"  {key:<12} {shown}  [{row['source']}]")
    if chosen:
        why = found.sources["params"] if found.sources.get("params", "").startswith("LEVELFLOW_") else f"environment {env}"
        click.echo(f"  parameters   {chosen}  [{why}]")


@main.group()
def executors():
    """Local stand-ins for the step executors."""


@executors.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one).")
@click.option("--role", type=click.Choice(["both", "intermediate", "executors"]), default="both", show_default=True,
              help="Play the whole chain, only the intermediate function (it forwards to function_url_to_call), "
                   "or only the executors (behind any intermediate).")
@click.option("--intermediate-name", default="orch-framework-intermediate", show_default=True,
              help="The intermediate's function name: POST /<name> is the intermediate (pFunctionIntermediateName).")
@click.option("--jobs-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Plays the jobs bucket: executors read DIR/<executor>/<JOB_NAME>.json (default: every file present).")
@click.option("--scenario", type=click.Path(path_type=Path), help="JSON/YAML file scripting each job's behaviour.")
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="Also append every call to this file as JSON lines.")
@reports_problems
def serve(host, port, role, intermediate_name, jobs_dir, scenario, log_file):
    """Serve a faithful double of the AEF functions over HTTP, scripted per job name.

    It plays the intermediate function (call_type get_id / get_status, state words mapped to
    running / success, any answer holding "error" or "exception" an HTTP 500), the executors
    (no job_id starts a job, a job_id answers its state word, errors as HTTP 200 JSON
    {"error", "message"}) and the Workflow Executions API under /v1/. The intermediate
    forwards to function_url_to_call over HTTP (loopback only). Point a pipeline at it with
    the platform parameter pFunctionsBaseUrl = http://HOST:PORT. GET /_calls shows the call
    log, one record per hop.

    \b
    Scenario example (YAML):
      default: {polls: 1}
      jobs:
        load_orders: {polls: 3}
        load_refunds: {outcome: fail}
        load_broken: {outcome: error, fail_on: start}
        load_gone: {http_status: 404}
        load_forever: {outcome: never}
        flaky: {transient: [1, 2], latency_ms: 100}
      functions:
        pipeline-notifier: sync
    """
    from .scenario import load_scenario
    from .stub_server import make_server

    try:
        server = make_server(host, port, load_scenario(scenario), str(log_file) if log_file else None,
                             role=role, intermediate_name=intermediate_name, jobs_dir=jobs_dir)
    except OSError as exc:  # the address taken, not this machine's, or a port that needs privileges
        raise LevelflowError([Problem(f"{host}:{port}", f"cannot listen there: {exc.strerror or exc}; "
                                                        "give another --port (0: any free port)")]) from None
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"levelflow AEF double ({role}) listening on http://{bound_host}:{bound_port}; "
               f"intermediate: /{intermediate_name} (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------- graph, plan, init (issue 6)

def _plan_for(definition: Path, params_file, engine, strict: bool = False):
    """The definition's plan; its warnings are printed (--strict: exit 1)."""
    from .api import load_params, load_plan

    from .api import warn_about
    from .report import deadline_warnings

    params = load_params(params_file) if params_file else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = load_plan(definition, params, engine=engine)
        warn_about(deadline_warnings(plan))
    print_warnings(caught, strict)
    return plan


@main.command()
@click.argument("definition", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Picture to write; its suffix picks the format: .svg, .html (interactive page), .mmd (Mermaid), .dot (Graphviz).")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Platform parameters file (optional).")
@env_option
@engine_option("Override the definition's engine.")
@click.option("--run", "run_id", help="Colour each step by its status in this run recorded by `levelflow run`.")
@click.option("--state", "state_db", type=click.Path(path_type=Path),
              help="Database of recorded runs (default: the one `levelflow run` uses).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How to report what was written: text for people; json on stdout.")
@strict_option
@reports_problems
def graph(definition, output, params_file, env, engine, run_id, state_db, output_format, strict):
    """Draw a pipeline: levels as columns, threads as lanes, steps as boxes.

    Each box shows the job name, type, executor and time-out; continue-if-fail steps have a
    dashed orange border and NEXT jumps a dashed arc. The SVG and HTML need no other program;
    the HTML page zooms (wheel), pans (drag) and shows a step's details on hover. Mermaid
    (.mmd) renders in GitHub Markdown inside a ```mermaid block.
    """
    from . import graph as graphs
    from .writer import write_atomic

    try:
        picture_format = graphs.graph_format(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    if state_db and not run_id:
        raise click.UsageError("--state names the database of recorded runs; give --run RUN_ID too")
    engine, _mode, _modes = engine_and_modes(engine, None)
    plan = _plan_for(definition, resolve_params(params_file, env, required=False), engine, strict)
    state_db = state_db or settings().path("state") or graphs.default_state_db()
    statuses = graphs.load_run_statuses(state_db, run_id, plan) if run_id else None
    write_atomic(output, graphs.render(plan, picture_format, statuses, run_id))
    if output_format == "json":
        threads = sum(len(level.threads) for level in plan.levels)
        counts = Counter((statuses or {}).values())
        click.echo(json.dumps({"file": str(output), "format": picture_format, "pipeline": plan.name, "levels": len(plan.levels),
                               "threads": threads, "steps": plan.step_count, "run_id": run_id, "statuses": counts}, indent=2))
    else:
        say(f"wrote {output} ({picture_format}: {graphs.plural(len(plan.levels), 'level')}, {graphs.plural(plan.step_count, 'step')})")


@main.command("plan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@env_option
@click.option(
    "--params",
    "params_file",
    type=click.Path(path_type=Path),
    help="Platform parameters file; needed to measure the generated Cloud Workflows source.",
)
@engine_option("Override the definition's engine.")
@step_mode_option
@click.option("--jobs-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Cloud Workflows native mode: a local copy of the jobs bucket, to name the projects of the roles listed.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a readable report; json: the same figures for scripts.",
)
@strict_option
@reports_problems
def plan_command(paths, env, params_file, engine, step_mode, jobs_dir, output_format, strict):
    """Show each pipeline's size, critical path and how close it is to each platform limit.

    PATHS are definition files or directories of them (as for validate and generate). Counts
    levels, threads, steps and executors; finds the longest chain of steps from each step's
    ESTIMATED_MINUTES (else its time-out); and, for the engine, lists every limit of the
    engine beside the pipeline's figure (ok, near = 80% or more, over), for the step mode. In
    Cloud Workflows native mode, also the IAM roles the workflow's service account needs, per
    project. JSON: the report of one definition given as a file, else a list of reports.
    """
    from .api import find_definitions
    from .report import build_report, format_text

    from .backends import GenerateOptions

    given = definition_paths(paths)
    parameters = resolve_params(params_file, env, required=False)
    engine, step_mode, step_modes = engine_and_modes(engine, step_mode)
    options = GenerateOptions(step_mode=step_mode, step_modes=step_modes, jobs_dir=jobs_dir)
    definitions = find_definitions(given)
    reports = [build_report(_plan_for(definition, parameters, engine, strict), options) for definition in definitions]
    if output_format == "json":
        one = len(given) == 1 and len(reports) == 1 and not Path(given[0]).is_dir()
        click.echo(json.dumps(reports[0] if one else reports, indent=2))
    else:
        click.echo("\n".join(format_text(report) for report in reports), nl=False)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--engine",
    type=click.Choice(SCAFFOLD_ENGINES),
    default=SCAFFOLD_ENGINES[0],
    show_default=True,
    help="Engine of the example definition.",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option(
    "--hook-repo", metavar="URL", help="Git URL pre-commit fetches the levelflow-validate hook from (default: levelflow's repository)."
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How to report the files written: text for people; json on stdout.")
@reports_problems
def init(directory, engine, force, hook_repo, output_format):
    """Start a repository of pipelines in DIRECTORY.

    Writes workflow-definitions/ with an example definition, platform-parameters-dev.json, a
    GitHub Actions workflow that validates and generates, a pre-commit configuration using the
    levelflow-validate hook, a .gitignore and a README. Refuses to overwrite existing files
    unless --force; every file is written, or none.
    """
    from .scaffold import PRE_COMMIT_REPO, init_repository

    written = init_repository(directory, engine=engine, force=force, hook_repo=hook_repo or PRE_COMMIT_REPO)
    next_step = f"cd {directory} && levelflow validate workflow-definitions/"
    if output_format == "json":
        click.echo(json.dumps({"directory": str(directory), "engine": engine, "files": [str(path) for path in written],
                               "next": next_step}, indent=2))
        return
    for path in written:
        say(f"wrote {path}")
    say(f"next: {next_step}")


register_local_commands(main)
register_backfill_command(main)
give_options_envvars(main)

if __name__ == "__main__":  # pragma: no cover
    main()
