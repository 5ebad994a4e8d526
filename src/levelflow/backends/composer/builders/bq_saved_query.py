"""bq-saved-query-executor: run the step's saved query as a BigQuery job and wait for it.

In AEF format the query is the step's .sqlx file of a Dataform repository: embedded in the
step's data at generation time (`--dataform-dir`), else read here, when the step's job_params
task runs, through the Dataform API (`read_sqlx`).
"""
from __future__ import annotations

from airflow.providers.google.cloud.operators.bigquery import BigQueryInsertJobOperator

from levelflow.backends.composer.dag_runtime import JOB_REQUESTS, templated
from levelflow.executors import bq_request, sqlx_location, strip_config_block


def read_sqlx(step, run):
    """The step's query: its .sqlx file (`sqlx_location`) read now through the Dataform API,
    its config block dropped."""
    repository, path = sqlx_location(step, run)
    # Imported here, not with the operators: only a run that reads a query needs the hook.
    from airflow.providers.google.cloud.hooks.dataform import DataformHook

    try:
        response = DataformHook().get_dataform_client().read_repository_file(request={"name": repository, "path": path})
    except Exception as error:
        raise RuntimeError(f"step {step['job_name']}: cannot read {path} of Dataform repository {repository}: {error}") from error
    return strip_config_block(response.contents.decode("utf-8"))


def bq_saved_query_request(job_format, params, step, run):
    """bq_request, with the query read first when it was not embedded at generation time."""
    if job_format == "aef" and step.get("sql") is None:
        step = {**step, "sql": read_sqlx(step, run)}
    return bq_request(job_format, params, step, run)


JOB_REQUESTS["bq-saved-query-executor"] = bq_saved_query_request


def build_bq_saved_query(step, make):
    """Run a BigQuery job (configuration = the job configuration built by the job_params task), deferred."""
    return [make(templated(BigQueryInsertJobOperator, "location"), "run",
                 project_id="{{ job_param(ti, 'project_id') }}", location="{{ job_param(ti, 'location') }}",
                 configuration="{{ job_param(ti, 'configuration') }}", deferrable=True,
                 poll_interval=step["wait_seconds"])]
