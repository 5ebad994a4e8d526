"""`levelflow backfill`: one local run per interval of a date range (docs/backfills.md)."""
from __future__ import annotations

import json
import shlex
import sys
import warnings
from pathlib import Path

import click

from .cli_common import env_option, print_warnings, quiet, reports_problems, resolve_params, strict_option
from .cli_local import (NativeTarget, _check_target, _console, _format_option, _load_arguments, _options,
                        _resume_command, _state_option, _store, target_options)

STATUS_STYLES = {"succeeded": "green", "failed": "red", "running": "cyan", "interrupted": "yellow", "pending": "dim"}


@click.command("backfill")
@click.argument("definition", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--from", "from_date", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DATE",
              help="First day of the range (YYYY-MM-DD).")
@click.option("--to", "to_date", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DATE",
              help="Last day of the range, included (YYYY-MM-DD).")
@click.option("--every", default="1d", show_default=True, metavar="Nd|Nmo",
              help="Interval of each run: N days (1d, 7d) or N calendar months (1mo: each month's first to last day, "
                   "the first and last clipped to the range). A run's start_date / end_date are its interval's.")
@click.option("--max-concurrent", type=click.IntRange(1, 100), default=1, show_default=True,
              help="At most this many interval runs at once.")
@click.option("--params", "params_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Platform parameters file (platform-parameters-<env>.json); or --env.")
@env_option
@target_options
@_state_option
@click.option("--resume", metavar="BACKFILL_ID",
              help="Continue this backfill: intervals whose run succeeded are skipped, the others' runs resumed or started.")
@click.option("--force", is_flag=True,
              help="Run dates an earlier backfill of the pipeline already ran; with --resume, continue against another "
                   "target than the one it started with.")
@click.option("--arguments", "arguments_path", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON/YAML arguments of every run: workflow_name, workflow_properties (the dates are the intervals').")
@_format_option
@strict_option
@reports_problems
def backfill(definition, from_date, to_date, every, max_concurrent, params_path, env, executor_url, step_mode, jobs_dir,
             google_api_url, simulate, max_parallel, time_scale, state_path, resume, force, arguments_path, output_format,
             strict):
    """Run a pipeline once per interval of a date range, on this machine, as one backfill.

    Each run gets its interval's start_date and end_date as query_variables, and is recorded
    as a run of the backfill (`levelflow runs list` shows them as one). Runs call what
    `levelflow run` calls (the executors, --executor-url, the simulator, or Google's APIs with
    --step-mode native). A backfill whose dates overlap one already recorded for the pipeline
    is refused, naming it.

    Exit status: 0 every run succeeded, 1 one failed (or invalid input), 2 usage error, 130 /
    143 stopped by SIGINT / SIGTERM (continue it with --resume BACKFILL_ID).
    """
    from .api import load_params, load_plan
    from .backends.local import stop_on_signals
    from .backends.local.backfill import Backfill, intervals
    from .backends.local.runner import check_runnable

    context = click.get_current_context()
    given_every = context.get_parameter_source("every") is not click.core.ParameterSource.DEFAULT
    if resume and (from_date or to_date or given_every or arguments_path):
        raise click.UsageError("--resume continues a backfill with its own dates, interval and arguments: drop --from, "
                               "--to, --every and --arguments")
    if not resume and (from_date is None or to_date is None):
        raise click.UsageError("give --from and --to (or --resume BACKFILL_ID)")
    if not resume:
        try:  # checked before anything is opened or written
            intervals(from_date.date(), to_date.date(), every)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    native = NativeTarget(step_mode, google_api_url, jobs_dir)
    _check_target(executor_url, simulate, native)
    params_path = resolve_params(params_path, env, required=True)
    if time_scale is None:
        time_scale = 0.0 if simulate is not None else 1.0
    arguments = _load_arguments(arguments_path)
    if "query_variables" in arguments:
        raise click.UsageError("--arguments: a backfill gives each run its interval's dates; drop query_variables")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = load_plan(definition, load_params(params_path))
        options = _options(plan, executor_url, simulate, max_parallel, time_scale, arguments, native)
    print_warnings(caught, strict)
    check_runnable(plan, options)
    store = _store(state_path)
    try:
        job = Backfill(plan, store, options, max_concurrent=max_concurrent)
        if resume:
            job.reopen(resume, force)
        else:
            job.begin(from_date.date(), to_date.date(), every, force)
        with stop_on_signals(job) as received:
            _run_with_view(job, output_format)
        report = job.report()
    finally:
        store.close()
    again = [*_resume_command(definition, params_path, executor_url, simulate, max_parallel, time_scale, state_path, native,
                              "backfill"), *(["--max-concurrent", str(max_concurrent)] if max_concurrent != 1 else []),
             "--resume", report["backfill_id"]]
    _print_result(report, output_format, again)
    if report["status"] == "interrupted" and received:
        sys.exit(128 + received[0])
    sys.exit(0 if report["status"] == "succeeded" else 1)


def _run_with_view(job, output_format: str) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    shown = output_format == "text" and not quiet()
    if shown:
        console.print(f"backfill {job.backfill_id} · {job.plan.name} · {len(job.intervals)} intervals · "
                      f"{job.max_concurrent} at a time · state {job.store.path}", markup=False, highlight=False)
    if shown and console.is_terminal:
        with Live(get_renderable=lambda: _table(job), console=console, refresh_per_second=4):
            job.run()
        return
    if shown:
        def log(interval):
            if interval.status != "running":
                console.print(f"{interval.start_date}..{interval.end_date} {interval.status} (run {interval.run_id})",
                              markup=False, highlight=False)
        job.on_change = log
    job.run()


def _table(job):
    """Every interval: its dates, run, status and steps done, live."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"backfill {job.backfill_id} · {job.plan.name}", title_justify="left")
    for column in ("start_date", "end_date", "run", "status", "steps done"):
        table.add_column(column, no_wrap=True)
    for interval in job.intervals:
        done = ""
        if interval.engine is not None:
            records = interval.engine.records.values()
            done = f"{sum(r.status in ('succeeded', 'continued', 'skipped') for r in records)}/{len(records)}"
        table.add_row(interval.start_date, interval.end_date, interval.run_id or "",
                      Text(interval.status, style=STATUS_STYLES.get(interval.status, "")), done)
    return table


def _print_result(report: dict, output_format: str, again: list[str]) -> None:
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
        return
    counts: dict[str, int] = {}
    for interval in report["intervals"]:
        counts[interval["status"]] = counts.get(interval["status"], 0) + 1
    if not quiet():
        console = _console()
        from rich.table import Table

        table = Table()
        for column in ("start_date", "end_date", "run", "status"):
            table.add_column(column, no_wrap=True)
        for interval in report["intervals"]:
            table.add_row(interval["start_date"], interval["end_date"], interval["run_id"] or "", interval["status"])
        console.print(table)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    click.echo(f"backfill {report['backfill_id']} {report['status']}: {summary}", err=True)
    if report["status"] != "succeeded":
        click.echo(f"resume with: {shlex.join(again)}", err=True)


def register(main: click.Group) -> None:
    main.add_command(backfill)
