"""dataform-tag-executor: compile the repository at a commit, invoke the tagged actions, wait."""
from __future__ import annotations

from google.cloud.dataform_v1beta1 import WorkflowInvocation
from airflow.providers.google.cloud.operators.dataform import (
    DataformCreateCompilationResultOperator,
    DataformCreateWorkflowInvocationOperator,
)
from airflow.providers.google.cloud.sensors.dataform import DataformWorkflowInvocationStateSensor

from levelflow.backends.composer.dag_runtime import JOB_REQUESTS, MACROS, job_param, sibling, templated
from levelflow.executors import dataform_request

JOB_REQUESTS["dataform-tag-executor"] = dataform_request


def dataform_invocation(ti):
    # One macro for the whole dict: native rendering would turn a string result into a literal.
    return {"compilation_result": sibling(ti, "compile")["name"], "invocation_config": job_param(ti, "invocation_config")}


MACROS["dataform_invocation"] = dataform_invocation


def build_dataform_tag(step, make):
    """Compile the repository at a commit, invoke the tagged actions, wait for the invocation."""
    where = dict(project_id="{{ job_param(ti, 'project_id') }}", region="{{ job_param(ti, 'region') }}",
                 repository_id="{{ job_param(ti, 'repository_id') }}")
    state = WorkflowInvocation.State
    return [
        make(DataformCreateCompilationResultOperator, "compile", **where,
             compilation_result="{{ job_param(ti, 'compilation_result') }}"),
        make(DataformCreateWorkflowInvocationOperator, "invoke", **where, asynchronous=True,
             workflow_invocation="{{ dataform_invocation(ti) }}"),
        make(templated(DataformWorkflowInvocationStateSensor, "project_id", "region", "repository_id"), "wait",
             **where, workflow_invocation_id="{{ sibling(ti, 'invoke')['name'].split('/')[-1] }}",
             expected_statuses={state.SUCCEEDED}, failure_statuses={state.FAILED, state.CANCELLED},
             mode="reschedule", poke_interval=step["wait_seconds"], timeout=step["timeout_seconds"]),
    ]
