import json

import jsonschema

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
