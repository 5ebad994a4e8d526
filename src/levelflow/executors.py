"""The executor catalogue of the Composer engine: which Google operators run each executor.

One entry per executor. An entry holds fixed Python text written by levelflow (never text from
a definition): the import lines of its operators and a builder function that the generated
DAG calls once per step. Adding an executor is one entry here plus its test.

A builder has the signature `build(step, make)` and returns the step's tasks in run order;
`make(operator_class, task_id, **kwargs)` creates one task with the step's retries and
time-out. Builders read job parameters at run time through Jinja macros of the DAG:

- `job_param(ti, KEY)`: KEY of the step's job parameter file, loaded by the step's
  `job_params` task (from GCS at run time, or embedded with `--jobs-dir`);
- `sibling(ti, TASK)`: the XCom return value of another task of the same step;
- `unique_id(ti)`: a per-run id made of the job name and the run id (Dataproc batch ids);
- `query_variables(params, dag_run)`: the run's `start_date` / `end_date`.

The DAG renders templates as native objects, so `{{ job_param(ti, 'batch') }}` yields a dict.
(A template whose result is a string is parsed as a Python literal by native rendering, so a
structure that mixes values is better returned whole by one macro, as Dataform's is.) An entry's
source may define extra macros by adding them to `MACROS`.
Operator fields that the provider does not template are made templated with
`templated(OperatorClass, 'field', ...)`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComposerExecutor:
    name: str
    job_keys: tuple[str, ...]  # keys its job parameter file must hold ({} for no file)
    imports: tuple[str, ...]  # import lines for its operators
    builder: str  # name of the builder function defined by `source`
    source: str  # Python source of the builder

    @property
    def needs_job_params(self) -> bool:
        return bool(self.job_keys)


DATAFORM_TAG = ComposerExecutor(
    name="dataform-tag-executor",
    job_keys=("project_id", "region", "repository_id", "git_commitish", "tags"),
    imports=(
        "from google.cloud.dataform_v1beta1 import WorkflowInvocation",
        "from airflow.providers.google.cloud.operators.dataform import (\n"
        "    DataformCreateCompilationResultOperator,\n"
        "    DataformCreateWorkflowInvocationOperator,\n"
        ")",
        "from airflow.providers.google.cloud.sensors.dataform import DataformWorkflowInvocationStateSensor",
    ),
    builder="build_dataform_tag",
    source='''
def dataform_compilation(ti, params, dag_run):
    # One macro for the whole dict: native rendering would turn a string result such as an
    # all-digit commit into a number.
    dates = query_variables(params, dag_run)
    return {"git_commitish": job_param(ti, "git_commitish"),
            "code_compilation_config": {"vars": {"start_date": dates["start_date"], "end_date": dates["end_date"]}}}


MACROS["dataform_compilation"] = dataform_compilation


def build_dataform_tag(step, make):
    """Compile the repository at a commit, invoke the tagged actions, wait for the invocation."""
    where = dict(project_id="{{ job_param(ti, 'project_id') }}", region="{{ job_param(ti, 'region') }}",
                 repository_id="{{ job_param(ti, 'repository_id') }}")
    state = WorkflowInvocation.State
    return [
        make(DataformCreateCompilationResultOperator, "compile", **where,
             compilation_result="{{ dataform_compilation(ti, params, dag_run) }}"),
        make(DataformCreateWorkflowInvocationOperator, "invoke", **where, asynchronous=True, workflow_invocation={
            "compilation_result": "{{ sibling(ti, 'compile')['name'] }}",
            "invocation_config": {"included_tags": "{{ job_param(ti, 'tags') }}",
                                  "transitive_dependencies_included": True}}),
        make(templated(DataformWorkflowInvocationStateSensor, "project_id", "region", "repository_id"), "wait",
             **where, workflow_invocation_id="{{ sibling(ti, 'invoke')['name'].split('/')[-1] }}",
             expected_statuses={state.SUCCEEDED}, failure_statuses={state.FAILED, state.CANCELLED},
             mode="reschedule", poke_interval=step["wait_seconds"], timeout=step["timeout_seconds"]),
    ]
''',
)

DATAFLOW_FLEX_TEMPLATE = ComposerExecutor(
    name="dataflow-flextemplate-job-executor",
    job_keys=("project_id", "location", "body"),
    imports=("from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator",),
    builder="build_dataflow_flex_template",
    source='''
def build_dataflow_flex_template(step, make):
    """Launch a flex template (body = the launch request) and wait for the job, deferred."""
    return [make(DataflowStartFlexTemplateOperator, "run", project_id="{{ job_param(ti, 'project_id') }}",
                 location="{{ job_param(ti, 'location') }}", body="{{ job_param(ti, 'body') }}",
                 deferrable=True, poll_sleep=step["wait_seconds"])]
''',
)

DATAPROC_SERVERLESS = ComposerExecutor(
    name="dataproc-serverless-job-executor",
    job_keys=("project_id", "region", "batch"),
    imports=("from airflow.providers.google.cloud.operators.dataproc import DataprocCreateBatchOperator",),
    builder="build_dataproc_serverless",
    source='''
def build_dataproc_serverless(step, make):
    """Create a Dataproc Serverless batch with a per-run id and wait for it, deferred."""
    return [make(DataprocCreateBatchOperator, "run", project_id="{{ job_param(ti, 'project_id') }}",
                 region="{{ job_param(ti, 'region') }}", batch="{{ job_param(ti, 'batch') }}",
                 batch_id="{{ unique_id(ti) }}", deferrable=True,
                 polling_interval_seconds=step["wait_seconds"])]
''',
)

BQ_SAVED_QUERY = ComposerExecutor(
    name="bq-saved-query-executor",
    job_keys=("project_id", "location", "configuration"),
    imports=("from airflow.providers.google.cloud.operators.bigquery import BigQueryInsertJobOperator",),
    builder="build_bq_query",
    source='''
def build_bq_query(step, make):
    """Run a BigQuery job (configuration = the saved query's job configuration), deferred."""
    return [make(templated(BigQueryInsertJobOperator, "location"), "run",
                 project_id="{{ job_param(ti, 'project_id') }}", location="{{ job_param(ti, 'location') }}",
                 configuration="{{ job_param(ti, 'configuration') }}", deferrable=True,
                 poll_interval=step["wait_seconds"])]
''',
)

WORKFLOWS = ComposerExecutor(
    name="workflows",
    job_keys=(),
    imports=(
        "from airflow.providers.google.cloud.operators.workflows import WorkflowsCreateExecutionOperator",
        "from airflow.providers.google.cloud.sensors.workflows import WorkflowExecutionSensor",
    ),
    builder="build_workflows",
    source='''
def build_workflows(step, make):
    """Run another deployed Cloud Workflow with this run's arguments and wait for it."""
    where = dict(project_id=PIPELINE["project_id"], location=PIPELINE["region"], workflow_id=step["workflow_id"])
    return [
        make(WorkflowsCreateExecutionOperator, "start", **where,
             execution="{{ workflow_execution(params, dag_run) }}"),
        make(WorkflowExecutionSensor, "wait", **where, execution_id="{{ sibling(ti, 'start')['name'].split('/')[-1] }}",
             mode="reschedule", poke_interval=step["wait_seconds"], timeout=step["timeout_seconds"]),
    ]
''',
)

CATALOGUE: dict[str, ComposerExecutor] = {
    entry.name: entry for entry in (DATAFORM_TAG, DATAFLOW_FLEX_TEMPLATE, DATAPROC_SERVERLESS, BQ_SAVED_QUERY, WORKFLOWS)
}
WORKFLOWS_EXECUTOR = WORKFLOWS.name
