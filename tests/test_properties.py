"""Property-based tests: nothing but a located LevelflowError ever escapes validation."""
import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import levelflow
from levelflow.loader import parse_json, parse_yaml
from levelflow.validate import validate_pipeline
from conftest import EXAMPLES

VALID = json.loads((EXAMPLES / "retail_daily.json").read_text())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def check(text: str, yaml: bool = False) -> None:
    try:
        document = (parse_yaml if yaml else parse_json)(text, "f")
        validate_pipeline(document)
    except levelflow.LevelflowError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == "f" and problem.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_documents(value):
    check(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_random_text_as_json_and_yaml(text):
    check(text)
    check(text, yaml=True)


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _nodes(child, path + (index,))


PATHS = list(_nodes(VALID))[1:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(["replace", "delete", "duplicate"]), json_values), min_size=1, max_size=3))
def test_random_mutations_of_a_valid_definition(mutations):
    document = copy.deepcopy(VALID)
    for path, action, value in mutations:
        parent = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if action == "replace":
            parent[key] = value
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        else:
            parent[key + "_"] = copy.deepcopy(parent[key])
    text = json.dumps(document, indent=1)
    check(text)
    check(text, yaml=True)
