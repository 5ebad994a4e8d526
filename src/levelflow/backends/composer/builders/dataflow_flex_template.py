"""dataflow-flextemplate-job-executor: launch a Dataflow flex template and wait for the job."""
from __future__ import annotations

from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

from levelflow.backends.composer.dag_runtime import JOB_REQUESTS
from levelflow.executors import dataflow_request

JOB_REQUESTS["dataflow-flextemplate-job-executor"] = dataflow_request


def build_dataflow_flex_template(step, make):
    """Launch a flex template (body = the launch request) and wait for the job, deferred."""
    return [make(DataflowStartFlexTemplateOperator, "run", project_id="{{ job_param(ti, 'project_id') }}",
                 location="{{ job_param(ti, 'location') }}", body="{{ job_param(ti, 'body') }}",
                 deferrable=True, poll_sleep=step["wait_seconds"])]
