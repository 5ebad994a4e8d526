"""Native step mode, whichever engine runs it (docs/step-modes.md): the steps call Google's APIs
themselves, as the AEF executors would, so only async steps of a catalogued executor with a
Google API (`Executor.native_api`) and `workflows` steps can run. Cloud Workflows checks this
before generating, the local engine before running."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import Problem
from .executors import AEF, CATALOGUE, DATAFLOW_FLEX_TEMPLATE, Executor, dataflow_job_name, read_job_file
from .loader import load_document
from .plan import Plan, PlanStep

NATIVE_EXECUTORS = sorted(name for name, entry in CATALOGUE.items() if entry.native_api)


def native_problems(plan: Plan, jobs_dir: Optional[Path] = None, jobs: Optional[dict] = None) -> list[Problem]:
    """What native mode cannot run, located at the step: a sync step (there is no function to
    call), an executor without a Google API in the catalogue, a status function of its own, a
    job file (--jobs-dir) that is missing or not in AEF format. The job files read are kept in
    `jobs` (by <executor>/<JOB_NAME>.json) when it is given, for the caller to use."""
    jobs = {} if jobs is None else jobs
    found = [(("definition", li, "THREADS", ti, "STEPS", si, key), message)
             for li, level in enumerate(plan.levels) for ti, thread in enumerate(level.threads)
             for si, step in enumerate(thread.steps) for key, message in _step_problems(step, jobs_dir, jobs)]
    if not found or plan.source is None:
        return [Problem(plan.source or plan.name, message, path) for path, message in found]
    document = load_document(plan.source)  # for the line and column of each
    return [document.problem(path, message) for path, message in found]


def _step_problems(step: PlanStep, jobs_dir: Optional[Path], jobs: dict) -> list[tuple[str, str]]:
    if step.type == "sync":
        return [("TYPE", f"step {step.job_id!r}: a sync step calls the function {step.executor!r}, and native mode calls "
                         "Google's APIs instead of functions; make it an async step of a known executor, or use "
                         "--step-mode functions")]
    if step.type != "async":
        return []
    entry = CATALOGUE.get(step.executor or "")
    if entry is None or entry.native_api is None:
        return [("FUNCTION_ID_NAME", f"step {step.job_id!r}: unknown executor {step.executor!r} for native mode, which calls "
                                     f"the Google API of a known executor: {', '.join(NATIVE_EXECUTORS)} (or use "
                                     "--step-mode functions to call any executor function)")]
    problems = []
    if step.status_executor and step.status_executor != step.executor:
        problems.append(("FUNCTION_STATUS_NAME", f"step {step.job_id!r}: FUNCTION_STATUS_NAME {step.status_executor!r} names a "
                                                 "function, and native mode polls the job through its API; drop it"))
    if entry.name == DATAFLOW_FLEX_TEMPLATE.name and not dataflow_job_name(step.job_name):
        problems.append(("JOB_NAME", f"JOB_NAME {step.job_name!r} gives an empty Dataflow job name (lower-cased, only a-z, "
                                     "0-9 and '+' kept, leading digits dropped); give the step a JOB_NAME with a letter"))
    if jobs_dir is not None:
        problems += [("JOB_NAME", message) for message in _job_file_problems(entry, step, jobs_dir, jobs)]
    return problems


def _job_file_problems(entry: Executor, step: PlanStep, jobs_dir: Path, jobs: dict) -> list[str]:
    """The problems of a step's job file in --jobs-dir; its content, when it is usable, goes into `jobs`."""
    job_file = f"{entry.name}/{step.job_name}.json"
    path = jobs_dir / job_file
    params, job_format, problems = read_job_file(entry, path, step.job_name)
    if not problems and job_format != AEF:
        problems = [aef_only(entry)]
    if not problems and params is not None:
        jobs[job_file] = params
    return [f"{path}: {message}" for message in problems]


def aef_only(entry: Executor) -> str:
    """Why an operator-native job file cannot drive a native step."""
    return (f"an {entry.formats[1].title} job file, which only Composer operators mode reads; native-mode "
            + ("steps of this executor read their query from Dataform (remove the file)" if entry.fileless_format else
               f"steps build the AEF executor's request from an AEF-format file ({entry.describe_formats()})"))
