"""Warnings: definitions that validate but would fail against the deployed AEF functions.

Each warning is a located Problem. Commands print them as `warning: ...` and, with `--strict`,
exit 1 (docs/migrating-from-aef.md says what to change).
"""
from __future__ import annotations

from .errors import Problem
from .loader import Document
from .model import Pipeline
from .protocol import ASYNC_EXECUTORS, FAILING_WORDS, has_failing_word

_WORDS = " or ".join(repr(w) for w in FAILING_WORDS)


def pipeline_warnings(document: Document, pipeline: Pipeline, name: str) -> list[Problem]:
    found: list[Problem] = []
    saved_queries = False
    for li, level in enumerate(pipeline.definition):
        for ti, thread in enumerate(level.threads):
            for si, step in enumerate(thread.steps):
                if step.type == "async":
                    if has_failing_word(step.job_name):
                        found.append(document.problem(
                            ("definition", li, "THREADS", ti, "STEPS", si, "JOB_NAME"),
                            f"the job name {step.job_name!r} contains {_WORDS}: the AEF intermediate fails every answer "
                            "containing those words, and executors put the job name in their answers (BigQuery job ids), "
                            "so the step fails although its job started; rename the job"))
                    saved_queries = saved_queries or "bq-saved-query-executor" in (step.function_id_name, step.composer_step)
                elif step.type == "sync" and step.function_name in ASYNC_EXECUTORS:
                    found.append(document.problem(
                        ("definition", li, "THREADS", ti, "STEPS", si, "FUNCTION_NAME"),
                        f"{step.function_name} starts a job and answers its id, so a sync step calling it always fails "
                        "(the job is left running unwatched); declare the step TYPE async with FUNCTION_ID_NAME"))
    if saved_queries and has_failing_word(name):
        found.append(document.problem(
            ("name",) if pipeline.name else (),
            f"the pipeline name {name!r} contains {_WORDS}: bq-saved-query-executor puts the workflow name in its job "
            "ids, which the AEF intermediate then fails; choose another name"))
    return found
