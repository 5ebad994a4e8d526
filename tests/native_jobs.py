"""The job files, Dataform repository and steps that native-mode tests run, on both engines
(Cloud Workflows in the emulator, the local engine): AEF-format job files as the AEF contract's
job file table describes them (docs/step-modes.md), served by a stocked FakeGoogle."""
import contextlib
import json

from conftest import PARAMS, step
from fake_google_api import FakeGoogle

BUCKET = next(p["ParameterValue"] for p in json.loads(PARAMS.read_text()) if p["ParameterKey"] == "pJobsDefinitionsBucket")
PROJECT = next(p["ParameterValue"] for p in json.loads(PARAMS.read_text()) if p["ParameterKey"] == "pProjectID")
DATES = {"start_date": "2026-11-30", "end_date": "2026-12-01"}
REPOSITORY = "projects/sql-project/locations/europe-west1/repositories/warehouse"

JOBS = {
    "dataproc-serverless-job-executor/spark_load.json": {
        "dataproc_serverless_project_id": "proc-project", "dataproc_serverless_region": "europe-west1",
        "jar_file_location": "gs://jars/app.jar", "spark_app_main_class": "com.example.Main", "spark_args": ["--day", "1"],
        "dataproc_serverless_runtime_version": "2.2", "dataproc_service_account": "spark@proc-project.iam.gserviceaccount.com",
        "spark_app_properties": '{"spark.executor.cores": "4"}', "subnetwork": "regions/europe-west1/subnetworks/default",
        "spark_history_server_cluster": "history"},
    "dataflow-flextemplate-job-executor/Copy_Orders_2.json": {
        "project_id": "flow-project", "dataflow_location": "europe-west1", "dataflow_template_name": "Jdbc_to_BigQuery",
        "dataflow_template_version": "latest", "dataflow_temp_bucket": "flow-temp", "dataflow_job_params": {"query": "select 1"},
        "dataflow_max_workers": 5, "network": "default", "subnetwork": "regions/europe-west1/subnetworks/default"},
    "dataform-tag-executor/daily_marts.json": {
        "dataform_project_id": "sql-project", "dataform_location": "europe-west1", "repository_name": "warehouse",
        "branch": "main", "tags": ["daily"]},
}
SQLX = 'config {\n  type: "operations",\n  tags: ["x"], bigquery: { labels: { team: "{sales}" } }\n}\nselect * from t where d between ${start_date} and ${end_date}\n'


def dataproc(job_id="J1", job_name="spark_load", **extra):
    return step(job_id, JOB_NAME=job_name, FUNCTION_ID_NAME="dataproc-serverless-job-executor", **extra)


def dataflow(job_id="J2", **extra):
    return step(job_id, JOB_NAME="Copy_Orders_2", FUNCTION_ID_NAME="dataflow-flextemplate-job-executor", **extra)


def dataform(job_id="J3", **extra):
    return step(job_id, JOB_NAME="daily_marts", FUNCTION_ID_NAME="dataform-tag-executor", **extra)


def bigquery(job_id="J4", **extra):
    return step(job_id, JOB_NAME="orders_summary", FUNCTION_ID_NAME="bq-saved-query-executor", **extra)


# Per executor kind: (step maker, what the fake's scenario matches, the poll method, the cancel
# method, the cancel's body), as Google's REST references give them (fake_google_api).
CANCELS = [
    (dataproc, "aef-", "dataproc.projects.locations.batches.get", "dataproc.projects.regions.operations.cancel", None),
    (dataflow, "copyorders2", "dataflow.projects.locations.jobs.get", "dataflow.projects.locations.jobs.update",
     {"requestedState": "JOB_STATE_CANCELLED"}),
    (dataform, "daily", "dataform.projects.locations.repositories.workflowInvocations.get",
     "dataform.projects.locations.repositories.workflowInvocations.cancel", {}),
    (bigquery, "aef_", "bigquery.jobs.get", "bigquery.jobs.cancel", None),
]
PROPERTIES = {"dataform_project_id": "sql-project", "dataform_location": "europe-west1", "repository_name": "warehouse"}


@contextlib.contextmanager
def stocked_fake(pipeline_name="native_pipe"):
    """A started FakeGoogle holding the job files in the jobs bucket and the .sqlx in the repository."""
    with FakeGoogle() as google:
        for name, job in JOBS.items():
            google.objects[f"{BUCKET}/{name}"] = json.dumps(job).encode()
        google.dataform_files[REPOSITORY] = {f"definitions/{pipeline_name}/orders_summary.sqlx": SQLX}
        yield google
