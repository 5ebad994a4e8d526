"""JSON Schema (2020-12) of the definition format, for editors and CI checks."""
from __future__ import annotations

import json

from .model import Pipeline, record_schema

SCHEMA_ID = "https://levelflow.dev/schema/definition.schema.json"


def definition_schema() -> dict:
    from .backends import engine_names

    definitions: dict = {}
    schema = record_schema(Pipeline, definitions)
    schema["properties"]["engine"]["enum"] = list(engine_names())
    return {
        "$defs": dict(sorted(definitions.items())),
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "levelflow pipeline definition",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(definition_schema(), indent=2, sort_keys=True) + "\n"
