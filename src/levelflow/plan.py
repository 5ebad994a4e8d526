"""The engine-neutral plan: levels -> threads -> steps, with executors, URLs and timings resolved.

Every backend (Cloud Workflows, Airflow, the local engine, the graph and `plan` reports) reads
this structure only; none of them looks at the raw definition again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

from .model import Notify, Pipeline, PlatformParams, Schedule, Step

DEFAULT_WAIT_SECONDS = 30
DEFAULT_ASYNC_TIMEOUT_MINUTES = 60.0
DEFAULT_ASYNC_CALL_TIMEOUT = 300
DEFAULT_SYNC_CALL_TIMEOUT = 1800

# A step's status in a run: the words of every engine's report and record (docs/semantics.md).
# pending: not run yet (the run goes on, or was interrupted and can resume); not_started: the
# run failed before reaching it.
STEP_STATUSES = ("pending", "running", "succeeded", "failed", "continued", "skipped", "not_started", "interrupted")
SETTLED_OK = ("succeeded", "continued", "skipped")  # a run whose every step ends so has succeeded


class PlanStep(NamedTuple):  # a tuple: small and quick to make, and a plan may hold 100,000 steps (docs/limits.md)
    job_id: str
    job_name: str
    type: str  # async | sync | workflows
    executor: Optional[str]  # function that starts (async) or runs (sync) the job
    status_executor: Optional[str]  # function that reports an async job's status
    workflow_id: Optional[str]  # for workflows steps
    wait_seconds: int
    timeout_minutes: float  # async: give up polling after this long
    call_timeout_seconds: int
    continue_if_fail: bool
    step_properties: dict
    next_job_id: Optional[str]
    retries: int
    estimated_minutes: Optional[float]
    composer_step: Optional[str] = None  # COMPOSER_STEP: the executor the Composer engine runs


@dataclass(frozen=True)
class PlanThread:
    thread_id: str
    steps: tuple[PlanStep, ...]

    def executed_path(self) -> list[int]:
        """Indices of the steps the thread runs: in order, following each NEXT jump (the steps
        jumped over never run). The one implementation every engine, `plan` and `graph` use."""
        index = {step.job_id: i for i, step in enumerate(self.steps)}
        path, i = [], 0
        while i < len(self.steps):
            path.append(i)
            target = self.steps[i].next_job_id
            i = index[target] if target else i + 1
        return path

    def executed_steps(self) -> list[PlanStep]:
        return [self.steps[i] for i in self.executed_path()]


@dataclass(frozen=True)
class PlanLevel:
    level_id: str
    threads: tuple[PlanThread, ...]


@dataclass(frozen=True)
class Plan:
    name: str
    engine: str
    description: Optional[str]
    schedule: Optional[Schedule]  # None: run only when started
    notify: Optional[Notify]  # None: nobody is told of a run's end
    levels: tuple[PlanLevel, ...]
    params: Optional[PlatformParams] = None
    source: Optional[str] = None
    deadline_minutes: Optional[float] = None  # None: a run may take as long as its steps' time-outs allow

    def steps(self):
        for level in self.levels:
            for thread in level.threads:
                yield from thread.steps

    def executed_steps(self):
        """Every step a run executes, level by level (NEXT jumps followed)."""
        for level in self.levels:
            for thread in level.threads:
                yield from thread.executed_steps()

    @property
    def step_count(self) -> int:
        return sum(len(t.steps) for level in self.levels for t in level.threads)

    def platform(self) -> PlatformParams:
        """The platform parameters, which generating and running need (a located error without)."""
        if self.params is None:
            from .errors import LevelflowError, Problem

            raise LevelflowError([Problem(self.source or self.name, "platform parameters are needed here (--params FILE)")])
        return self.params

    def function_url(self, name: str) -> str:
        return self.platform().function_url(name)


def _plan_step(step: Step, params: Optional[PlatformParams]) -> PlanStep:
    executor = step.function_id_name or step.function_name or step.composer_step
    if step.type == "async":
        status = step.function_status_name or executor
    else:
        status = None
    default_timeout = DEFAULT_SYNC_CALL_TIMEOUT if step.type == "sync" else DEFAULT_ASYNC_CALL_TIMEOUT
    properties = step.step_properties
    if properties is None:
        properties = {"jobs_definitions_bucket": params.pJobsDefinitionsBucket} if params else {}
    return PlanStep(
        job_id=step.job_id,
        job_name=step.job_name,
        type=step.type,
        executor=executor if step.type != "workflows" else None,
        status_executor=status,
        workflow_id=step.workflows_name if step.type == "workflows" else None,
        wait_seconds=step.wait_time_seconds or DEFAULT_WAIT_SECONDS,
        timeout_minutes=step.async_timeout_minutes or DEFAULT_ASYNC_TIMEOUT_MINUTES,
        call_timeout_seconds=step.timeout_seconds or default_timeout,
        continue_if_fail=step.continue_if_fail,
        step_properties=dict(properties),
        next_job_id=step.next,
        retries=step.retries,
        estimated_minutes=step.estimated_minutes,
        composer_step=step.composer_step,
    )


def build_plan(
    pipeline: Pipeline, params: Optional[PlatformParams] = None, *, source: str | None = None, engine: str | None = None
) -> Plan:
    name = pipeline.name or (Path(source).stem if source else "pipeline")
    levels = tuple(
        PlanLevel(
            level.level_id,
            tuple(PlanThread(t.thread_id, tuple(_plan_step(s, params) for s in t.steps)) for t in level.threads),
        )
        for level in pipeline.definition
    )
    return Plan(
        name=name,
        engine=engine or pipeline.engine,
        description=pipeline.description,
        schedule=pipeline.schedule,
        notify=pipeline.notify,
        deadline_minutes=pipeline.deadline_minutes,
        levels=levels,
        params=params,
        source=source,
    )
