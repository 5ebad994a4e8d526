"""Scripted executor behaviour, shared by the stub HTTP server and the local simulator.

A scenario file (JSON or YAML) says how each job behaves, by JOB_NAME (for a child
workflow run through the Workflow Executions API, by its workflow id):

    default: {polls: 1}
    jobs:
      load_orders: {polls: 3}                 # "running" 3 times, then success
      load_refunds: {outcome: fail}           # the executor answers its failure state word
      load_broken: {outcome: error}           # the executor answers HTTP 200 {"error": ..., "message": ...}
      load_gone: {http_status: 404}           # the executor answers HTTP 404
      load_cancelled: {state: CANCELLED}      # the last answer is this state word
      load_forever: {outcome: never}          # always running
      flaky_start: {transient: [1, 2]}        # this job's 1st and 2nd calls answer HTTP 503
      slow_job: {duration_s: 5, latency_ms: 200}
    functions:
      pipeline-notifier: sync                 # answers its final state word in one call

`fail_on` (start | status) says whether a failure comes when the job starts or when it is
polled. The executors' answers follow the AEF functions (see `aef_double`): the intermediate
turns them into `running` / `success` / HTTP 500 "Exception : ...".
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .loader import load_document
from .validate import model_problems
from .errors import LevelflowError


class JobBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    outcome: Literal["success", "fail", "never", "error"] = Field(
        "success", description="How the job ends: success, fail (failure state word), never (always running), "
                               "error (an HTTP 200 error dict from the executor).")
    fail_on: Literal["start", "status"] = Field(
        "status", description="fail / error / http_status: when starting the job, or when polling it."
    )
    state: Optional[str] = Field(
        None, min_length=1, max_length=100_000, description="The executor's last answer: this state word instead of its family's."
    )
    http_status: Optional[int] = Field(None, ge=400, le=599, description="The executor answers this HTTP status (at fail_on).")
    polls: int = Field(0, ge=0, description="get_status answers 'running' this many times first.")
    duration_s: float = Field(0, ge=0, description="...and keeps answering 'running' until this long after the start.")
    transient: list[int] = Field(default_factory=list, description="1-based numbers of this job's calls answered HTTP 503.")
    latency_ms: int = Field(0, ge=0, le=600_000, description="Delay before every answer.")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: JobBehaviour = Field(default_factory=JobBehaviour)
    jobs: dict[str, JobBehaviour] = Field(default_factory=dict)
    functions: dict[str, Literal["sync", "async"]] = Field(
        default_factory=dict,
        description="How a function outside the AEF catalogue answers a call that did not come "
        "through the intermediate: sync (its final state word) or async (a job id).",
    )

    def behaviour(self, job_name: str) -> JobBehaviour:
        return self.jobs.get(job_name, self.default)


def load_scenario(path: str | Path | None) -> Scenario:
    if path is None:
        return Scenario()
    document = load_document(path)
    scenario, problems = model_problems(document, Scenario, document.data if document.data is not None else {})
    if problems:
        raise LevelflowError(problems)
    return scenario
