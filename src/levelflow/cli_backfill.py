"""`levelflow backfill`: one run per interval of a date range, on this machine or, with
--deployed, as executions of the deployed Cloud Workflow (docs/backfills.md)."""
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

LOCAL_ONLY = (("executor_url", "--executor-url"), ("simulate", "--simulate"), ("step_mode", "--step-mode"),
              ("jobs_dir", "--jobs-dir"), ("max_parallel", "--max-parallel"))
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
@click.option("--deployed", is_flag=True,
              help="Start one execution per interval of the pipeline's deployed Cloud Workflow (workflow <pipeline name> "
                   "in projects/<pProjectID>/locations/<pRegion>) through the Workflow Executions API, with "
                   "application-default credentials, and poll them; instead of runs on this machine. --google-api-url "
                   "sends its calls to a fake; --time-scale scales its polls (every 15 s) and back-off.")
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
def backfill(definition, from_date, to_date, every, max_concurrent, params_path, env, deployed, executor_url, step_mode,
             jobs_dir, google_api_url, simulate, max_parallel, time_scale, state_path, resume, force, arguments_path,
             output_format, strict):
    """Run a pipeline once per interval of a date range, as one backfill: on this machine, or
    (--deployed) as executions of its deployed Cloud Workflow.

    Each run gets its interval's start_date and end_date as query_variables, and is recorded
    as a run of the backfill (`levelflow runs list` shows them as one). Local runs call what
    `levelflow run` calls (the executors, --executor-url, the simulator, or Google's APIs with
    --step-mode native). With --deployed, each interval is an execution of the workflow as
    deployed, with the scheduler's argument (workflow_name, workflow_properties) and the
    interval's dates; a stop ends the polling, not the executions. A backfill whose dates
    overlap one already recorded for the pipeline is refused, naming it.

    Exit status: 0 every run succeeded, 1 one failed (or invalid input), 2 usage error, 130 /
    143 stopped by SIGINT / SIGTERM (continue it with --resume BACKFILL_ID).
    """
    from .api import load_params, load_plan
    from .backends.local import stop_on_signals
    from .backends.local.backfill import Backfill, IntervalRuns, LocalRuns, intervals
    from .backends.local.deployed import DeployedRuns, deployed_arguments
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
    if deployed:
        _check_deployed(context, google_api_url)
        native = NativeTarget()
    else:
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
        options = None if deployed else _options(plan, executor_url, simulate, max_parallel, time_scale, arguments, native)
    print_warnings(caught, strict)
    if deployed and plan.engine != "cloud_workflows":
        raise click.UsageError(f"--deployed starts Cloud Workflows executions, and {plan.name} is a {plan.engine} "
                               "pipeline: backfill its DAG with Airflow's own backfill (`airflow dags backfill "
                               "--start-date D --end-date D DAG_ID` in Airflow 2, `airflow backfill create --dag-id "
                               "DAG_ID --from-date D --to-date D` in Airflow 3)")
    if options is not None:
        check_runnable(plan, options)
    plan.platform()  # a located error without platform parameters, before anything is written
    store = _store(state_path)
    try:
        runs: IntervalRuns
        if deployed:
            runs = DeployedRuns(plan, store, deployed_arguments(plan, arguments), google_api_url, time_scale)
        else:
            assert options is not None
            runs = LocalRuns(plan, store, options)
        job = Backfill(plan, store, runs, max_concurrent=max_concurrent)
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
    if deployed:
        again[5:5] = ["--deployed", *(["--google-api-url", google_api_url] if google_api_url else [])]
    _print_result(report, output_format, again)
    if report["status"] == "interrupted" and received:
        sys.exit(128 + received[0])
    sys.exit(0 if report["status"] == "succeeded" else 1)


def _check_deployed(context: click.Context, google_api_url: str | None) -> None:
    """--deployed: the options of runs on this machine would mean nothing (usage errors)."""
    local_only = [flag for name, flag in LOCAL_ONLY if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if local_only:
        raise click.UsageError(f"--deployed starts executions of the deployed workflow, which calls what it was "
                               f"deployed with: drop {', '.join(local_only)} (options of runs on this machine)")
    if google_api_url and not google_api_url.startswith(("http://", "https://")):
        raise click.UsageError(f"--google-api-url must be an http:// or https:// URL, got {google_api_url!r}")


def _run_with_view(job, output_format: str) -> None:
    from rich.console import Console
    from rich.live import Live

    from .backends.local import describe_target

    console = Console(stderr=True)
    shown = output_format == "text" and not quiet()
    if shown:
        console.print(f"backfill {job.backfill_id} · {job.plan.name} · {len(job.intervals)} intervals · "
                      f"{job.max_concurrent} at a time · state {job.store.path}\ncalling {describe_target(job.runs.label())}",
                      markup=False, highlight=False)
    if shown and console.is_terminal:
        with Live(get_renderable=lambda: _table(job), console=console, refresh_per_second=4):
            job.run()
        return
    if shown:
        def log(interval):
            if interval.status != "running":
                execution = getattr(interval.work, "execution", None)
                console.print(f"{interval.start_date}..{interval.end_date} {interval.status} (run {interval.run_id}"
                              f"{f', execution {execution}' if execution else ''})", markup=False, highlight=False)
        job.on_change = log
    job.run()


def _table(job):
    """Every interval: its dates, run, status and steps done (deployed: its execution and state), live."""
    from rich.table import Table
    from rich.text import Text

    from .backends.local.deployed import DeployedRuns

    deployed = isinstance(job.runs, DeployedRuns)
    table = Table(title=f"backfill {job.backfill_id} · {job.plan.name}", title_justify="left")
    for column in ("start_date", "end_date", "run", "status", "execution" if deployed else "steps done"):
        table.add_column(column, no_wrap=True)
    for interval in job.intervals:
        table.add_row(interval.start_date, interval.end_date, interval.run_id or "",
                      Text(interval.status, style=STATUS_STYLES.get(interval.status, "")), _progress(interval.work))
    return table


def _progress(work) -> str:
    """A local run's steps done, or a deployed run's execution (its id) and state."""
    if work is None:
        return ""
    if hasattr(work, "records"):  # the local engine
        records = work.records.values()
        return f"{sum(r.status in ('succeeded', 'continued', 'skipped') for r in records)}/{len(records)}"
    return f"{(work.execution or '').rsplit('/', 1)[-1]} {work.state}".strip()


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

        deployed = any("execution" in interval for interval in report["intervals"])
        names = [interval["execution"] for interval in report["intervals"] if interval.get("execution")]
        # a deployed backfill's executions by id: their names share the workflow's, said once
        table = Table(caption=f"execution: {names[0].rsplit('/', 1)[0]}/<id>" if names else None, caption_justify="left")
        for column in ("start_date", "end_date", "run", "status", *(["execution"] if deployed else [])):
            table.add_column(column, no_wrap=True)
        for interval in report["intervals"]:
            table.add_row(interval["start_date"], interval["end_date"], interval["run_id"] or "", interval["status"],
                          *([(interval["execution"] or "").rsplit("/", 1)[-1]] if deployed else []))
        console.print(table)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    if report.get("error"):
        click.echo(f"error: {report['error']}", err=True)
    for interval in report["intervals"]:
        if interval.get("error"):
            click.echo(f"{interval['start_date']}..{interval['end_date']} {interval['status']}: {interval['error']}", err=True)
    click.echo(f"backfill {report['backfill_id']} {report['status']}: {summary}", err=True)
    if report["status"] != "succeeded":
        click.echo(f"resume with: {shlex.join(again)}", err=True)


def register(main: click.Group) -> None:
    main.add_command(backfill)
