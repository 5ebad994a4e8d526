"""Scripted executor behaviour, shared by the stub HTTP server and the local simulator.

A scenario file (JSON or YAML) says how each job behaves, by JOB_NAME (for a child
workflow run through the Workflow Executions API, by its workflow id):

    default: {polls: 1}
    jobs:                                     # each entry over default: what it gives, default's for the rest
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

import difflib
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import LevelflowError, Problem
from .loader import Document, load_document
from .model import shown


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

    @model_validator(mode="before")
    @classmethod
    def _entries_over_default(cls, data: Any) -> Any:
        """Each `jobs` entry is read over `default`: what it gives, `default`'s for the rest (a
        default that is itself wrong is reported once, at `default`, and not merged)."""
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
            return data
        default = data.get("default", {})
        try:
            JobBehaviour.model_validate(default)
        except ValueError:
            return data
        return {**data, "jobs": {name: {**default, **entry} if isinstance(entry, dict) else entry
                                 for name, entry in data["jobs"].items()}}

    def behaviour(self, job_name: str) -> JobBehaviour:
        return self.jobs.get(job_name, self.default)

    def unknown_jobs(self, names: Iterable[str]) -> list[tuple[str, Optional[str]]]:
        """The `jobs` entries that name none of `names` (a pipeline's JOB_NAMEs and child
        workflow ids), each with the closest name when one is close: a misspelt entry would
        otherwise leave its job on `default` silently."""
        known = sorted(set(names))
        return [(name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None))
                for name in self.jobs if name not in known]


def load_scenario(path: str | Path | None) -> Scenario:
    if path is None:
        return Scenario()
    document = load_document(path)
    try:
        return Scenario.model_validate(document.data if document.data is not None else {})
    except ValidationError as exc:
        raise LevelflowError([_problem(document, dict(error)) for error in exc.errors()]) from None


_TYPE_WORDS = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "an object (mapping)",
    "model_type": "an object (mapping)",
    "model_attributes_type": "an object (mapping)",
    "bool_type": "true or false",
    "int_type": "a whole number",
}


def _problem(document: Document, error: dict) -> Problem:
    """A user-facing message for one of pydantic's errors, located in the scenario file."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return document.problem(loc[:-1], f"missing required key {loc[-1]}")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = JobBehaviour if len(loc) > 1 else Scenario
        known = list(model.model_fields)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; expected one of {', '.join(known)}"
        return document.problem(loc, f"unknown key {key!r}{hint}")
    if kind in _TYPE_WORDS:
        return document.problem(loc, f"must be {_TYPE_WORDS[kind]}, got {shown(error.get('input'))}")
    return document.problem(loc, f"{error['msg']}, got {shown(error.get('input'))}")


def unknown_job_warnings(path: str | Path, scenario: Scenario, names: Iterable[str], pipeline: str) -> list[Problem]:
    """A located warning for each `jobs` entry of the scenario file `path` that names no job of
    the pipeline (`names`: its JOB_NAMEs and child workflow ids)."""
    unknown = scenario.unknown_jobs(names)
    if not unknown:
        return []
    document = load_document(path)
    return [document.problem(("jobs", name), f"names no job of pipeline {pipeline}"
                                             f"{f'; did you mean {close}?' if close else ''} (this entry applies to nothing)")
            for name, close in unknown]
