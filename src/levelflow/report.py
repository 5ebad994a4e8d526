"""The figures of `levelflow plan`: counts, the critical path, and each platform limit
(docs/platform-limits.md) beside the pipeline's own figure, so a user sees how close to a limit it is.

Cloud Workflows figures are measured on the source the Cloud Workflows backend generates
(when platform parameters are given); the limits and per-step costs are the backend's own.
Composer figures follow the DAG's naming (a task group per level and per thread holding the
steps' tasks, named after their JOB_NAME, shortened as the Composer backend does). The backends
are imported inside the functions that use them, so importing this module stays cheap.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Optional

import yaml

from .errors import LevelflowError
from .graph import executed_path
from .plan import Plan, PlanStep

COMPOSER_TASK_ID_LIMIT = 250


@dataclass(frozen=True)
class Figure:
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
            return sum(step_minutes(thread.steps[i])[0] for i in executed_path(thread))

        longest = max(level.threads, key=thread_minutes)  # max keeps the first of equals
        levels.append({"level_id": level.level_id, "thread_id": longest.thread_id, "minutes": round(thread_minutes(longest), 2)})
        for i in executed_path(longest):
            minutes, basis = step_minutes(longest.steps[i])
            chain.append({"job_id": longest.steps[i].job_id, "job_name": longest.steps[i].job_name,
                          "minutes": round(minutes, 2), "basis": basis})
    return {"minutes": round(sum(level["minutes"] for level in levels), 2), "levels": levels, "steps": chain}


# ---------------------------------------------------------------- Cloud Workflows

def generated_sources(plan: Plan) -> tuple[Optional[dict[str, str]], str]:
    """The generated files (name -> source text), or None and why not."""
    if plan.params is None:
        return None, "n/a (give --params to generate the source)"
    from .backends.cloud_workflows.compiler import generate_workflows

    try:
        with warnings.catch_warnings():  # its warnings repeat figures this report shows anyway
            warnings.simplefilter("ignore")
            return generate_workflows(plan), ""
    except (LevelflowError, ValueError) as exc:
        first = exc.problems[0] if isinstance(exc, LevelflowError) and exc.problems else exc
        return None, f"n/a (not generated: {first})"


@dataclass
class SourceShape:
    """What the Cloud Workflows limits constrain, measured on one generated source file."""
    branches: int = 0  # largest `parallel` step
    parallel_depth: int = 0  # deepest nesting of `parallel` steps, through subworkflow calls
    call_depth: int = 1  # deepest chain of subworkflow calls from main
    switch: int = 0  # longest `switch`
    assign: int = 0  # longest `assign`


def _callee(key: str, value: Any) -> Optional[str]:
    """The subworkflow a `call:` runs, or a retry `predicate: ${name}` (also a call)."""
    if key == "call" and isinstance(value, str):
        return value
    if key == "predicate" and isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1].strip()
    return None


def source_shape(document: Any) -> SourceShape:
    """Walk a parsed Cloud Workflows source (a step list, or `main` plus subworkflows)."""
    subworkflows = document if isinstance(document, dict) and "main" in document else {"main": document}
    shape = SourceShape()
    depths: dict[str, tuple[int, int]] = {}  # subworkflow -> (parallel depth, call depth) inside it

    def visit(node: Any, stack: frozenset) -> tuple[int, int]:
        """(parallel nesting, call chain) reached from `node`, relative to it."""
        if isinstance(node, list):
            return max((visit(item, stack) for item in node), default=(0, 0))
        if not isinstance(node, dict):
            return 0, 0
        parallel, calls = 0, 0
        for key, value in node.items():
            inner = visit(value, stack)
            if key == "parallel" and isinstance(value, dict):
                shape.branches = max(shape.branches, len(value.get("branches") or []))
                inner = (inner[0] + 1, inner[1])
            elif key == "switch" and isinstance(value, list):
                shape.switch = max(shape.switch, len(value))
            elif key == "assign" and isinstance(value, list):
                shape.assign = max(shape.assign, len(value))
            elif (callee := _callee(key, value)) is not None and callee in subworkflows and callee not in stack:
                depth = subworkflow(callee, stack)
                inner = (depth[0], depth[1] + 1)
            parallel, calls = max(parallel, inner[0]), max(calls, inner[1])
        return parallel, calls

    def subworkflow(name: str, stack: frozenset) -> tuple[int, int]:
        if name not in depths:
            depths[name] = visit(subworkflows[name], stack | {name})
        return depths[name]

    shape.parallel_depth, calls = subworkflow("main", frozenset())
    shape.call_depth = calls + 1
    return shape


def executed_steps(plan: Plan) -> int:
    """Worst case: every async step polls until its time-out, every retry is used (the workflow
    steps one call and one poll execute are the Cloud Workflows backend's figures)."""
    from .backends.cloud_workflows.compiler import total_executed_steps

    return total_executed_steps(plan.levels)


def cloud_workflows_figures(plan: Plan) -> list[Figure]:
    from .backends.cloud_workflows.compiler import MAX_SOURCE_BYTES as source_limit

    sources, why = generated_sources(plan)
    widest = max(len(level.threads) for level in plan.levels)
    figures = []
    if sources is None:
        figures.append(Figure("source size (largest file)", None, source_limit, "bytes", why))
        shape, measured = SourceShape(branches=widest, parallel_depth=1), False
        origin = "from the definition, one branch per thread (source not generated)"
    else:
        sizes = {name: len(text.encode("utf-8")) for name, text in sources.items()}
        largest = max(sizes, key=lambda name: (sizes[name], name))
        note = largest if len(sizes) == 1 else f"{largest}; {len(sizes)} files: " + ", ".join(f"{n} {s}" for n, s in sorted(sizes.items()))
        figures.append(Figure("source size (largest file)", sizes[largest], source_limit, "bytes", note))
        shapes = [source_shape(yaml.safe_load(text)) for text in sources.values()]
        shape = SourceShape(*(max(getattr(one, f) for one in shapes) for f in SourceShape.__dataclass_fields__))
        measured, origin = True, "measured on the generated source"
    figures += [
        Figure("branches in one parallel step", shape.branches, 10, "", origin),
        Figure("parallel nesting depth", shape.parallel_depth, 2, "", origin),
        Figure("branches running at once", widest, 20, "", "the widest level's threads; more wait for a free slot"),
        Figure("steps executed per execution (worst case)", executed_steps(plan), 100_000, "",
               "every async step polls until its time-out (time-out / wait), every retry used"),
        Figure("HTTP call time-out (longest)", max(s.call_timeout_seconds for s in plan.steps()), 1800, "s", ""),
    ]
    if measured:
        figures += [
            Figure("call-stack depth", shape.call_depth, 20, "", origin),
            Figure("conditions in one switch", shape.switch, 50, "", origin),
            Figure("entries in one assign", shape.assign, 50, "", origin),
        ]
    return figures


# ---------------------------------------------------------------- Composer

def composer_task_id(level_id: str, thread_id: str, job_name: str) -> str:
    """A step's full id: Airflow prefixes the ids of its task groups (level, then thread), and
    the Composer backend shortens long id components."""
    from .backends.composer.compiler import component

    return f"level_{component(level_id)}.thread_{component(thread_id)}.{component(job_name)}"


def composer_figures(plan: Plan) -> list[Figure]:
    ids = [composer_task_id(level.level_id, thread.thread_id, thread.steps[i].job_name)
           for level in plan.levels for thread in level.threads for i in executed_path(thread)]
    longest = max(ids, key=len)
    groups = len(plan.levels) + sum(len(level.threads) for level in plan.levels)
    return [
        Figure("steps that become tasks", len(ids), None, "", "steps skipped by NEXT get none; an executor may use several tasks"),
        Figure("task groups (levels and threads)", groups, None, "", "one per level, one per thread inside it"),
        Figure("task_id length (longest)", len(longest), COMPOSER_TASK_ID_LIMIT, "characters", longest),
        Figure("threads in one level (largest)", max(len(level.threads) for level in plan.levels), None, "",
               "tasks that may run at once, within the DAG's max_active_tasks"),
    ]


# ---------------------------------------------------------------- the report

def build_report(plan: Plan) -> dict[str, Any]:
    figures = cloud_workflows_figures(plan) if plan.engine == "cloud_workflows" else composer_figures(plan)
    return {
        "pipeline": plan.name,
        "engine": plan.engine,
        "counts": counts(plan),
        "critical_path": critical_path(plan),
        "limits": [figure.as_dict() for figure in figures],
    }


def _number(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{text} {unit}".strip() if unit in ("bytes", "s") else text


def format_text(report: dict[str, Any]) -> str:
    c, path = report["counts"], report["critical_path"]
    lines = [
        f"{report['pipeline']} ({report['engine']})",
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
    title = "Cloud Workflows limits" if report["engine"] == "cloud_workflows" else "Composer / Airflow figures"
    lines += ["", f"{title}:"]
    rows = [("", "pipeline", "limit", "used", "")]
    for f in report["limits"]:
        used = f"{f['percent']:g}% {f['status']}" if f["percent"] is not None else ""
        rows.append((f["name"], "n/a" if f["value"] is None else _number(f["value"], f["unit"]),
                     _number(f["limit"], f["unit"]) if f["limit"] else "", used, f["note"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for name, value, limit, used, note in rows:
        lines.append(f"  {name:<{widths[0]}}  {value:>{widths[1]}}  {limit:>{widths[2]}}  {used:<{widths[3]}}  {note}".rstrip())
    return "\n".join(lines) + "\n"
