"""TYPE workflows: run another deployed Cloud Workflow with this run's arguments and wait for it."""
from __future__ import annotations

from airflow.providers.google.cloud.operators.workflows import WorkflowsCreateExecutionOperator
from airflow.providers.google.cloud.sensors.workflows import WorkflowExecutionSensor

from levelflow.backends.composer.dag_runtime import PIPELINE


def build_workflows(step, make):
    """Run another deployed Cloud Workflow with this run's arguments and wait for it."""
    where = dict(project_id=PIPELINE["project_id"], location=PIPELINE["region"], workflow_id=step["workflow_id"])
    return [
        make(WorkflowsCreateExecutionOperator, "start", **where,
             execution="{{ workflow_execution(params, dag_run, ti) }}"),
        make(WorkflowExecutionSensor, "wait", **where, execution_id="{{ sibling(ti, 'start')['name'].split('/')[-1] }}",
             mode="reschedule", poke_interval=step["wait_seconds"], timeout=step["timeout_seconds"]),
    ]
