"""The Composer engine: a Plan becomes one self-contained Airflow DAG file (compiler.py).

This declaration is all the rest of levelflow knows about the engine (see `levelflow.backends`);
the compiler is imported only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .. import Engine, Figure, GenerateOptions, Limit

if TYPE_CHECKING:
    from ...errors import Problem
    from ...plan import Plan, PlanStep

LIMITS = (
    Limit("task_id_chars", "task_id length (longest)", 250, "characters",
          "https://github.com/apache/airflow/blob/main/airflow-core/src/airflow/models/base.py",
          "ids are validated names (no '.'), a step's tasks <step>.<task>; components longer than 60 characters "
          "are shortened with a hash (Airflow's ID_LEN)"),
    Limit("import_seconds", "DAG file import time", 30, "s",
          "https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#dagbag-import-timeout",
          "the file reads nothing from the network or GCS while it is parsed; task groups for levels and threads only "
          "(none per step), dependencies recorded without Airflow's per-dependency hash of the whole DAG; measured by "
          "benchmarks/dag_parse.py up to 10,000 steps"),
)


def _generate_files(plan: "Plan", options: GenerateOptions) -> dict[str, str]:
    from . import compiler

    return compiler.generate_files(plan, options)


def _check(plan: "Plan", options: GenerateOptions) -> "list[Problem]":
    from . import compiler

    return compiler.check(plan, options)


# The tasks of an operators-mode step after its job_params task, as its builder makes them
# (builders/<module>.py; tests/test_composer_builders.py checks them in real Airflow 2 and 3).
BUILDER_TASKS = {
    "dataform_tag": ("compile", "invoke", "wait"),
    "dataflow_flex_template": ("run",),
    "dataproc_serverless": ("run",),
    "bq_saved_query": ("run",),
    "workflows": ("start", "wait"),
}
PARAMS_TASK = "job_params"  # the task of a step that loads its job parameters
GATE_TASK = "continue"  # the gate after a CONTINUE_IF_FAIL step


def task_id(level_id: str, thread_id: str, job_name: str, task: str = "") -> str:
    """A task's full id: Airflow prefixes the ids of its task groups (level, then thread); a
    step's tasks are `<step>.<task>` inside its thread's group (a functions-mode step's call is
    `<step>` itself, `task` empty); the compiler shortens long id components."""
    from .compiler import component

    step = f"level_{component(level_id)}.thread_{component(thread_id)}.{component(job_name)}"
    return f"{step}.{task}" if task else step


def step_tasks(step: "PlanStep", mode: str) -> Optional[list[str]]:
    """The tasks one step becomes in a step mode, as `task_id`'s `task`, in run order and its
    gate last; None when operators mode does not know the step's executor (an error there)."""
    from ...executors import CATALOGUE, WORKFLOWS_EXECUTOR

    gate = [GATE_TASK] if step.continue_if_fail else []
    if step.type != "workflows" and mode == "functions":
        return [""] + gate
    entry = CATALOGUE.get(WORKFLOWS_EXECUTOR if step.type == "workflows" else step.composer_step or step.executor or "")
    if entry is None:
        return None
    params = [PARAMS_TASK] if entry.needs_job_params and mode == "operators" else []
    return params + list(BUILDER_TASKS[entry.composer]) + gate


def _figures(plan: "Plan", options: GenerateOptions) -> list[Figure]:
    executed = [(level, thread, step) for level in plan.levels for thread in level.threads for step in thread.executed_steps()]
    ids = [task_id(level.level_id, thread.thread_id, step.job_name, task)
           for level, thread, step in executed for mode in ENGINE.step_modes for task in step_tasks(step, mode) or ()]
    longest = max(ids, key=len)
    groups = len(plan.levels) + sum(len(level.threads) for level in plan.levels)
    id_limit = next(limit for limit in LIMITS if limit.key == "task_id_chars")
    return [
        Figure("steps that become tasks", len(executed), None, "", "steps skipped by NEXT get none; an executor may use several tasks"),
        Figure("task groups (levels and threads)", groups, None, "",
               "one per level, one per thread inside it; a step's tasks are <step>.<task> in its thread's group"),
        id_limit.figure(len(longest), longest),
        Figure("threads in one level (largest)", max(len(level.threads) for level in plan.levels), None, "",
               "tasks that may run at once, within the DAG's max_active_tasks"),
    ]


ENGINE = Engine(
    name="composer",
    title="Composer",
    step_modes=("operators", "functions"),
    generate_files=_generate_files,
    check=_check,
    figures=_figures,
    inputs={"jobs_dir": ("operators",), "dataform_dir": ("operators",)},
    limits=LIMITS,
)
