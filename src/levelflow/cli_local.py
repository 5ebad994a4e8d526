"""`levelflow run` and `levelflow runs`: the local engine's command line."""
from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import click

from .cli_common import env_option, print_warnings, quiet, reports_problems, resolve_params, settings, strict_option
from .errors import LevelflowError

ARGUMENT_KEYS = ("workflow_name", "query_variables", "workflow_properties")


def _state_option(function):
    return click.option("--state", "state_path", type=click.Path(path_type=Path, dir_okay=False),
                        help="SQLite run record (default: runs.db in the user's data directory, "
                             "e.g. ~/.local/share/levelflow/runs.db).")(function)


def _format_option(function):
    return click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="text: tables for people; json: a machine-readable result on stdout.")(function)


def _console():
    """Tables for people: the terminal's width, or a generous one when piped to a file."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _store(state_path):
    from .backends.local import RunStore, default_state_path

    return RunStore(state_path or settings().path("state") or default_state_path())


def _load_arguments(path: Path | None) -> dict:
    """--arguments FILE: the execution arguments a deployed workflow / DAG run would get."""
    if path is None:
        return {}
    from .loader import load_document

    document = load_document(path)
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise LevelflowError([document.problem((), f"must be a mapping with any of {', '.join(ARGUMENT_KEYS)}")])
    problems = [document.problem((key,), f"unknown key; expected one of {', '.join(ARGUMENT_KEYS)}")
                for key in data if key not in ARGUMENT_KEYS]
    if "query_variables" in data and not isinstance(data["query_variables"], dict):
        problems.append(document.problem(("query_variables",), "must be a mapping"))
    if "workflow_properties" in data:  # a mapping, or a string holding a JSON object (as the intermediate accepts)
        from .protocol import properties_object

        try:
            properties_object(data["workflow_properties"])
        except ValueError as exc:
            problems.append(document.problem(("workflow_properties",), str(exc).removeprefix("workflow_properties ")))
    if "workflow_name" in data and not isinstance(data["workflow_name"], str):
        problems.append(document.problem(("workflow_name",), "must be a string"))
    if problems:
        raise LevelflowError(problems)
    return data


def _check_target(executor_url, simulate, native):
    """The options that say what a run calls must agree (no option is silently ignored)."""
    if executor_url and simulate is not None:
        raise click.UsageError("give --executor-url or --simulate, not both")
    for url, flag in ((executor_url, "--executor-url"), (native.google_api_url, "--google-api-url")):
        if url and not url.startswith(("http://", "https://")):
            raise click.UsageError(f"{flag} must be an http:// or https:// URL, got {url!r}")
    if native.step_mode == "native":
        if executor_url or simulate is not None:
            raise click.UsageError(f"--step-mode native calls Google's APIs, not executor functions: drop "
                                   f"{'--executor-url' if executor_url else '--simulate'}")
        return
    for value, flag in ((native.google_api_url, "--google-api-url"), (native.jobs_dir, "--jobs-dir")):
        if value:
            raise click.UsageError(f"{flag} goes with --step-mode native (functions mode reads no job file and calls "
                                   "no Google API itself)")


def _options(plan, executor_url, simulate, max_parallel, time_scale, arguments, native):
    from .backends.local import LocalRunOptions
    from .scenario import Scenario, load_scenario

    scenario = None
    if simulate is not None:
        scenario = load_scenario(simulate) if simulate else Scenario()
    if simulate:
        from .api import warn_about
        from .scenario import unknown_job_warnings

        names = [name for step in plan.steps() for name in (step.job_name, step.workflow_id) if name]
        warn_about(unknown_job_warnings(simulate, scenario, names, plan.name))
    return LocalRunOptions(executor_url=executor_url, scenario=scenario, scenario_label=simulate or "default scenario",
                           max_parallel=max_parallel, time_scale=time_scale, arguments=arguments,
                           step_mode=native.step_mode, google_api_url=native.google_api_url, jobs_dir=native.jobs_dir)


@dataclass(frozen=True)
class NativeTarget:
    """--step-mode and what goes with native mode."""
    step_mode: str = "functions"
    google_api_url: Optional[str] = None
    jobs_dir: Optional[Path] = None

    def words(self) -> list[str]:
        """These options on a command line (to resume a run as it was started)."""
        if self.step_mode != "native":
            return []
        words = ["--step-mode", "native"]
        if self.google_api_url:
            words += ["--google-api-url", self.google_api_url]
        if self.jobs_dir:
            words += ["--jobs-dir", str(self.jobs_dir)]
        return words


def target_options(command):
    """What the runs call and how fast: shared by `run` and `backfill`."""
    options = [
        click.option("--executor-url", metavar="URL",
                     help="Base URL replacing https://<region>-<project>.cloudfunctions.net, e.g. a stub "
                          "started with `levelflow executors serve`."),
        click.option("--step-mode", type=click.Choice(["functions", "native"]), default="functions", show_default=True,
                     help="functions: async steps go through the intermediate function to the AEF executors; native: each step "
                          "calls its Google API itself (Dataproc, Dataflow, Dataform, BigQuery) with application-default "
                          "credentials, building from the same job files the request the executor builds (docs/step-modes.md)."),
        click.option("--jobs-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
                     help="Native mode: a local copy of the jobs bucket (<executor>/<JOB_NAME>.json), read instead of "
                          "gs://<jobs_definitions_bucket>/ and checked before the run."),
        click.option("--google-api-url", metavar="URL",
                     help="Native mode (and backfill --deployed): send each Google API call to URL/<host>/<path> instead of "
                          "https://<host>/<path> (a local fake of the APIs, e.g. in tests), still with the credentials' "
                          "access token."),
        click.option("--simulate", is_flag=False, flag_value="", default=None, metavar="[SCENARIO]",
                     help="No network: the built-in simulator answers every call, scripted by an optional "
                          "scenario file (as for `levelflow executors serve`). Write --simulate=FILE, or put it last."),
        click.option("--max-parallel", type=click.IntRange(1, 1000), default=20, show_default=True,
                     help="At most this many threads of a level run at once."),
        click.option("--time-scale", type=click.FloatRange(min=0, max=1000), default=None,
                     help="Multiply every wait (polls, back-off, simulated durations): 0.01 turns a 30 s poll wait into 0.3 s, "
                          "0 skips them. Time-outs count in the pipeline's time, so they keep their meaning (a 45 min time-out "
                          "is 90 polls of 30 s at any scale). Default: 1, and 0 with --simulate."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("run")
@click.argument("definition", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--params", "params_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Platform parameters file (platform-parameters-<env>.json): function URLs, jobs bucket; or --env.")
@env_option
@target_options
@_state_option
@click.option("--resume", metavar="RUN_ID",
              help="Continue this run (with its original arguments): succeeded steps are not run again, "
                   "jobs left running are polled again, against the target it started with.")
@click.option("--force", is_flag=True,
              help="With --resume: continue the run against another target than the one it started with.")
@click.option("--arguments", "arguments_path", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON/YAML execution arguments, as a deployed run gets them: workflow_name, query_variables "
                   "(default start_date = end_date = today, UTC), workflow_properties.")
@_format_option
@strict_option
@reports_problems
def run(definition, params_path, env, executor_url, step_mode, jobs_dir, google_api_url, simulate, max_parallel, time_scale,
        state_path, resume, force, arguments_path, output_format, strict):
    """Run a pipeline on this machine, with live progress, recorded for `levelflow runs`.

    Levels run in order, the threads of a level in parallel, the steps of a thread in order;
    async steps are started through the intermediate function and polled every
    WAIT_TIME_SECONDS. Steps call the real executors (the platform parameters' URLs, with a
    Google ID token), the executors under --executor-url, or the built-in simulator; with
    --step-mode native, Google's APIs directly (a job left running at its time-out is cancelled).

    Every state change is committed to the state database first, so a run stopped by Ctrl-C,
    SIGTERM or even SIGKILL can be continued with --resume RUN_ID.

    Exit status: 0 the pipeline succeeded, 1 it failed (or invalid input), 2 usage error,
    130 / 143 stopped by SIGINT / SIGTERM (resumable).
    """
    from .api import load_params, load_plan

    if resume and arguments_path:
        raise click.UsageError("--arguments cannot change a resumed run: it keeps the arguments it started with")
    if force and not resume:
        raise click.UsageError("--force goes with --resume")
    native = NativeTarget(step_mode, google_api_url, jobs_dir)
    _check_target(executor_url, simulate, native)
    params_path = resolve_params(params_path, env, required=True)
    if time_scale is None:  # a simulation checks the pipeline's logic: its waits are skipped unless asked for
        time_scale = 0.0 if simulate is not None else 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = load_plan(definition, load_params(params_path))
        options = _options(plan, executor_url, simulate, max_parallel, time_scale, _load_arguments(arguments_path), native)
    print_warnings(caught, strict)
    from .backends.local.runner import check_runnable

    check_runnable(plan, options)  # before the state database is opened: a refused run writes nothing
    store = _store(state_path)
    try:
        report, received = _run_with_view(plan, store, options, resume, force, output_format)
    finally:
        store.close()
    again = _resume_command(definition, params_path, executor_url, simulate, max_parallel, time_scale, state_path, native)
    _print_result(report, output_format, again)
    if report["status"] == "interrupted" and received:
        sys.exit(128 + received[0])
    sys.exit(0 if report["status"] == "succeeded" else 1)


def _run_with_view(plan, store, options, resume, force, output_format):
    from rich.console import Console
    from rich.live import Live

    from .backends.local import describe_target, prepare_run, run_report, stop_on_signals, target_label
    from .backends.local.view import LiveView, LogLines

    console = Console(stderr=True)
    shown = output_format == "text" and not quiet()  # --quiet: only the result's errors and the resume line
    live = console.is_terminal and shown
    log = LogLines(console) if not live and shown else (lambda record: None)
    engine = prepare_run(plan, store, options, resume=resume, force=force, on_change=log)
    if shown:
        waits = "waits skipped" if options.time_scale == 0 else "real time" if options.time_scale == 1 else \
            f"waits x{options.time_scale:g}"
        console.print(f"run {engine.run_id} · {plan.name} · {plan.step_count} steps · {waits} · state {store.path}\n"
                      f"calling {describe_target(target_label(plan, options))}", markup=False, highlight=False)
    with stop_on_signals(engine) as received:
        if live:
            view = LiveView(engine, console)
            with Live(get_renderable=view.render, console=console, refresh_per_second=4):
                engine.run()
        else:
            engine.run()
    return run_report(store, engine.run_id), received


def _resume_command(definition, params_path, executor_url, simulate, max_parallel, time_scale, state_path,
                    native: NativeTarget, command: str = "run") -> list[str]:
    """The command line (`levelflow run`, or `backfill`) that continues what it started as it
    was started (its target, waits and record), less the --resume ID."""
    words = ["levelflow", command, str(definition), "--params", str(params_path), *native.words()]
    if executor_url:
        words += ["--executor-url", executor_url]
    if simulate is not None:
        words.append(f"--simulate={simulate}" if simulate else "--simulate")
    if time_scale != (0.0 if simulate is not None else 1.0):
        words += ["--time-scale", f"{time_scale:g}"]
    if max_parallel != 20:
        words += ["--max-parallel", str(max_parallel)]
    if state_path:
        words += ["--state", str(state_path)]
    return words


def _print_result(report: dict, output_format: str, again: list[str]) -> None:
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    import shlex

    from .backends.local.view import summary

    if not quiet():
        summary(report, _console())
    status = report["status"]
    if status == "failed":
        click.echo(f"run {report['run_id']} failed: {', '.join(report['failed_steps'])}", err=True)
    if status != "succeeded":
        click.echo(f"resume with: {shlex.join([*again, '--resume', report['run_id']])}", err=True)


@click.group("runs")
def runs():
    """Runs recorded by `levelflow run` (in its SQLite state database)."""


@runs.command("list")
@_state_option
@_format_option
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Show this many, newest first.")
@reports_problems
def list_runs(state_path, output_format, limit):
    """List recorded runs, newest first: id, pipeline, status, start, duration, steps succeeded.
    The runs of a backfill are one row: its id, and how many of its interval runs succeeded."""
    from .backends.local.runner import process_alive

    store = _store(state_path)
    try:
        rows = store.runs(limit)
        backfills = {b["backfill_id"]: b for b in store.backfills()}
    finally:
        store.close()
    listed = _fold_backfills([_listed_run(r, process_alive) for r in rows], backfills, process_alive)
    if output_format == "json":
        click.echo(json.dumps(listed, indent=2))
        return
    from rich.table import Table

    from .backends.local.view import status_text

    table = Table()
    for column in ("run id", "pipeline", "status", "started (UTC)", "duration", "succeeded", "resumes"):
        table.add_column(column, no_wrap=True)
    for row in listed:
        status = status_text(row["status"])
        if row["process_gone"]:
            status.append(" (process gone: --resume it)", style="dim")
        if row.get("kind") == "backfill":
            succeeded = f"{row['succeeded']}/{row['intervals']} runs ({row['from_date']}..{row['to_date']}, every {row['every']})"
        else:
            succeeded = f"{row['succeeded']}/{row['steps']}"
        table.add_row(row.get("backfill_id") if row.get("kind") == "backfill" else row["run_id"], row["pipeline"], status,
                      (row["started_at"] or "")[:19], _duration(row["duration_s"]), succeeded, str(row["resumes"]))
    _console().print(table)


def _listed_run(r: dict, process_alive) -> dict:
    from .backends.local.report import iso

    # A run still marked running whose process is gone was killed: it can only be resumed.
    return {"run_id": r["run_id"], "pipeline": r["pipeline"], "status": r["status"],
            "process_gone": r["status"] == "running" and not process_alive(r["pid"]),
            "started_at": iso(r["started_at"]), "ended_at": iso(r["ended_at"]),
            "duration_s": round(r["ended_at"] - r["started_at"], 3) if r["ended_at"] and r["started_at"] else None,
            "steps": r["step_count"], "succeeded": r["succeeded_count"], "resumes": r["resumes"],
            "backfill_id": r.get("backfill_id")}


def _fold_backfills(listed: list[dict], backfills: dict, process_alive) -> list[dict]:
    """The runs of one backfill as one entry, where its newest run would be."""
    from .backends.local.report import iso

    folded: list[dict] = []
    entries: dict[str, dict] = {}
    for row in listed:
        backfill_id = row["backfill_id"]
        if backfill_id is None or backfill_id not in backfills:
            folded.append(row)
            continue
        if backfill_id not in entries:
            b = backfills[backfill_id]
            entries[backfill_id] = entry = {
                "kind": "backfill", "backfill_id": backfill_id, "pipeline": b["pipeline"], "status": b["status"],
                "process_gone": b["status"] == "running" and not process_alive(b["pid"]),
                "started_at": iso(b["started_at"]), "ended_at": iso(b["ended_at"]),
                "duration_s": round(b["ended_at"] - b["started_at"], 3) if b["ended_at"] else None,
                "from_date": b["from_date"], "to_date": b["to_date"], "every": b["every"],
                "intervals": len(json.loads(b["intervals"])), "succeeded": 0, "resumes": b["resumes"], "runs": []}
            folded.append(entry)
        entry = entries[backfill_id]
        entry["runs"].append(row["run_id"])
        entry["succeeded"] += row["status"] == "succeeded"
    return folded


def _duration(seconds: float | None) -> str:
    """A run's length as people write it: 12.3 s, 4 min 05 s, 2 h 07 min; empty while it runs."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@runs.command("show")
@click.argument("run_id")
@_state_option
@_format_option
@reports_problems
def show_run(run_id, state_path, output_format):
    """Show one run: every step's status, attempts, job ids, timings and errors; or, given a
    backfill id (bf-...), each of its intervals and its run."""
    from .backends.local import run_report
    from .backends.local.backfill import backfill_report

    store = _store(state_path)
    try:
        report = backfill_report(store, run_id) if run_id.startswith("bf-") else run_report(store, run_id)
    finally:
        store.close()
    if run_id.startswith("bf-"):
        from .cli_backfill import _print_result

        _print_result(report, output_format, [])
        return
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    from .backends.local.view import summary

    summary(report, _console(), full_rows=1000)


def register(main: click.Group) -> None:
    main.add_command(run)
    main.add_command(runs)
