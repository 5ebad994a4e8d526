"""The fast parsers (json.loads, libyaml) vouch only for files the position-recording readers
read alike; positions are read only when a problem is located, and locate it as those readers do."""
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from levelflow import LevelflowError
from levelflow import limits
from levelflow.limits import check_values
from levelflow.loader import UNSURE, _located_document, fast_json, fast_yaml, load_document
from levelflow.validate import validate_pipeline
from conftest import EXAMPLES, pipeline, step

scalars = (st.none() | st.booleans() | st.integers(min_value=-10 ** 20, max_value=10 ** 20) | st.floats()
           | st.text(max_size=8) | st.sampled_from(["017", "1:30", "yes", "2026-02-30", "1_000", "\ud800", "k" * 300]))
values = st.recursive(scalars, lambda children: st.lists(children, max_size=3)
                      | st.dictionaries(st.text(max_size=5) | st.sampled_from(["k" * 300, "1", "null"]), children, max_size=3),
                      max_leaves=25)
# JSON and YAML texts: as written by the libraries, with duplicate keys, anchors, bad numbers, BOMs, deep nesting...
fragments = st.sampled_from(['{"a": 1, "a": 2}', "NaN", "1e400", "-0", "0." + "0" * 50 + "1", "9" * 50, '"\\ud800"', '"\\u00e9"',
                             "\ufeff{}", "[" * 70 + "]" * 70, "a: &x 1\nb: *x\n", "a: 1\na: 2\n", "? [1]\n: 2\n", "{a: b}",
                             "- 017\n", "x: !!binary aGk=\n", "%YAML 1.1\n---\na: 1\n", "a:\tb\n", '"\\x41"', "1 2"])


# pieces of YAML and JSON syntax, strung together at random: where libyaml and PyYAML's reader part
pieces = st.sampled_from(["a", ":", ": ", " ", "  ", "\n", "\r\n", "- ", "[", "]", "{", "}", ",", "'", '"', "#", " #", "&x ", "*x",
                          "|", ">", "|-", ">2", "%", "@", "`", "\t", "\ufeff", "!", "!!str", "?", "\x85", "\u2028", "\\", "0", "1",
                          ".", "e", "~", "null", "---", "...", "é", "\U0001f600", "0x1F", ".inf", "yes", '"\\x41"', "'it''s'"])


def texts():
    dumped_json = values.map(lambda v: json.dumps(v, ensure_ascii=False))
    dumped_yaml = values.map(lambda v: yaml.safe_dump(v, allow_unicode=True, default_flow_style=None))
    return (dumped_json | dumped_yaml | fragments | st.text(max_size=40) | st.lists(fragments, max_size=3).map("\n".join)
            | st.lists(pieces, max_size=12).map("".join))


def same_reading(text: str, is_yaml: bool) -> None:
    fast = fast_yaml(text) if is_yaml else fast_json(text)
    if fast is UNSURE or next(check_values(fast), None) is not None:
        return  # the position-recording reader decides alone
    document = _located_document(text, "f", is_yaml)  # raises if it would refuse what the fast parser vouched for
    assert document.data == fast and type(document.data) is type(fast)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts(), st.booleans())
def test_the_fast_parsers_vouch_only_for_what_the_located_readers_read_alike(text, is_yaml):
    try:
        same_reading(text, is_yaml)
    except UnicodeEncodeError:  # a lone surrogate cannot be written to a file, nor read from one
        pass


@settings(max_examples=1000, deadline=None)
@given(values, st.integers(min_value=0, max_value=70))
def test_the_bounds_are_decided_alike_with_and_without_paths(value, depth):
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    assert limits._within_bounds(value) == (next(limits._problems(value, ()), None) is None)


def test_a_valid_file_is_read_once_and_its_positions_only_for_a_problem(tmp_path):
    for name in ("retail_daily.json", "demo_pipeline_composer.json"):
        for suffix in (".json", ".yaml"):
            data = json.loads((EXAMPLES / name).read_text())
            path = tmp_path / f"{name}{suffix}"
            path.write_text(json.dumps(data, indent=2) if suffix == ".json" else yaml.safe_dump(data, sort_keys=False))
            document = load_document(path)
            assert document.data == data and document.positions == {} and document.read_positions is not None
            line, column = document.locate(("definition", 0, "THREADS", 0, "STEPS", 0, "JOB_NAME"))
            assert document.positions and document.read_positions is None
            assert path.read_text().splitlines()[line - 1][column - 1:].lstrip('"').startswith(data["definition"][0]["THREADS"][0]["STEPS"][0]["JOB_NAME"])


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_problems_of_a_fast_read_file_are_located_as_by_the_located_reader(tmp_path, suffix):
    data = pipeline([[[step("A"), step("B", WAIT_TIME_SECONDS="soon")], [step("A")]]])
    path = tmp_path / f"p{suffix}"
    path.write_text(json.dumps(data, indent=2) if suffix == ".json" else yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(LevelflowError) as fast:
        validate_pipeline(load_document(path))
    with pytest.raises(LevelflowError) as located:
        validate_pipeline(_located_document(path.read_text(), str(path), suffix == ".yaml"))
    assert [str(p) for p in fast.value.problems] == [str(p) for p in located.value.problems]
    assert all(p.line and p.column for p in fast.value.problems)


def test_a_file_changed_before_its_positions_are_read_is_an_error(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(pipeline([[[step("A")]]])))
    document = load_document(path)
    path.write_text(json.dumps(pipeline([[[step("B")]]])))
    with pytest.raises(LevelflowError, match="changed while levelflow was reading it"):
        document.locate(("definition",))
