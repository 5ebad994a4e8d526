"""The IAM roles a native-mode workflow's service account needs (docs/step-modes.md), derived
from its steps: each executor's roles come from the catalogue (`Executor.native_roles`), on the
project its job file names (read from --jobs-dir when given, else named by the key to look up);
reading job files from the bucket needs objectViewer on it, and `workflows` steps need the
invoker role on the pipeline's project. `levelflow plan --step-mode native` lists them."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ...executors import CATALOGUE, read_job_file
from ...plan import Plan, PlanStep


def native_roles(plan: Plan, jobs_dir: Optional[Path] = None) -> list[dict]:
    """[{role, on, why, steps}], one per role and resource, sorted; `on` is `projects/<id>`,
    a service account, a bucket, a Pub/Sub topic of the pipeline's project (`topics/<id>`), or
    a description of the job file key that names it."""
    params = plan.platform() if plan.params is not None else None
    project = f"projects/{params.pProjectID}" if params else "projects/<pProjectID>"
    grants: dict[tuple[str, str], dict] = {}

    def grant(role: str, on: str, why: str, step: PlanStep) -> None:
        entry = grants.setdefault((role, on), {"role": role, "on": on, "why": why, "steps": []})
        if step.job_id not in entry["steps"]:
            entry["steps"].append(step.job_id)

    for step in plan.steps():
        if step.type == "workflows":
            grant("roles/workflows.invoker", project, "start and cancel the child workflows", step)
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
    if plan.notify is not None:  # the run's report, published by main (docs/notifications.md)
        grants.setdefault(("roles/pubsub.publisher", f"topics/{plan.notify.pubsub_topic}"), {
            "role": "roles/pubsub.publisher", "on": f"topics/{plan.notify.pubsub_topic}",
            "why": "publish the run's report", "steps": []})
        grants.setdefault(("roles/logging.logWriter", project), {  # sys.log: a report that could not be sent
            "role": "roles/logging.logWriter", "on": project, "why": "log a report that could not be published",
            "steps": []})
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
