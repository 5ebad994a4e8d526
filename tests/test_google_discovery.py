"""google_discovery: finds the methods native steps call in Google's discovery documents and
tells right requests from wrong ones."""
import pytest

import google_discovery as gd

DATAPROC = "https://dataproc.googleapis.com/v1"
DATAFORM = "https://dataform.googleapis.com/v1/projects/p/locations/europe-west1/repositories/repo"
BQ = "https://bigquery.googleapis.com/bigquery/v2/projects/p"
DATAFLOW = "https://dataflow.googleapis.com/v1b3/projects/p/locations/europe-west1"

SPARK_BATCH = {"sparkBatch": {"mainClass": "com.acme.Main", "jarFileUris": ["gs://b/app.jar"], "args": ["--day", "2026-01-01"]},
               "runtimeConfig": {"version": "2.2", "properties": {"spark.executor.cores": "4"}},
               "environmentConfig": {"executionConfig": {"serviceAccount": "sa@p.iam.gserviceaccount.com",
                                                         "subnetworkUri": "projects/p/regions/r/subnetworks/s", "ttl": "3600s"},
                                     "peripheralsConfig": {"sparkHistoryServerConfig": {"dataprocCluster": "projects/p/regions/r/clusters/h"}}}}
FLEX = {"launchParameter": {"jobName": "sales-daily", "containerSpecGcsPath": "gs://dataflow-templates-europe-west1/latest/flex/GCS_Text_to_BigQuery",
                            "parameters": {"inputFilePattern": "gs://b/in/*.csv"},
                            "environment": {"maxWorkers": 5, "tempLocation": "gs://t/dataflow/temp", "network": "n", "subnetwork": "s"}}}
QUERY_JOB = {"jobReference": {"projectId": "p", "jobId": "aef_1", "location": "EU"},
             "configuration": {"query": {"query": "SELECT 1", "useLegacySql": False, "priority": "BATCH"}}}

# (http method, url, body, method id) for every call the native mode makes
RIGHT = [
    ("POST", f"{DATAPROC}/projects/p/locations/europe-west1/batches?batchId=aef-1767225600", SPARK_BATCH, "dataproc.projects.locations.batches.create"),
    ("GET", f"{DATAPROC}/projects/p/locations/europe-west1/batches/aef-1", None, "dataproc.projects.locations.batches.get"),
    ("GET", f"{DATAPROC}/projects/p/regions/europe-west1/operations/abc-123", None, "dataproc.projects.regions.operations.get"),
    ("POST", f"{DATAPROC}/projects/p/regions/europe-west1/operations/abc-123:cancel", None, "dataproc.projects.regions.operations.cancel"),
    ("POST", f"{DATAFLOW}/flexTemplates:launch", FLEX, "dataflow.projects.locations.flexTemplates.launch"),
    ("GET", f"{DATAFLOW}/jobs/2026-01-01_00_00_00-1", None, "dataflow.projects.locations.jobs.get"),
    ("PUT", f"{DATAFLOW}/jobs/2026-01-01_00_00_00-1", {"requestedState": "JOB_STATE_CANCELLED"}, "dataflow.projects.locations.jobs.update"),
    ("POST", f"{DATAFORM}/compilationResults", {"gitCommitish": "main", "codeCompilationConfig": {"vars": {"start_date": "'2026-01-01'"}}},
     "dataform.projects.locations.repositories.compilationResults.create"),
    ("POST", f"{DATAFORM}/workflowInvocations", {"compilationResult": "projects/p/locations/europe-west1/repositories/repo/compilationResults/c1",
                                                 "invocationConfig": {"includedTags": ["daily"], "transitiveDependenciesIncluded": True}},
     "dataform.projects.locations.repositories.workflowInvocations.create"),
    ("GET", f"{DATAFORM}/workflowInvocations/i1", None, "dataform.projects.locations.repositories.workflowInvocations.get"),
    ("POST", f"{DATAFORM}/workflowInvocations/i1:cancel", {}, "dataform.projects.locations.repositories.workflowInvocations.cancel"),
    ("GET", f"{DATAFORM}:readFile?path=definitions/wf/JOB.sqlx", None, "dataform.projects.locations.repositories.readFile"),
    ("POST", f"{BQ}/jobs", QUERY_JOB, "bigquery.jobs.insert"),
    ("GET", f"{BQ}/jobs/aef_1?location=EU", None, "bigquery.jobs.get"),
    ("POST", f"{BQ}/jobs/aef_1/cancel?location=EU", None, "bigquery.jobs.cancel"),
    ("GET", "https://storage.googleapis.com/storage/v1/b/bucket/o/dataproc-serverless-job-executor%2FJOB.json?alt=media", None, "storage.objects.get"),
    ("POST", "https://pubsub.googleapis.com/v1/projects/p/topics/alerts:publish", {"messages": [{"data": "aGk=", "attributes": {"k": "v"}}]},
     "pubsub.projects.topics.publish"),
]


@pytest.mark.parametrize("verb,url,body,method_id", RIGHT, ids=[r[3] for r in RIGHT])
def test_each_native_call_is_found_and_accepted(verb, url, body, method_id):
    assert gd.find_method(verb, url).id == method_id
    assert gd.request_problems(verb, url, body) == []


def test_path_parameters_are_read_from_the_url_and_decoded():
    storage = gd.find_method("GET", "https://storage.googleapis.com/storage/v1/b/bkt/o/a%2Fb%20c.json")
    assert storage.path_params == {"bucket": "bkt", "object": "a/b c.json"}
    batch = gd.find_method("POST", f"{DATAPROC}/projects/p/locations/r/batches")
    assert batch.path_params == {"parent": "projects/p/locations/r"}


def test_patterns_pick_the_method_when_templates_alike_fit():
    # GET v1/{+name} is batches.get, operations.get and more: the name's pattern decides
    assert gd.find_method("GET", f"{DATAPROC}/projects/p/regions/r/operations/o").id == "dataproc.projects.regions.operations.get"
    assert gd.find_method("GET", f"{DATAPROC}/projects/p/locations/r/operations/o").id == "dataproc.projects.locations.operations.get"
    assert gd.find_method("GET", f"{DATAPROC}/projects/p/locations/r/batches/b").id == "dataproc.projects.locations.batches.get"


def test_unknown_methods_are_reported():
    assert gd.find_method("GET", f"{DATAPROC}/projects/p/locations/r/jobz/x/y/z") is None
    assert "no such method" in gd.request_problems("DELETE", f"{DATAFLOW}/flexTemplates:launch")[0]
    assert "no such method" in gd.request_problems("GET", "https://nosuchservice.googleapis.com/v1/x")[0]
    # an object name must be one encoded segment: a raw slash is another path
    assert gd.find_method("GET", "https://storage.googleapis.com/storage/v1/b/bkt/o/a/b.json") is None


def test_a_path_parameter_breaking_its_pattern_is_reported():
    problems = gd.request_problems("POST", f"{DATAPROC}/projects/p/batches", SPARK_BATCH)
    assert problems and all("does not match" in p for p in problems), problems


@pytest.mark.parametrize("body,expected", [
    ({**SPARK_BATCH, "runtimeConfig": {"propertiez": {}}}, "body.runtimeConfig.propertiez: no such field in RuntimeConfig"),
    ({"sparkBatch": {"mainClass": "M", "args": "--day"}}, 'body.sparkBatch.args: expected an array, got "--day"'),
    ({"runtimeConfig": {"properties": {"spark.executor.cores": 4}}}, "body.runtimeConfig.properties.spark.executor.cores: expected a string, got 4"),
    ({"environmentConfig": {"executionConfig": {"ttl": "1h"}}}, 'body.environmentConfig.executionConfig.ttl: expected a duration such as "3.5s", got "1h"'),
    ({"state": "DONE"}, "body.state: 'DONE' is not one of STATE_UNSPECIFIED, PENDING, RUNNING, CANCELLING, CANCELLED, SUCCEEDED, FAILED, got \"DONE\""),
    ({"runtime_config": {}}, "body.runtime_config: no such field in Batch"),
    ({"sparkBatch": ["x"]}, 'body.sparkBatch: expected an object (SparkBatch), got ["x"]'),
])
def test_wrong_batch_bodies_are_reported_by_json_path(body, expected):
    assert expected in gd.request_problems("POST", f"{DATAPROC}/projects/p/locations/r/batches?batchId=x", body)


def test_integer_and_boolean_types_follow_the_proto3_json_mapping():
    def problems(environment, legacy=False):
        flex = {"launchParameter": {"jobName": "j", "environment": environment}}
        bq = {"configuration": {"query": {"query": "SELECT 1", "useLegacySql": legacy}}}
        return gd.request_problems("POST", f"{DATAFLOW}/flexTemplates:launch", flex) + gd.request_problems("POST", f"{BQ}/jobs", bq)
    assert problems({"maxWorkers": 5}) == []
    assert problems({"maxWorkers": "5"}) == []  # int32: "Either numbers or strings are accepted"
    assert problems({"maxWorkers": "five"}) == ['body.launchParameter.environment.maxWorkers: expected an integer (int32: a number or a string of digits), got "five"']
    assert problems({"maxWorkers": 2.5})[0].startswith("body.launchParameter.environment.maxWorkers: expected an integer")
    assert problems({}, legacy="false") == ['body.configuration.query.useLegacySql: expected a boolean, got "false"']
    assert problems({"maxWorkers": None}) == []  # null: the field's default


def test_int64_is_a_string_that_also_accepts_numbers():
    url = f"{BQ}/jobs"
    for value in ("1000000", 1000000):
        assert gd.request_problems("POST", url, {"configuration": {"query": {"query": "q", "maximumBytesBilled": value}}}) == []
    assert gd.request_problems("POST", url, {"configuration": {"query": {"query": "q", "maximumBytesBilled": "1e6"}}})


def test_bytes_fields_want_base64():
    url = "https://pubsub.googleapis.com/v1/projects/p/topics/t:publish"
    assert gd.request_problems("POST", url, {"messages": [{"data": "not base64!"}]}) == ['body.messages[0].data: expected base64 text (bytes), got "not base64!"']


def test_query_parameters_are_checked():
    assert gd.request_problems("GET", f"{BQ}/jobs/j?locaton=EU") == ["query.locaton: no such query parameter of bigquery.jobs.get"]
    assert gd.request_problems("GET", f"{BQ}/jobs/j?location=EU&prettyPrint=false&alt=json") == []  # the document-wide ones
    assert gd.request_problems("GET", f"{BQ}/jobs/j?alt=xml") == ["query.alt: 'xml' is not one of json, media, proto, got \"xml\""]
    assert gd.request_problems("GET", f"{DATAFORM}:readFile") == ["dataform.projects.locations.repositories.readFile: required query parameter path missing"]


def test_a_body_for_a_method_without_one_is_reported():
    problems = gd.request_problems("GET", f"{DATAPROC}/projects/p/locations/r/batches/b", {"name": "x"})
    assert problems == ['dataproc.projects.locations.batches.get takes no request body, got {"name": "x"}']


def test_connector_names_resolve_to_the_same_methods():
    for call, method_id in [
        ("googleapis.dataproc.v1.projects.locations.batches.create", "dataproc.projects.locations.batches.create"),
        ("googleapis.dataform.v1.projects.locations.repositories.readFile", "dataform.projects.locations.repositories.readFile"),
        ("googleapis.bigquery.v2.jobs.insert", "bigquery.jobs.insert"),
        ("googleapis.storage.v1.objects.get", "storage.objects.get"),
    ]:
        assert gd.connector_method(call).id == method_id
    with pytest.raises(KeyError, match="no such method"):
        gd.connector_method("googleapis.dataproc.v1.projects.locations.batches.submit")


def test_expand_path_encodes_simple_and_keeps_reserved_expansions():
    storage = gd.connector_method("googleapis.storage.v1.objects.get")
    assert gd.expand_path(storage, {"bucket": "b", "object": "dir/a b.json"}) == "https://storage.googleapis.com/storage/v1/b/b/o/dir%2Fa%20b.json"
    create = gd.connector_method("googleapis.dataproc.v1.projects.locations.batches.create")
    assert gd.expand_path(create, {"parent": "projects/p/locations/r"}) == f"{DATAPROC}/projects/p/locations/r/batches"
