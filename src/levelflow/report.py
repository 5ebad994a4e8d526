"""The figures of `levelflow plan`: counts, the critical path, and each platform limit of the
engine (docs/platform-limits.md) beside the pipeline's own figure, so a user sees how close to a
limit it is. The limit rows are the engine's own (`Engine.figures`, levelflow.backends)."""
from __future__ import annotations

from typing import Any, Optional

from .backends import Figure, GenerateOptions, engine_for
from .plan import Plan, PlanStep

__all__ = ["Figure", "build_report", "counts", "critical_path", "format_text", "step_minutes"]


# ---------------------------------------------------------------- counts and critical path

def counts(plan: Plan) -> dict[str, Any]:
    executors = sorted({name for s in plan.steps() for name in (s.executor, s.status_executor) if name})
    return {
        "levels": len(plan.levels),
        "threads": sum(len(level.threads) for level in plan.levels),
        "steps": plan.step_count,
        "executors": len(executors),
        "executor_names": executors,
        "workflows_called": sorted({s.workflow_id for s in plan.steps() if s.workflow_id}),
        "widest_level_threads": max(len(level.threads) for level in plan.levels),
    }


def step_minutes(step: PlanStep) -> tuple[float, str]:
    """A step's expected minutes and where the figure comes from."""
    if step.estimated_minutes is not None:
        return step.estimated_minutes, "estimate"
    if step.type == "sync":
        return step.call_timeout_seconds / 60, "time-out"
    return step.timeout_minutes, "time-out"


def critical_path(plan: Plan) -> dict[str, Any]:
    """Levels run one after another, so the longest chain is the longest thread of each level
    (following NEXT jumps: the steps they skip never run)."""
    levels, chain = [], []
    for level in plan.levels:
        def thread_minutes(thread):
            return sum(step_minutes(step)[0] for step in thread.executed_steps())

        longest = max(level.threads, key=thread_minutes)  # max keeps the first of equals
        levels.append({"level_id": level.level_id, "thread_id": longest.thread_id, "minutes": round(thread_minutes(longest), 2)})
        for step in longest.executed_steps():
            minutes, basis = step_minutes(step)
            chain.append({"job_id": step.job_id, "job_name": step.job_name, "minutes": round(minutes, 2), "basis": basis})
    return {"minutes": round(sum(level["minutes"] for level in levels), 2), "levels": levels, "steps": chain}


def deadline_warnings(plan: Plan) -> list:
    """A deadline shorter than the critical path: a run whose steps take what the plan expects
    (ESTIMATED_MINUTES, else their time-outs) fails at its deadline."""
    from .errors import Problem
    from .loader import load_document

    minutes = critical_path(plan)["minutes"]
    if plan.deadline_minutes is None or minutes <= plan.deadline_minutes:
        return []
    message = (f"deadline_minutes {plan.deadline_minutes:g} is shorter than the critical path, {minutes:g} min (from the "
               "steps' ESTIMATED_MINUTES, else their time-outs): a run whose steps take that long fails at its deadline")
    if plan.source is None:
        return [Problem(plan.name, message, ("deadline_minutes",))]
    return [load_document(plan.source).problem(("deadline_minutes",), message)]


# ---------------------------------------------------------------- the report

def build_report(plan: Plan, options: Optional[GenerateOptions] = None) -> dict[str, Any]:
    """The report of `levelflow plan`, for the options' step mode (the engine's default when none)."""
    engine = engine_for(plan.engine)
    options = engine.options_for(plan, options or GenerateOptions())
    report = {
        "pipeline": plan.name,
        "engine": plan.engine,
        "step_mode": options.step_mode,
        "counts": counts(plan),
        "critical_path": critical_path(plan),
        "deadline_minutes": plan.deadline_minutes,
        "limits": [figure.as_dict() for figure in engine.figures(plan, options)],
    }
    if plan.engine == "cloud_workflows":
        report.update(_deployment(plan, options))
    return report


def _deployment(plan: Plan, options: GenerateOptions) -> dict[str, Any]:
    """What the Terraform module deploys for a Cloud Workflows pipeline: its workflows (the main
    one first, then its parts; none without platform parameters) and the roles of the account
    they run as."""
    from .backends.cloud_workflows.figures import generated_sources
    from .backends.cloud_workflows.iam import workflow_roles

    sources, _why = generated_sources(plan, options)
    workflows = [name.removesuffix(".yaml") for name in sources or {}]
    return {"workflows": workflows, "iam": workflow_roles(plan, options.step_mode or "functions", options.jobs_dir, len(workflows[1:]))}


def _number(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{text} {unit}".strip() if unit in ("bytes", "s") else text


def format_text(report: dict[str, Any]) -> str:
    c, path = report["counts"], report["critical_path"]
    lines = [
        f"{report['pipeline']} ({report['engine']}, {report['step_mode']} mode)",
        f"  {c['levels']} levels, {c['threads']} threads, {c['steps']} steps, {c['executors']} executors",
        f"  executors: {', '.join(c['executor_names']) or '-'}",
    ]
    if c["workflows_called"]:
        lines.append(f"  workflows called: {', '.join(c['workflows_called'])}")
    bases = [s["basis"] for s in path["steps"]]
    lines += ["", f"Critical path: {path['minutes']:g} min ({bases.count('estimate')} estimated steps, "
                  f"{bases.count('time-out')} counted at their time-out)"]
    for level in path["levels"]:
        lines.append(f"  level {level['level_id']}: thread {level['thread_id']}, {level['minutes']:g} min")
    lines.append("  " + " -> ".join(f"{s['job_id']} ({s['minutes']:g})" for s in path["steps"]))
    lines += ["", f"{engine_for(report['engine']).title} limits:"]
    rows = [("", "pipeline", "limit", "used", "")]
    for f in report["limits"]:
        used = f"{f['percent']:g}% {f['status']}" if f["percent"] is not None else ""
        rows.append((f["name"], "n/a" if f["value"] is None else _number(f["value"], f["unit"]),
                     _number(f["limit"], f["unit"]) if f["limit"] else "", used, f["note"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for name, value, limit, used, note in rows:
        lines.append(f"  {name:<{widths[0]}}  {value:>{widths[1]}}  {limit:>{widths[2]}}  {used:<{widths[3]}}  {note}".rstrip())
    if "iam" in report:
        lines += ["", f"Roles the workflows' service account needs ({report['step_mode']} mode):"]
        for grant in report["iam"]:
            lines.append(f"  {grant['role']} on {grant['on']}: {grant['why']} ({', '.join(grant['steps'])})")
    return "\n".join(lines) + "\n"
