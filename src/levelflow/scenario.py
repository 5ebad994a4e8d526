"""Scripted executor behaviour, shared by the stub HTTP server and the local simulator.

A scenario file (JSON or YAML) says how each job behaves, by JOB_NAME:

    default: {polls: 1}
    jobs:
      load_orders: {polls: 3}                 # "running" 3 times, then "success"
      load_refunds: {outcome: fail}           # get_status answers HTTP 500 "Exception..."
      load_forever: {outcome: never}          # always "running"
      flaky_start: {transient: [1, 2]}        # this job's 1st and 2nd calls answer HTTP 503
      slow_job: {duration_s: 5, latency_ms: 200}
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .loader import load_document
from .validate import model_problems
from .errors import LevelflowError


class JobBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    outcome: Literal["success", "fail", "never"] = Field("success", description="How the job ends.")
    fail_on: Literal["start", "status"] = Field("status", description="fail: whether get_id or get_status fails.")
    polls: int = Field(0, ge=0, description="get_status answers 'running' this many times first.")
    duration_s: float = Field(0, ge=0, description="...and keeps answering 'running' until this long after the start.")
    transient: list[int] = Field(default_factory=list, description="1-based numbers of this job's calls answered HTTP 503.")
    latency_ms: int = Field(0, ge=0, le=600_000, description="Delay before every answer.")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: JobBehaviour = Field(default_factory=JobBehaviour)
    jobs: dict[str, JobBehaviour] = Field(default_factory=dict)

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
