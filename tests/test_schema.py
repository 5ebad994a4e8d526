import json

import jsonschema

import levelflow

from conftest import EXAMPLES, ROOT, run_cli

COMMITTED = ROOT / "schema" / "definition.schema.json"


def test_committed_schema_is_in_sync():
    result = run_cli("schema")
    assert result.returncode == 0
    assert result.stdout == COMMITTED.read_text(), "run: levelflow schema -o schema/definition.schema.json"


def test_schema_is_valid_2020_12_and_accepts_examples():
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for file in EXAMPLES.glob("*.json"):
        if not file.name.startswith("platform-"):
            validator.validate(json.loads(file.read_text()))


def test_schema_rejects_unknown_step_key():
    schema = json.loads(COMMITTED.read_text())
    document = json.loads((EXAMPLES / "demo_pipeline_composer.json").read_text())
    document["definition"][0]["THREADS"][0]["STEPS"][0]["BOGUS"] = 1
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document))


def test_schema_never_rejects_what_levelflow_accepts():
    """The schema (for editors) and the reader come from the same key tables: whenever
    `validate` accepts a definition, the schema accepts it too (the reader has more rules: value
    ranges, cross-step rules), checked on seeded mutations of the examples."""
    import copy
    import random

    from levelflow.loader import parse_json
    from levelflow.validate import validate_pipeline

    validator = jsonschema.Draft202012Validator(json.loads(COMMITTED.read_text()))
    examples = [json.loads(f.read_text()) for f in sorted(EXAMPLES.glob("*.json")) if not f.name.startswith("platform-")]
    values = [None, 5, 0, -1, 1.5, "", "x", " 30 ", "30", "1e3", [], {}, {"a": 1}, True, "True", "no", "{\"a\": 1}",
              "@daily", "0 4 * * *", "TRUE", " no ", "1e3", 30.0, "async", "sync", "workflows", "J1", "1800", "1801", "10", "11", "a" * 200]
    step_keys = ["JOB_ID", "JOB_NAME", "TYPE", "FUNCTION_ID_NAME", "FUNCTION_NAME", "COMPOSER_STEP", "workflows_name",
                 "WAIT_TIME_SECONDS", "ASYNC_TIMEOUT_LOOP_IN_MINUTES", "TIMEOUT_SECONDS", "CONTINUE_IF_FAIL",
                 "STEP_PROPERTIES", "NEXT", "RETRIES", "ESTIMATED_MINUTES", "READ_INPUT_FROM", "BOGUS"]
    rng = random.Random(11)
    accepted = 0
    for _ in range(600):
        document = copy.deepcopy(rng.choice(examples))
        level = rng.choice(document["definition"])
        thread = rng.choice(level["THREADS"])
        node, keys = rng.choice([(document, ["name", "description", "engine", "schedule"]), (level, ["LEVEL_ID"]),
                                 (thread, ["THREAD_ID"]), (rng.choice(thread["STEPS"]), step_keys)])
        node[rng.choice(keys)] = rng.choice(values)
        try:
            validate_pipeline(parse_json(json.dumps(document), "mutated.json"))
        except levelflow.LevelflowError:
            continue
        accepted += 1
        assert list(validator.iter_errors(document)) == [], json.dumps(document)[:300]
    assert accepted > 50  # the mutations keep a good share valid, so the check means something
