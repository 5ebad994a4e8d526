"""The IAM roles a pipeline's workflows need, as the service account they run as
(docs/step-modes.md, docs/deployment.md), derived from its steps. `levelflow plan` lists them and
the Terraform module grants exactly these.

- Functions mode: the steps call the AEF intermediate function, so the invoker role on it.
- Native mode: each executor's roles come from the catalogue (`Executor.native_roles`), on the
  project its job file names (read from --jobs-dir when given, else named by the key to look
  up); reading job files from the bucket needs objectViewer on it.
- Both: `workflows` steps, and the parent of a split pipeline, start workflows (the invoker
  role on the pipeline's project); `notify` publishes to its topic and logs what it could not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ...executors import CATALOGUE, read_job_file
from ...plan import Plan, PlanStep

# A 2nd gen function (the AEF deploys its functions so) is invoked through its Cloud Run service:
# roles/run.invoker on it (cloud.google.com/functions/docs/securing/authenticating). The
# Terraform module grants roles/cloudfunctions.invoker instead for a 1st gen function.
INVOKER_ROLE = "roles/run.invoker"


def native_roles(plan: Plan, jobs_dir: Optional[Path] = None, parts: int = 0) -> list[dict]:
    """Native mode's roles: see workflow_roles."""
    return workflow_roles(plan, "native", jobs_dir, parts)


def workflow_roles(plan: Plan, step_mode: str, jobs_dir: Optional[Path] = None, parts: int = 0) -> list[dict]:
    """[{role, on, why, steps}], one per role and resource, sorted; `on` is `projects/<id>`,
    a service account, a bucket, a Pub/Sub topic of the pipeline's project (`topics/<id>`), the
    intermediate function of the pipeline's project and region (`functions/<name>`), or a
    description of the job file key that names it. `parts`: the child workflows the pipeline
    was split into (its parent starts them)."""
    params = plan.platform() if plan.params is not None else None
    project = f"projects/{params.pProjectID}" if params else "projects/<pProjectID>"
    grants: dict[tuple[str, str], dict] = {}

    def grant(role: str, on: str, why: str, step: Optional[PlanStep] = None) -> None:
        entry = grants.setdefault((role, on), {"role": role, "on": on, "why": why, "steps": []})
        if step is not None and step.job_id not in entry["steps"]:
            entry["steps"].append(step.job_id)

    for step in plan.steps():
        if step.type == "workflows":
            grant("roles/workflows.invoker", project, "start and cancel the child workflows", step)
            continue
        if step_mode == "functions":
            function = params.pFunctionIntermediateName if params else "<pFunctionIntermediateName>"
            grant(INVOKER_ROLE, f"functions/{function}", "call the intermediate function (Cloud Functions 2nd gen)", step)
            continue
        entry = CATALOGUE.get(step.executor or "")
        if step.type != "async" or entry is None or entry.native_api is None:
            continue  # refused by generation (native_problems)
        job_file = f"{entry.name}/{step.job_name}.json"
        reads_file = entry.needs_job_params and entry.fileless_format is None
        job = read_job_file(entry, jobs_dir / job_file, step.job_name)[0] if reads_file and jobs_dir is not None else None
        if reads_file and jobs_dir is None:
            bucket = params.pJobsDefinitionsBucket if params else "<pJobsDefinitionsBucket>"
            grant("roles/storage.objectViewer", f"buckets/{bucket}", "read the job files", step)
        for role, where, why in entry.native_roles:
            grant(role, _resource(where, job, job_file, step, project), why, step)
    if parts:
        grant("roles/workflows.invoker", project, "start and poll the pipeline's parts")
    if plan.notify is not None:  # the run's report, published by main (docs/notifications.md)
        grant("roles/pubsub.publisher", f"topics/{plan.notify.pubsub_topic}", "publish the run's report")
        # sys.log: a report that could not be sent
        grant("roles/logging.logWriter", project, "log a report that could not be published")
    return sorted(grants.values(), key=lambda g: (g["on"], g["role"]))


def _resource(where: str, job: Optional[dict], job_file: str, step: PlanStep, project: str) -> str:
    kind, _, key = where.partition(":")
    if kind == "pipeline":
        return project
    if kind == "props":
        value = step.step_properties.get(key)
        return f"projects/{value}" if isinstance(value, str) and value else f"projects/<workflow property {key}>"
    value = job.get(key) if job else None
    known = isinstance(value, str) and bool(value)
    if kind == "job_account":
        return f"serviceAccounts/{value}" if known else f"serviceAccounts/<{key} of {job_file}>"
    return f"projects/{value}" if known else f"projects/<{key} of {job_file}>"
