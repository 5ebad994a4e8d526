"""dataproc-serverless-job-executor: create a Dataproc Serverless batch and wait for it."""
from __future__ import annotations

from airflow.providers.google.cloud.operators.dataproc import DataprocCreateBatchOperator

from levelflow.backends.composer.dag_runtime import JOB_REQUESTS
from levelflow.executors import dataproc_request

JOB_REQUESTS["dataproc-serverless-job-executor"] = dataproc_request


def build_dataproc_serverless(step, make):
    """Create a Dataproc Serverless batch with a per-run id and wait for it, deferred."""
    return [make(DataprocCreateBatchOperator, "run", project_id="{{ job_param(ti, 'project_id') }}",
                 region="{{ job_param(ti, 'region') }}", batch="{{ job_param(ti, 'batch') }}",
                 batch_id="{{ unique_id(ti) }}", deferrable=True,
                 polling_interval_seconds=step["wait_seconds"])]
