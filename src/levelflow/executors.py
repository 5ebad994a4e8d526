"""The AEF executor catalogue: each executor's job file formats and the request it builds.

One entry per executor, engine-neutral (pure Python, no Airflow): the formats of its job
parameter file, and its request function, which builds from a job file the API request the
AEF executor itself builds. An entry also names the module that runs the executor on the
Composer engine (`Executor.composer`, a module of `levelflow.backends.composer.builders`,
which documents the builders). Adding an executor is one entry here, one builder module and
their tests. The request functions are real functions of this module: `levelflow generate
--jobs-dir` calls them to check a job file before anything is written, and a generated DAG
holds their source (and that of the functions and constants of this module that they use),
included by `levelflow.backends.composer.dag_source`, so they use nothing but the standard
library modules the DAG imports (`json`, `re`) and one another.

**Job file formats.** A job parameter file (`<jobs bucket>/<executor>/<JOB_NAME>.json`) is in
one of two formats, recognised by its keys:

- *AEF format*: the keys the AEF executor functions read (the public AEF orchestration
  framework's `functions/data-processing-engines/<executor>/main.py`), e.g. Dataproc's
  `dataproc_serverless_project_id`. The request function builds from them the request that
  executor builds.
- *operator-native format*: the operators' own arguments, e.g. Dataproc's `batch`.

Each format has one marker key (`JobFormat.marker`): a file holding the marker of exactly one
format is in that format, and must then hold every key of that format. A file holding both
markers, or neither, is an error that names both formats and their keys. The BigQuery executor
has no job file in AEF format (it reads its query from a Dataform repository named by the
workflow properties, `sqlx_location`): for it a missing job file *is* the AEF format, and a
file that exists must be operator-native.

A request function has the signature `request(job_format, params, step, run)`: `job_format` is
"aef" or "native", `params` the job file (`{}` when there is none), `step` the step's data and
`run` holds the run's `dates` (`start_date` / `end_date`), `workflow_properties` (the run's,
with the step's STEP_PROPERTIES merged over them), `workflow_name` (the run's `workflow_name`
parameter, else the pipeline name) and `project_id` (pProjectID). It returns the arguments of
the executor's operators and raises ValueError on a bad value.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

AEF, NATIVE = "aef", "native"
FORMAT_TITLES = {AEF: "AEF-format", NATIVE: "operator-native"}  # as adjectives: "an AEF-format file"
FORMAT_LABELS = {AEF: "AEF format", NATIVE: "operator-native format"}


@dataclass(frozen=True)
class JobFormat:
    name: str  # AEF or NATIVE
    marker: Optional[str]  # the key that recognises a file of this format; None: this format has no job file
    keys: tuple[str, ...]  # keys a file of this format must hold
    note: str = ""  # for a format without a job file: where its steps' parameters come from

    @property
    def title(self) -> str:
        return FORMAT_TITLES[self.name]

    @property
    def label(self) -> str:
        return FORMAT_LABELS[self.name]

    def as_data(self) -> dict:
        return {"marker": self.marker, "keys": list(self.keys)}


@dataclass(frozen=True)
class Executor:
    name: str
    formats: tuple[JobFormat, ...]  # formats of its job parameter file (() for no job parameters)
    composer: str  # its Composer builder module: levelflow.backends.composer.builders.<composer>
    request: Optional[Callable] = None  # request(job_format, params, step, run) -> the operators' arguments
    native_api: Optional[str] = None  # the Google API a Cloud Workflows native-mode step calls (runtime.yaml's start_<api>_...)
    # What the workflow's service account needs to run it natively: (role, where, why); `where`
    # is "job:<key>" (the project a job file key names), "job_account:<key>" (a service account
    # a job file key names), "props:<key>" (a workflow property) or "pipeline" (pProjectID).
    native_roles: tuple[tuple[str, str, str], ...] = ()

    @property
    def needs_job_params(self) -> bool:
        return bool(self.formats)

    @property
    def job_keys(self) -> tuple[str, ...]:
        """Every key a job file of this executor may have to hold, in any format."""
        return tuple(dict.fromkeys(key for fmt in self.formats for key in fmt.keys))

    @property
    def fileless_format(self) -> Optional[str]:
        """The format whose steps have no job file (a missing file means that format), if any."""
        return next((fmt.name for fmt in self.formats if fmt.marker is None), None)

    def formats_data(self) -> dict:
        return {fmt.name: fmt.as_data() for fmt in self.formats}

    def describe_formats(self) -> str:
        parts = []
        for fmt in self.formats:
            if fmt.marker is None:
                parts.append(f"the {fmt.label} has no job file ({fmt.note})")
            else:
                parts.append(f"an {fmt.title} file holds {', '.join(fmt.keys)} (recognised by {fmt.marker!r})")
        return "; ".join(parts)


SAMPLE_RUN = {"dates": {"start_date": "2000-01-01", "end_date": "2000-01-01"}, "workflow_properties": {},
              "workflow_name": "sample", "project_id": "sample-project"}


def check_job_file(entry: Executor, params, step: dict) -> tuple[Optional[str], list[str]]:
    """Generation-time check of a job file: (its format or None, the problems found).

    The rule is the one a Composer DAG's `load_job_params` applies at run time (module docstring).
    """
    if not isinstance(params, dict):
        return None, ["job parameters must be a JSON object"]
    found = [fmt for fmt in entry.formats if fmt.marker is not None and fmt.marker in params]
    if len(found) != 1:
        why = (f"it holds {' and '.join(repr(fmt.marker) for fmt in found)}, the marker keys of both formats" if found
               else "it holds the marker key of neither format")
        return None, [f"not a recognised {entry.name} job file ({why}): {entry.describe_formats()}"]
    fmt = found[0]
    missing = [key for key in fmt.keys if key not in params]
    if missing:
        return fmt.name, [f"missing job parameters {', '.join(missing)} "
                          f"(an {fmt.title} {entry.name} job file needs {', '.join(fmt.keys)})"]
    try:
        if entry.request is not None:
            entry.request(fmt.name, params, step, SAMPLE_RUN)
    except (ValueError, TypeError) as error:
        return fmt.name, [f"{fmt.title} job file: {error}"]
    return fmt.name, []


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_job_file(entry: Executor, path, job_name: str) -> tuple[Optional[dict], Optional[str], list[str]]:
    """A job file of --jobs-dir (a local copy of the jobs bucket) read and checked at generation
    time, as Composer operators mode and Cloud Workflows native mode embed it: (its content,
    its format, the problems found). A missing file is a problem, except for an executor with
    a format that has no job file (BigQuery: its steps are then in that format)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if entry.fileless_format is not None:
            return None, entry.fileless_format, []
        return None, None, ["job parameter file not found in --jobs-dir"]
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8
        return None, None, [f"cannot read job parameters: {exc}"]
    return parse_job_file(entry, text, job_name)


def parse_job_file(entry: Executor, text: str, job_name: str) -> tuple[Optional[dict], Optional[str], list[str]]:
    """A job file's text (from --jobs-dir, or read from the bucket at run time) parsed and checked:
    (its content, its format, the problems found)."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError as exc:  # not JSON, NaN or Infinity
        return None, None, [f"cannot read job parameters: {exc}"]
    sample = {"job_name": job_name, "dataflow_job_name": dataflow_job_name(job_name) or "sample", "sql": ""}
    job_format, problems = check_job_file(entry, value, sample)
    return (value if isinstance(value, dict) else None), job_format, problems


def dataflow_job_name(job_name: str) -> str:
    """The Dataflow job name of a step, as the AEF contract states it: JOB_NAME lower-cased, only
    [a-z0-9+] kept, leading digits dropped (may be empty: an error for the caller)."""
    # The deployed executor applies [^a-z0-9+] to JOB_NAME *before* (instead of) lower-casing it,
    # so it drops capitals ("LoadOrders" -> "oadrders"); levelflow follows the contract and
    # lower-cases them ("loadorders").
    return re.sub(r"^\d+", "", re.sub(r"[^a-z0-9+]", "", job_name.lower()))


def strip_config_block(text):
    """The SQL of a .sqlx file: a leading `config { ... }` block dropped, braces matched (braces
    inside strings and comments of the block do not count). Text without one is returned as is."""
    body = text.lstrip("\ufeff \t\r\n")
    if not body.startswith("config"):
        return text
    rest = body[len("config"):].lstrip(" \t\r\n")
    if not rest.startswith("{"):
        return text
    depth, quote, i = 0, None, 0
    while i < len(rest):
        char = rest[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif rest.startswith("//", i):
            end = rest.find("\n", i)
            i = len(rest) if end < 0 else end
            continue
        elif rest.startswith("/*", i):
            end = rest.find("*/", i + 2)
            if end < 0:
                break
            i = end + 2
            continue
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[i + 1:].lstrip(" \t\r\n")
        i += 1
    raise ValueError("the leading config { ... } block is not closed (unbalanced braces)")


# ---- request functions: the API request each AEF executor builds (a Composer DAG holds their source) ----

def dataform_request(job_format, params, step, run):
    """Dataform operators' arguments: where, the compilation request and the invocation config."""
    if job_format == "native":
        return {**params,
                "compilation_result": {"git_commitish": params["git_commitish"],
                                       "code_compilation_config": {"vars": dict(run["dates"])}},
                "invocation_config": {"included_tags": params["tags"], "transitive_dependencies_included": True}}
    # As the AEF intermediate passes them: each date a single-quoted SQL string; Dataform merges
    # these compilation vars over the vars of the repository's dataform.json.
    quoted = {name: "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
              for name, value in run["dates"].items()}
    return {"project_id": params["dataform_project_id"], "region": params["dataform_location"],
            "repository_id": params["repository_name"],
            "compilation_result": {"git_commitish": params["branch"], "code_compilation_config": {"vars": quoted}},
            "invocation_config": {"included_tags": params["tags"]}}  # the executor sets no transitive flag


def dataflow_request(job_format, params, step, run):
    """DataflowStartFlexTemplateOperator arguments: project_id, location, body (the launch request)."""
    if job_format == "native":
        return params
    location = params["dataflow_location"]
    template = f"gs://dataflow-templates-{location}/{params['dataflow_template_version']}/flex/{params['dataflow_template_name']}"
    return {"project_id": params["project_id"], "location": location, "body": {"launchParameter": {
        "jobName": step["dataflow_job_name"],
        "parameters": params["dataflow_job_params"],
        "containerSpecGcsPath": template,
        "environment": {"tempLocation": f"gs://{params['dataflow_temp_bucket']}/dataflow/temp",
                        "maxWorkers": str(params["dataflow_max_workers"]),
                        "network": str(params["network"]), "subnetwork": str(params["subnetwork"])}}}}


def dataproc_request(job_format, params, step, run):
    """DataprocCreateBatchOperator arguments: project_id, region, batch (the batch id is per run)."""
    if job_format == "native":
        return params
    project, region = params["dataproc_serverless_project_id"], params["dataproc_serverless_region"]
    properties = params["spark_app_properties"]
    if isinstance(properties, str):  # an object, or a string holding one
        try:
            properties = json.loads(properties)
        except ValueError as error:
            raise ValueError(f"spark_app_properties is a string that does not hold JSON: {error}") from None
    if properties is not None and not isinstance(properties, dict):
        raise ValueError(f"spark_app_properties must be an object (or a string holding one), got {type(properties).__name__}")
    batch = {
        "spark_batch": {"jar_file_uris": [params["jar_file_location"]], "main_class": params["spark_app_main_class"],
                        "args": params["spark_args"]},
        "runtime_config": {"version": params["dataproc_serverless_runtime_version"], "properties": properties},
        "environment_config": {"execution_config": {"service_account": params["dataproc_service_account"],
                                                    "subnetwork_uri": f"projects/{project}/{params['subnetwork']}"}},
    }
    cluster = params.get("spark_history_server_cluster")
    if cluster:
        batch["environment_config"]["peripherals_config"] = {"spark_history_server_config": {
            "dataproc_cluster": f"projects/{project}/regions/{region}/clusters/{cluster}"}}
    return {"project_id": project, "region": region, "batch": batch}


BQ_REPOSITORY_KEYS = ("dataform_project_id", "dataform_location", "repository_name")


def sqlx_location(step, run):
    """Where a BigQuery step without an operator-native job file finds its query: (the Dataform
    repository that the workflow properties name, definitions/<workflow_name>/<JOB_NAME>.sqlx)."""
    properties = run["workflow_properties"]
    missing = [key for key in BQ_REPOSITORY_KEYS if not properties.get(key)]
    if missing:
        raise ValueError(f"step {step['job_name']}: a bq-saved-query-executor step without an operator-native job file "
                         f"reads its query from the Dataform repository named by workflow_properties "
                         f"{', '.join(BQ_REPOSITORY_KEYS)}; missing: {', '.join(missing)} (give them in the run's "
                         f"workflow_properties or the step's STEP_PROPERTIES)")
    repository = (f"projects/{properties['dataform_project_id']}/locations/{properties['dataform_location']}"
                  f"/repositories/{properties['repository_name']}")
    return repository, f"definitions/{run['workflow_name']}/{step['job_name']}.sqlx"


def bq_query_configuration(sql, dates):
    """The BigQuery job configuration of a saved query: ${start_date} / ${end_date} replaced by
    the run's dates as SQL string literals, run at BATCH priority."""
    literals = {name: "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'" for name, value in dates.items()}
    query = re.sub(r"\$\{(start_date|end_date)\}", lambda match: literals[match.group(1)], sql)
    return {"query": {"query": query, "useLegacySql": False, "priority": "BATCH"}}


def bq_request(job_format, params, step, run):
    """BigQueryInsertJobOperator arguments: project_id, location, configuration.

    In AEF format the query is step["sql"]: the .sqlx file at `sqlx_location`, its config block
    dropped (`strip_config_block`), embedded at generation time or read by the engine first."""
    if job_format == "native":
        return params
    if step.get("sql") is None:
        raise ValueError(f"step {step['job_name']}: no query: read it from sqlx_location(step, run) first")
    # The AEF executor's BigQuery client uses its own default project (the functions' project)
    # and lets BigQuery choose the location.
    return {"project_id": run["project_id"], "location": None,
            "configuration": bq_query_configuration(step["sql"], run["dates"])}


DATAFORM_TAG = Executor(
    name="dataform-tag-executor",
    formats=(JobFormat(AEF, "repository_name", ("dataform_project_id", "dataform_location", "repository_name", "branch", "tags")),
             JobFormat(NATIVE, "repository_id", ("project_id", "region", "repository_id", "git_commitish", "tags"))),
    composer="dataform_tag",
    native_roles=(("roles/dataform.editor", "job:dataform_project_id", "compile the repository and invoke its workflow"),),
    native_api="dataform",
    request=dataform_request,
)

DATAFLOW_FLEX_TEMPLATE = Executor(
    name="dataflow-flextemplate-job-executor",
    formats=(JobFormat(AEF, "dataflow_template_name", (
                 "project_id", "dataflow_location", "dataflow_template_name", "dataflow_template_version",
                 "dataflow_temp_bucket", "dataflow_job_params", "dataflow_max_workers", "network", "subnetwork")),
             JobFormat(NATIVE, "body", ("project_id", "location", "body"))),
    composer="dataflow_flex_template",
    native_roles=(("roles/dataflow.developer", "job:project_id", "launch the flex template, poll and cancel the job"),
                  ("roles/iam.serviceAccountUser", "job:project_id", "run the job as the project's Dataflow workers' account")),
    native_api="dataflow",
    request=dataflow_request,
)

DATAPROC_SERVERLESS = Executor(
    name="dataproc-serverless-job-executor",
    formats=(JobFormat(AEF, "dataproc_serverless_project_id", (
                 "dataproc_serverless_project_id", "dataproc_serverless_region", "jar_file_location",
                 "spark_app_main_class", "spark_args", "dataproc_serverless_runtime_version", "dataproc_service_account",
                 "spark_app_properties", "subnetwork")),
             JobFormat(NATIVE, "batch", ("project_id", "region", "batch"))),
    composer="dataproc_serverless",
    native_roles=(("roles/dataproc.editor", "job:dataproc_serverless_project_id", "create, poll and cancel the batch"),
                  ("roles/iam.serviceAccountUser", "job_account:dataproc_service_account", "run the batch as this account")),
    native_api="dataproc",
    request=dataproc_request,
)

BQ_SAVED_QUERY = Executor(
    name="bq-saved-query-executor",
    formats=(JobFormat(AEF, None, (), note="the query is definitions/<workflow_name>/<JOB_NAME>.sqlx of the Dataform "
                                          "repository named by workflow_properties " + ", ".join(BQ_REPOSITORY_KEYS)),
             JobFormat(NATIVE, "configuration", ("project_id", "location", "configuration"))),
    composer="bq_saved_query",
    native_roles=(("roles/bigquery.jobUser", "pipeline", "run the query job (plus the data roles the query itself needs)"),
                  ("roles/dataform.viewer", "props:dataform_project_id", "read the .sqlx file of the repository")),
    native_api="bigquery",
    request=bq_request,
)

WORKFLOWS = Executor(  # TYPE workflows: another deployed Cloud Workflow, no job file
    name="workflows",
    formats=(),
    composer="workflows",
)

CATALOGUE: dict[str, Executor] = {
    entry.name: entry for entry in (DATAFORM_TAG, DATAFLOW_FLEX_TEMPLATE, DATAPROC_SERVERLESS, BQ_SAVED_QUERY, WORKFLOWS)
}
WORKFLOWS_EXECUTOR = WORKFLOWS.name
