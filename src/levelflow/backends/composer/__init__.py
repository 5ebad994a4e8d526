"""The Composer engine: a Plan becomes one self-contained Airflow DAG file (compiler.py).

This declaration is all the rest of levelflow knows about the engine (see `levelflow.backends`);
the compiler is imported only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import Engine, Figure, GenerateOptions, Limit

if TYPE_CHECKING:
    from ...errors import Problem
    from ...plan import Plan

LIMITS = (
    Limit("task_id_chars", "task_id length (longest)", 250, "characters",
          "https://github.com/apache/airflow/blob/main/airflow-core/src/airflow/models/base.py",
          "ids are validated names; components longer than 60 characters are shortened with a hash (Airflow's ID_LEN)"),
    Limit("import_seconds", "DAG file import time", 30, "s",
          "https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#dagbag-import-timeout",
          "the file reads nothing from the network or GCS while it is parsed; measured by benchmarks/dag_parse.py"),
)


def _generate_files(plan: "Plan", options: GenerateOptions) -> dict[str, str]:
    from . import compiler

    return compiler.generate_files(plan, options)


def _check(plan: "Plan", options: GenerateOptions) -> "list[Problem]":
    from . import compiler

    return compiler.check(plan, options)


def task_id(level_id: str, thread_id: str, job_name: str) -> str:
    """A step's full task id: Airflow prefixes the ids of its task groups (level, then thread),
    and the compiler shortens long id components."""
    from .compiler import component

    return f"level_{component(level_id)}.thread_{component(thread_id)}.{component(job_name)}"


def _figures(plan: "Plan") -> list[Figure]:
    ids = [task_id(level.level_id, thread.thread_id, step.job_name)
           for level in plan.levels for thread in level.threads for step in thread.executed_steps()]
    longest = max(ids, key=len)
    groups = len(plan.levels) + sum(len(level.threads) for level in plan.levels)
    id_limit = next(limit for limit in LIMITS if limit.key == "task_id_chars")
    return [
        Figure("steps that become tasks", len(ids), None, "", "steps skipped by NEXT get none; an executor may use several tasks"),
        Figure("task groups (levels and threads)", groups, None, "", "one per level, one per thread inside it"),
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
