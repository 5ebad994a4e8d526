"""Composer operators mode reads the real AEF job files (and still the operator-native ones).

From an AEF-format job file, the DAG's operators get the API request the AEF executor itself
builds (the AEF contract, section 2). Checked three ways: the request functions alone; the
generated DAGs run in real Airflow 3 and 2 (job files embedded with --jobs-dir, the BigQuery
query with --dataform-dir; the operators render their templates from the job_params tasks'
XCom, then fail for want of credentials and network); and the DAG's own run-time functions
called in those environments (format recognition, run-time failures, the Dataform read).
"""
from __future__ import annotations

import json

import pytest

import levelflow
from levelflow.backends import GenerateOptions
from levelflow.executors import (
    BQ_SAVED_QUERY, CATALOGUE, DATAPROC_SERVERLESS, bq_query_configuration, check_job_file, dataflow_job_name,
    dataproc_request, strip_config_block,
)

from airflow_support import ROOT, run_airflow_script, run_harness
from conftest import run_cli

VERSIONS = ["airflow3", "airflow2"]
PARAMS = ROOT / "examples" / "platform-parameters-dev.json"
ORCHESTRATION_PROJECT = "my-orchestration-dev"  # pProjectID of PARAMS
DATAPROC, DATAFLOW, DATAFORM, BQ = (
    "dataproc-serverless-job-executor", "dataflow-flextemplate-job-executor", "dataform-tag-executor",
    "bq-saved-query-executor")

# ---- AEF-format job files, and the requests the AEF executors build from them -------------------

DATAPROC_AEF = {
    "dataproc_serverless_project_id": "proj-dp", "dataproc_serverless_region": "europe-west1",
    "jar_file_location": "gs://jars/app.jar", "spark_app_main_class": "com.example.Main",
    "spark_args": ["--day", "{{ ds }}"], "dataproc_serverless_runtime_version": "2.2",
    "dataproc_service_account": "spark@proj-dp.iam.gserviceaccount.com",
    "spark_app_properties": json.dumps({"spark.executor.cores": "4", "spark.note": "{{ 7 * 7 }}"}),
    "subnetwork": "regions/europe-west1/subnetworks/spark", "spark_history_server_cluster": "phs",
}
DATAPROC_AEF_BATCH = {
    "spark_batch": {"jar_file_uris": ["gs://jars/app.jar"], "main_class": "com.example.Main",
                    "args": ["--day", "{{ ds }}"]},
    "runtime_config": {"version": "2.2", "properties": {"spark.executor.cores": "4", "spark.note": "{{ 7 * 7 }}"}},
    "environment_config": {
        "execution_config": {"service_account": "spark@proj-dp.iam.gserviceaccount.com",
                             "subnetwork_uri": "projects/proj-dp/regions/europe-west1/subnetworks/spark"},
        "peripherals_config": {"spark_history_server_config": {
            "dataproc_cluster": "projects/proj-dp/regions/europe-west1/clusters/phs"}},
    },
}
# Properties as an object, no history server cluster: no peripherals_config at all.
DATAPROC_AEF_PLAIN = {**{k: v for k, v in DATAPROC_AEF.items() if k != "spark_history_server_cluster"},
                      "spark_app_properties": {"spark.executor.cores": "2"}}
DATAPROC_AEF_PLAIN_BATCH = {
    "spark_batch": DATAPROC_AEF_BATCH["spark_batch"],
    "runtime_config": {"version": "2.2", "properties": {"spark.executor.cores": "2"}},
    "environment_config": {"execution_config": DATAPROC_AEF_BATCH["environment_config"]["execution_config"]},
}
DATAFLOW_AEF = {
    "project_id": "proj-df", "dataflow_location": "europe-west4", "dataflow_template_name": "GCS_Text_to_BigQuery_Flex",
    "dataflow_template_version": "2025-01-01-00_RC00", "dataflow_temp_bucket": "df-temp",
    "dataflow_job_params": {"inputFilePattern": "gs://in/*.csv", "note": "{{ 7 * 7 }}"}, "dataflow_max_workers": 5,
    "network": "vpc", "subnetwork": "regions/europe-west4/subnetworks/df",
}
DATAFLOW_JOB = "2Load_Orders-EU"  # -> "loadorderseu": lower-cased, [a-z0-9+] kept, leading digits dropped
DATAFLOW_AEF_BODY = {"launchParameter": {
    "jobName": "loadorderseu",
    "parameters": {"inputFilePattern": "gs://in/*.csv", "note": "{{ 7 * 7 }}"},
    "containerSpecGcsPath": "gs://dataflow-templates-europe-west4/2025-01-01-00_RC00/flex/GCS_Text_to_BigQuery_Flex",
    "environment": {"tempLocation": "gs://df-temp/dataflow/temp", "maxWorkers": "5", "network": "vpc",
                    "subnetwork": "regions/europe-west4/subnetworks/df"},
}}
DATAFORM_AEF = {"dataform_project_id": "proj-dform", "dataform_location": "us-east1", "repository_name": "analytics",
                "branch": "release", "tags": ["daily", "core"]}
SQLX = """\
config {
  type: "operations",
  description: "closing } and opening { braces in a string",
  bigquery: { labels: { team: "data", nested: { deep: "}" } } },  // a } in a comment
  /* and { in a block comment */
  tags: ['daily']
}
-- the query
SELECT order_id FROM sales.orders
WHERE day BETWEEN ${start_date} AND ${end_date} AND note != '{}'
"""
SQL_AFTER_CONFIG = """\
-- the query
SELECT order_id FROM sales.orders
WHERE day BETWEEN ${start_date} AND ${end_date} AND note != '{}'
"""

# ---- operator-native job files (the format levelflow had before): still accepted -----------------

NATIVE_JOBS = {
    DATAPROC: {"project_id": "proj-dp", "region": "europe-west1",
               "batch": {"spark_batch": {"main_class": "x.Main"}, "labels": {"note": "{{ 7 * 7 }}"}}},
    DATAFLOW: {"project_id": "proj-df", "location": "europe-west4",
               "body": {"launchParameter": {"jobName": "load", "parameters": {"a": "1"}}}},
    DATAFORM: {"project_id": "proj-dform", "region": "us-east1", "repository_id": "repo",
               "git_commitish": "main", "tags": ["daily", "core"]},
    BQ: {"project_id": "proj-bq", "location": "EU",
         "configuration": {"query": {"query": "SELECT 1", "useLegacySql": False}}},
}


# ---- the request functions alone ----------------------------------------------------------------

def test_strip_config_block_matches_braces_not_lines():
    assert strip_config_block(SQLX) == SQL_AFTER_CONFIG
    assert strip_config_block("\n  config{type: 'view'}\nSELECT 1") == "SELECT 1"
    assert strip_config_block('config { a: "\\"}" }\nSELECT 2') == "SELECT 2"  # escaped quote in a string
    for text in ("SELECT 1", "configuration_table_query", "-- config { x }\nSELECT 1"):
        assert strip_config_block(text) == text  # no leading config block: unchanged
    with pytest.raises(ValueError, match="not closed"):
        strip_config_block("config { type: 'x', nested: { }\nSELECT 1")


@pytest.mark.parametrize("job_name, expected", [
    ("load_orders", "loadorders"), ("Load_Orders_2", "loadorders2"), ("2Load_Orders-EU", "loadorderseu"),
    ("123abc456", "abc456"), ("a+b", "a+b"), ("123", ""), ("___", ""), ("42_7", ""),
])
def test_dataflow_job_name_follows_the_contract(job_name, expected):
    assert dataflow_job_name(job_name) == expected


def test_bq_configuration_substitutes_dates_as_sql_literals_at_batch_priority():
    sql = "SELECT ${start_date}, ${end_date}, ${start_date}, '${other}'"
    assert bq_query_configuration(sql, {"start_date": "2026-01-01", "end_date": "2026-01-31"}) == {"query": {
        "query": "SELECT '2026-01-01', '2026-01-31', '2026-01-01', '${other}'", "useLegacySql": False,
        "priority": "BATCH"}}
    # A date that is not a date stays one string literal; a value is never substituted again.
    hostile = bq_query_configuration("${start_date} ${end_date}", {"start_date": "x' OR '1'='1", "end_date": "${start_date}"})
    assert hostile["query"]["query"] == "'x\\' OR \\'1\\'=\\'1' '${start_date}'"


def test_dataproc_request_accepts_properties_as_object_or_json_string():
    run = {"dates": {}, "workflow_properties": {}, "workflow_name": "w", "project_id": "p"}
    assert dataproc_request("aef", DATAPROC_AEF, {}, run) == {
        "project_id": "proj-dp", "region": "europe-west1", "batch": DATAPROC_AEF_BATCH}
    assert dataproc_request("aef", DATAPROC_AEF_PLAIN, {}, run)["batch"] == DATAPROC_AEF_PLAIN_BATCH
    assert dataproc_request("native", NATIVE_JOBS[DATAPROC], {}, run) == NATIVE_JOBS[DATAPROC]


@pytest.mark.parametrize("params, fmt, message", [
    (DATAPROC_AEF, "aef", None),
    (NATIVE_JOBS[DATAPROC], "native", None),
    ({**DATAPROC_AEF, "batch": {}}, None, "it holds 'dataproc_serverless_project_id' and 'batch', the marker keys of both formats"),
    ({"project_id": "p", "region": "r"}, None, "it holds the marker key of neither format"),
    ({k: v for k, v in DATAPROC_AEF.items() if k not in ("jar_file_location", "subnetwork")}, "aef",
     "missing job parameters jar_file_location, subnetwork (an AEF-format dataproc-serverless-job-executor job file needs"),
    ({**DATAPROC_AEF, "spark_app_properties": "{not json"}, "aef", "spark_app_properties is a string that does not hold JSON"),
    ([1, 2], None, "job parameters must be a JSON object"),
])
def test_job_file_format_is_recognised_by_its_marker_key(params, fmt, message):
    found, problems = check_job_file(DATAPROC_SERVERLESS, params, {"job_name": "j"})
    assert found == fmt
    assert (problems == []) if message is None else (len(problems) == 1 and message in problems[0])


def test_unrecognised_file_names_both_formats_and_their_keys():
    (problem,) = check_job_file(CATALOGUE[DATAFLOW], {"location": "x"}, {"job_name": "j"})[1]
    assert "an AEF-format file holds project_id, dataflow_location, dataflow_template_name" in problem
    assert "(recognised by 'dataflow_template_name')" in problem
    assert "an operator-native file holds project_id, location, body (recognised by 'body')" in problem
    (problem,) = check_job_file(BQ_SAVED_QUERY, {"query": "SELECT 1"}, {"job_name": "j"})[1]
    assert "the AEF format has no job file" in problem and "definitions/<workflow_name>/<JOB_NAME>.sqlx" in problem
    assert "an operator-native file holds project_id, location, configuration" in problem


# ---- generation errors: located, every one at once, nothing written ------------------------------

def _definition(path, steps, name="aef_errors", engine="composer"):
    path.write_text(json.dumps({"engine": engine, "name": name, "definition": [{"LEVEL_ID": "1", "THREADS": [
        {"THREAD_ID": str(i), "STEPS": [step]} for i, step in enumerate(steps)]}]}))
    return path


def _step(job_name, executor):
    return {"JOB_ID": job_name, "JOB_NAME": job_name, "TYPE": "async", "COMPOSER_STEP": executor}


def _write_jobs(root, files):
    for (executor, job_name), content in files.items():
        (root / executor).mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content)
        (root / executor / f"{job_name}.json").write_text(text)


def test_bad_job_files_and_dataform_files_are_located_errors(tmp_path):
    jobs, dataform = tmp_path / "jobs", tmp_path / "dataform"
    _write_jobs(jobs, {
        (DATAPROC, "dp_missing"): {k: v for k, v in DATAPROC_AEF.items() if k != "spark_args"},
        (DATAPROC, "dp_both"): {**DATAPROC_AEF, "batch": {}},
        (DATAFLOW, "df_neither"): {"project_id": "p", "dataflow_location": "x"},
        (DATAFORM, "dform_missing"): {"repository_name": "r", "tags": []},
        (BQ, "bq_not_native"): {"dataform_project_id": "p"},
        (DATAFLOW, "123"): DATAFLOW_AEF,
    })
    (dataform / "definitions" / "aef_errors").mkdir(parents=True)
    (dataform / "definitions" / "aef_errors" / "bq_unbalanced.sqlx").write_text("config { type: 'view'\nSELECT 1\n")
    path = _definition(tmp_path / "aef_errors.json", [
        _step("dp_missing", DATAPROC), _step("dp_both", DATAPROC), _step("df_neither", DATAFLOW),
        _step("dform_missing", DATAFORM), _step("bq_not_native", BQ), _step("bq_no_sqlx", BQ),
        _step("bq_unbalanced", BQ), _step("123", DATAFLOW), _step("dp_absent", DATAPROC)])
    out = tmp_path / "out"
    result = run_cli("generate", path, "--params", PARAMS, "--out", out, "--jobs-dir", jobs, "--dataform-dir", dataform)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not out.exists()
    errors = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in errors) and len(errors) == 9, errors

    def error_for(location):
        (line,) = [line for line in errors if line.startswith(f"error: {location}")]
        return line

    assert "missing job parameters spark_args (an AEF-format dataproc-serverless-job-executor job file needs" \
        in error_for(jobs / DATAPROC / "dp_missing.json")
    assert "holds 'dataproc_serverless_project_id' and 'batch', the marker keys of both formats" \
        in error_for(jobs / DATAPROC / "dp_both.json")
    neither = error_for(jobs / DATAFLOW / "df_neither.json")
    assert "not a recognised dataflow-flextemplate-job-executor job file" in neither
    assert "an AEF-format file holds" in neither and "an operator-native file holds project_id, location, body" in neither
    assert "missing job parameters dataform_project_id, dataform_location, branch" \
        in error_for(jobs / DATAFORM / "dform_missing.json")
    assert "not a recognised bq-saved-query-executor job file" in error_for(jobs / BQ / "bq_not_native.json")
    assert "job parameter file not found in --jobs-dir" in error_for(jobs / DATAPROC / "dp_absent.json")
    assert "config { ... } block is not closed" in error_for(dataform / "definitions" / "aef_errors" / "bq_unbalanced.sqlx")
    # Problems of a step itself point into the definition: file:line:column, JSON path.
    in_definition = [line for line in errors if line.startswith(f"error: {path}:")]
    (no_sqlx,) = [line for line in in_definition if "bq_no_sqlx" in line]
    (empty_name,) = [line for line in in_definition if "Dataflow" in line]
    assert "definition[0].THREADS[5].STEPS[0].JOB_NAME" in no_sqlx
    assert f"{dataform / 'definitions' / 'aef_errors' / 'bq_no_sqlx.sqlx'}: Dataform file not found in --dataform-dir" in no_sqlx
    assert "definition[0].THREADS[7].STEPS[0].JOB_NAME" in empty_name
    assert "JOB_NAME '123' gives an empty Dataflow job name" in empty_name


def test_empty_dataflow_job_name_is_an_error_without_jobs_dir_too(tmp_path):
    path = _definition(tmp_path / "aef_errors.json", [_step("42_7", DATAFLOW)])
    result = run_cli("generate", path, "--params", PARAMS, "--out", tmp_path / "out")
    assert result.returncode == 1 and "definition[0].THREADS[0].STEPS[0].JOB_NAME" in result.stderr
    assert "empty Dataflow job name" in result.stderr and not (tmp_path / "out").exists()


def test_dataform_dir_is_refused_outside_composer_operators_mode(tmp_path):
    dataform = tmp_path / "dataform"
    dataform.mkdir()
    composer = _definition(tmp_path / "composer_pipe.json", [_step("bq_q", BQ)], name="composer_pipe")
    workflows = _definition(tmp_path / "cw_pipe.json", [{"JOB_ID": "a", "JOB_NAME": "a", "TYPE": "async",
                                                          "FUNCTION_ID_NAME": "bq-saved-query-executor"}],
                            name="cw_pipe", engine="cloud_workflows")
    for args, status, message in [
        ((composer, "--step-mode", "functions"), 2, "--dataform-dir is for Composer operators mode only"),
        ((composer, "--engine", "cloud_workflows"), 2, "--dataform-dir is for the composer engine only"),
        ((composer, workflows), 1, f"error: {workflows}: --dataform-dir is for the composer engine only"),
    ]:
        result = run_cli("generate", *args, "--params", PARAMS, "--out", tmp_path / "out", "--dataform-dir", dataform)
        assert result.returncode == status and message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "out").exists()
    with pytest.raises(levelflow.LevelflowError, match="--dataform-dir is for operators mode only"):
        levelflow.generate([composer], PARAMS, tmp_path / "out",
                           options=GenerateOptions(step_mode="functions", dataform_dir=dataform))


def test_step_data_carries_formats_and_embedded_query(tmp_path):
    import ast

    jobs, dataform = tmp_path / "jobs", tmp_path / "dataform"
    _write_jobs(jobs, {(DATAPROC, "dp"): DATAPROC_AEF, (BQ, "bq_native"): NATIVE_JOBS[BQ]})
    (dataform / "definitions" / "pipe").mkdir(parents=True)
    (dataform / "definitions" / "pipe" / "bq_aef.sqlx").write_text(SQLX)
    path = _definition(tmp_path / "pipe.json", [_step("dp", DATAPROC), _step("bq_aef", BQ), _step("bq_native", BQ)],
                       name="pipe")
    (written,) = levelflow.generate([path], PARAMS, tmp_path / "out",
                                    options=GenerateOptions(jobs_dir=jobs, dataform_dir=dataform))
    module = ast.parse(written.read_text())
    (literal,) = [n.value for n in module.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PIPELINE"]
    data = ast.literal_eval(literal)
    dp, bq_aef, bq_native = [thread["steps"][0] for thread in data["levels"][0]["threads"]]
    assert (dp["job_format"], dp["job_params"]) == ("aef", DATAPROC_AEF)  # the file as data; the request is built at run time
    assert data["job_formats"][DATAPROC]["aef"]["marker"] == "dataproc_serverless_project_id"
    assert sorted(data["job_formats"]) == sorted([DATAPROC, BQ])
    assert (bq_aef["job_format"], bq_aef["job_params"], bq_aef["sql"]) == ("aef", None, SQL_AFTER_CONFIG)
    assert (bq_native["job_format"], bq_native["job_params"], bq_native["sql"]) == ("native", NATIVE_JOBS[BQ], None)


# ---- real Airflow: the operators render the AEF executors' requests --------------------------------

CONF = {"start_date": "2026-02-01", "end_date": "2026-02-28", "workflow_properties": {"env": "test"}}
SHORT = {"dataproc": DATAPROC, "dataflow": DATAFLOW, "dataform": DATAFORM, "bq": BQ}
AEF_STEPS = [  # (thread, JOB_NAME, executor, job file or None)
    ("dp", "dataproc_aef", DATAPROC, DATAPROC_AEF),
    ("dp_plain", "dataproc_plain", DATAPROC, DATAPROC_AEF_PLAIN),
    ("df", DATAFLOW_JOB, DATAFLOW, DATAFLOW_AEF),
    ("dform", "dataform_aef", DATAFORM, DATAFORM_AEF),
    ("bq", "bq_aef", BQ, None),
] + [(f"native_{short}", f"{short}_native", executor, NATIVE_JOBS[executor]) for short, executor in SHORT.items()]


def _aef_definition(name):
    return {"engine": "composer", "name": name, "definition": [{"LEVEL_ID": "1", "THREADS": [
        {"THREAD_ID": thread, "STEPS": [{"JOB_ID": thread, "JOB_NAME": job, "TYPE": "async", "COMPOSER_STEP": executor,
                                         "WAIT_TIME_SECONDS": 7}]}
        for thread, job, executor, _ in AEF_STEPS]}]}


@pytest.fixture(scope="module")
def aef_dags(tmp_path_factory):
    """aef_run: every job file embedded with --jobs-dir, the BigQuery query with --dataform-dir.
    aef_late: the same steps generated with --jobs-dir only: its AEF BigQuery step reads its
    query from the Dataform repository when it runs."""
    work = tmp_path_factory.mktemp("airflow-aef")
    jobs, dataform, dags = work / "jobs", work / "dataform", work / "dags"
    _write_jobs(jobs, {(executor, job): params for _, job, executor, params in AEF_STEPS if params is not None})
    for name in ("aef_run", "aef_late"):
        path = work / f"{name}.json"
        path.write_text(json.dumps(_aef_definition(name)))
    (dataform / "definitions" / "aef_run").mkdir(parents=True)
    (dataform / "definitions" / "aef_run" / "bq_aef.sqlx").write_text(SQLX)
    levelflow.generate([work / "aef_run.json"], PARAMS, dags, options=GenerateOptions(jobs_dir=jobs, dataform_dir=dataform))
    levelflow.generate([work / "aef_late.json"], PARAMS, dags, options=GenerateOptions(jobs_dir=jobs))
    return work, dags


@pytest.fixture(scope="module", params=VERSIONS)
def aef_run(request, aef_dags):
    work, dags = aef_dags
    result = run_harness(request.param, work, "run", dags, "aef_run", json.dumps(CONF), "aef_late", json.dumps(CONF),
                         isolate_network=True)
    return request.param, result["runs"]["aef_run"], result["runs"]["aef_late"]


def _group(thread, job):
    from levelflow.backends.composer.compiler import component

    return f"level_1.thread_{thread}.{component(job)}"


def test_every_job_params_task_builds_its_request(aef_run):
    version, run, _ = aef_run
    assert run["state"] == "failed"  # no Google credentials or network here
    first_operator = {DATAPROC: "run", DATAFLOW: "run", DATAFORM: "compile", BQ: "run"}
    for thread, job, executor, _ in AEF_STEPS:
        assert run["tasks"][f"{_group(thread, job)}.job_params"] == "success", (version, job)
        assert run["tasks"][f"{_group(thread, job)}.{first_operator[executor]}"] == "failed", (version, job)


def _unmasked(batch):
    """Airflow stores rendered fields with secret-looking keys masked ("service_account": "***");
    the operator itself gets the value (test_dataproc_request_at_run_time_is_exact checks it)."""
    execution = batch["environment_config"]["execution_config"]
    assert execution["service_account"] in ("***", "spark@proj-dp.iam.gserviceaccount.com")
    execution["service_account"] = "spark@proj-dp.iam.gserviceaccount.com"
    return batch


def test_aef_dataproc_file_renders_the_executors_batch(aef_run):
    version, run, _ = aef_run
    rendered = run["rendered"][f"{_group('dp', 'dataproc_aef')}.run"]
    assert (rendered["project_id"], rendered["region"]) == ("proj-dp", "europe-west1")
    assert _unmasked(rendered["batch"]) == DATAPROC_AEF_BATCH  # a dict; "{{ ... }}" inside it stays inert
    assert rendered["batch_id"].startswith("lf-dataproc-aef-") and len(rendered["batch_id"]) <= 63
    plain = run["rendered"][f"{_group('dp_plain', 'dataproc_plain')}.run"]
    assert _unmasked(plain["batch"]) == DATAPROC_AEF_PLAIN_BATCH
    assert plain["batch_id"] != rendered["batch_id"]


def test_aef_dataflow_file_renders_the_executors_launch_request(aef_run):
    version, run, _ = aef_run
    rendered = run["rendered"][f"{_group('df', DATAFLOW_JOB)}.run"]
    assert (rendered["project_id"], rendered["location"]) == ("proj-df", "europe-west4")
    assert rendered["body"] == DATAFLOW_AEF_BODY


def test_aef_dataform_file_compiles_the_branch_with_quoted_dates(aef_run):
    version, run, _ = aef_run
    rendered = run["rendered"][f"{_group('dform', 'dataform_aef')}.compile"]
    assert (rendered["project_id"], rendered["region"], rendered["repository_id"]) == ("proj-dform", "us-east1", "analytics")
    assert rendered["compilation_result"] == {"git_commitish": "release", "code_compilation_config": {
        "vars": {"start_date": "'2026-02-01'", "end_date": "'2026-02-28'"}}}


def test_bq_step_runs_the_embedded_sqlx_at_batch_priority(aef_run):
    version, run, _ = aef_run
    rendered = run["rendered"][f"{_group('bq', 'bq_aef')}.run"]
    assert rendered["configuration"] == {"query": {
        "query": "-- the query\nSELECT order_id FROM sales.orders\n"
                 "WHERE day BETWEEN '2026-02-01' AND '2026-02-28' AND note != '{}'\n",
        "useLegacySql": False, "priority": "BATCH"}}
    assert rendered["project_id"] == ORCHESTRATION_PROJECT and rendered["location"] is None


def test_bq_query_not_embedded_needs_the_repository_named_at_run_time(aef_run):
    """aef_late's BigQuery step reads its query when it runs: a run whose workflow properties
    do not name the Dataform repository fails in its job_params task, saying so."""
    version, _, late = aef_run
    group = _group("bq", "bq_aef")
    assert late["tasks"][f"{group}.job_params"] == "failed" and late["tasks"][f"{group}.run"] == "upstream_failed"
    error = late["errors"][f"{group}.job_params"]
    assert error.startswith("ValueError: step bq_aef: a bq-saved-query-executor step without an operator-native job file")
    assert "missing: dataform_project_id, dataform_location, repository_name" in error
    assert late["tasks"][f"{_group('dp', 'dataproc_aef')}.job_params"] == "success"


def test_native_files_still_render_as_before(aef_run):
    version, run, _ = aef_run
    tasks = {DATAPROC: "run", DATAFLOW: "run", DATAFORM: "compile", BQ: "run"}
    rendered = {executor: run["rendered"][f"{_group(f'native_{short}', f'{short}_native')}.{tasks[executor]}"]
                for short, executor in SHORT.items()}
    assert rendered[DATAPROC]["batch"] == NATIVE_JOBS[DATAPROC]["batch"]
    assert (rendered[DATAPROC]["project_id"], rendered[DATAPROC]["region"]) == ("proj-dp", "europe-west1")
    assert rendered[DATAFLOW]["body"] == NATIVE_JOBS[DATAFLOW]["body"]
    assert rendered[DATAFORM]["compilation_result"] == {"git_commitish": "main", "code_compilation_config": {
        "vars": {"start_date": "2026-02-01", "end_date": "2026-02-28"}}}
    assert rendered[BQ]["configuration"] == NATIVE_JOBS[BQ]["configuration"]
    assert (rendered[BQ]["project_id"], rendered[BQ]["location"]) == ("proj-bq", "EU")


# ---- real Airflow: the DAG's run-time functions ---------------------------------------------------

RUNTIME_SCRIPT = r'''
import importlib.util
import json
import sys

out, run_dag, late_dag = sys.argv[1:4]


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run, late = load(run_dag, "aef_run_dag"), load(late_dag, "aef_late_dag")
steps = {step["job_name"]: step for level in late.PIPELINE["levels"] for thread in level["threads"] for step in thread["steps"]}
CONF = json.loads(sys.argv[4])
result = {}


def attempt(module, step, params):
    try:
        return {"value": module.load_job_params(step, params=params, dag_run=None)}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


# Dataform: the invocation macro puts the compile task's result with the job file's invocation config.
class TI:
    task_id = "level_1.thread_dform.dataform_aef.invoke"

    def __init__(self, values):
        self.values = values

    def xcom_pull(self, task_ids):
        return self.values[task_ids.rsplit(".", 1)[1]]


for job in ("dataform_aef", "dataform_native"):
    params = attempt(late, steps[job], CONF)["value"]
    name = "projects/p/locations/l/repositories/r/compilationResults/c1"
    result[job] = {"job_params": params,
                   "invocation": late.dataform_invocation(TI({"job_params": params, "compile": {"name": name}}))}

result["dataproc_aef"] = attempt(late, steps["dataproc_aef"], CONF)

# Format recognition and missing keys when the job file is read at run time.
dp = steps["dataproc_aef"]
for case, params in {
    "both": {**dp["job_params"], "batch": {}},
    "neither": {"project_id": "p"},
    "missing": {k: v for k, v in dp["job_params"].items() if k != "jar_file_location"},
    "not_object": [1],
    "bad_properties": {**dp["job_params"], "spark_app_properties": "{nope"},
}.items():
    result[case] = attempt(late, {**dp, "job_params": params, "job_format": None}, CONF)

# The BigQuery step without an embedded query reads it from the Dataform repository: first the
# repository must be named; then it is read (through a stand-in client), stripped and substituted.
bq = steps["bq_aef"]
result["bq_unnamed"] = attempt(late, bq, CONF)
import airflow.providers.google.cloud.hooks.dataform as dataform_hooks
from google.cloud.dataform_v1beta1 import ReadRepositoryFileRequest, ReadRepositoryFileResponse

requests = []


class Client:
    def read_repository_file(self, request):
        requests.append(dict(request))
        ReadRepositoryFileRequest(**request)  # the real request type accepts it
        return ReadRepositoryFileResponse(contents=sys.argv[5].encode())


dataform_hooks.DataformHook.get_dataform_client = lambda self: Client()
import os

os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = "google-cloud-platform://"  # a connection, no credentials
properties = {"env": "test", "dataform_project_id": "proj-run", "dataform_location": "eu"}
bq_step = {**bq, "step_properties": {**bq["step_properties"], "repository_name": "from-step"}}
result["bq_read"] = attempt(late, bq_step, {**CONF, "workflow_properties": json.dumps(properties), "workflow_name": "team_flow"})
result["bq_read_default_name"] = attempt(late, bq_step, {**CONF, "workflow_properties": properties})
result["bq_requests"] = requests
with open(out, "w") as handle:
    json.dump(result, handle, indent=1, sort_keys=True)
'''


@pytest.fixture(scope="module", params=VERSIONS)
def runtime(request, aef_dags):
    work, dags = aef_dags
    return request.param, run_airflow_script(request.param, work, RUNTIME_SCRIPT, dags / "aef_run.py",
                                             dags / "aef_late.py", json.dumps(CONF), SQLX)


def test_dataform_invocation_includes_the_tags_without_a_transitive_flag(runtime):
    version, result = runtime
    name = "projects/p/locations/l/repositories/r/compilationResults/c1"
    assert result["dataform_aef"]["invocation"] == {"compilation_result": name,
                                                     "invocation_config": {"included_tags": ["daily", "core"]}}
    assert result["dataform_aef"]["job_params"]["repository_id"] == "analytics"
    # operator-native files keep what levelflow did before: transitive dependencies included
    assert result["dataform_native"]["invocation"] == {"compilation_result": name, "invocation_config": {
        "included_tags": ["daily", "core"], "transitive_dependencies_included": True}}


def test_dataproc_request_at_run_time_is_exact(runtime):
    version, result = runtime
    assert result["dataproc_aef"]["value"] == {"project_id": "proj-dp", "region": "europe-west1", "batch": DATAPROC_AEF_BATCH}


def test_run_time_job_files_fail_with_clear_messages(runtime):
    version, result = runtime
    where = "gs://my-orchestration-dev-jobs/dataproc-serverless-job-executor/dataproc_aef.json"
    assert result["both"]["error"].startswith(f"ValueError: {where}: not a recognised dataproc-serverless-job-executor "
                                              "job file: it holds the marker keys of both formats")
    assert "holds the marker key of neither format" in result["neither"]["error"]
    assert "aef format: keys" in result["neither"]["error"] and "native format: keys ['project_id', 'region', 'batch']" in result["neither"]["error"]
    assert result["missing"]["error"].startswith(f"ValueError: {where}: missing job parameters ['jar_file_location'] (aef format")
    assert result["not_object"]["error"] == f"ValueError: {where}: job parameters must be a JSON object"
    assert "spark_app_properties is a string that does not hold JSON" in result["bad_properties"]["error"]


def test_bq_step_reads_its_query_from_dataform_at_run_time(runtime):
    version, result = runtime
    unnamed = result["bq_unnamed"]["error"]
    assert unnamed.startswith("ValueError: step bq_aef: ")
    assert "missing: dataform_project_id, dataform_location, repository_name" in unnamed
    assert result["bq_requests"] == [
        {"name": "projects/proj-run/locations/eu/repositories/from-step", "path": "definitions/team_flow/bq_aef.sqlx"},
        {"name": "projects/proj-run/locations/eu/repositories/from-step", "path": "definitions/aef_late/bq_aef.sqlx"},
    ]
    expected = {"project_id": ORCHESTRATION_PROJECT, "location": None, "configuration": {"query": {
        "query": "-- the query\nSELECT order_id FROM sales.orders\n"
                 "WHERE day BETWEEN '2026-02-01' AND '2026-02-28' AND note != '{}'\n",
        "useLegacySql": False, "priority": "BATCH"}}}
    assert result["bq_read"]["value"] == expected == result["bq_read_default_name"]["value"]
