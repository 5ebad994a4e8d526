"""The fast workflow writer (backends/cloud_workflows/emit.py) writes PyYAML's exact bytes.

PyYAML with the compiler's dumper (libyaml's emitter, when present) is the reference: every document here is written by both and
compared byte for byte, for the examples, generated pipelines of every shape, and random values
in every place a value can take (block and flow, keys and values, lists).
"""
import copy
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from levelflow import load_params, load_plan
from levelflow.backends.cloud_workflows import compiler as cw
from levelflow.backends.cloud_workflows import emit
from conftest import EXAMPLES, PARAMS, pipeline, step


def both(doc) -> tuple[str, str]:
    """The fast writer's text and PyYAML's, with the emitter the compiler used before it (libyaml)."""
    return cw.render(doc, "fast"), cw.render(doc, cw.PYYAML)


def documents(plan):
    settings_ = cw._settings(plan)
    yield cw._workflow_doc(plan, plan.levels, settings_, part=False)
    yield cw._workflow_doc(plan, plan.levels[:1], settings_, part=True)
    yield cw._parent_doc(plan, ["p-part-1", "p-part-2"], settings_)


def test_the_examples_and_every_document_shape_are_written_as_pyyaml_writes_them(write_json):
    odd = {"quote": "it's \"x\"", "colon": "a: b", "hash": "a #b", "num": "1e5", "uni": "café ☕", "list": [1, "2", None, True],
           "nested": {"k": [{"a": 1}], "empty": {}, "none": []}, "tab": "a\tb", "bool": "yes", "expr": "${x}"}
    wide = pipeline([[[step(f"w{t}")] for t in range(23)], [[step("a", RETRIES="2", CONTINUE_IF_FAIL="true")], [step("b")]]])
    shapes = [pipeline([[[step("p", STEP_PROPERTIES=odd)]]]), wide,
              pipeline([[[step("s", TYPE="sync", FUNCTION_NAME="notify"), step("w", TYPE="workflows", workflows_name="child")]]])]
    paths = [EXAMPLES / name for name in ("demo_pipeline_cloud_workflows.json", "retail_daily.json")]
    paths += [write_json(data, f"shape_{n}.json") for n, data in enumerate(shapes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            for doc in documents(load_plan(path, load_params(PARAMS))):
                fast, slow = both(doc)
                assert fast == slow, path


scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
           | st.from_regex(r"\$\{[ -~]{0,20}\}", fullmatch=True) | st.from_regex(r"[0-9a-z_.:# '-]{0,12}", fullmatch=True))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3).map(emit.FlowMap), max_leaves=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=10), values, min_size=1, max_size=4))
def test_random_values_anywhere_are_written_as_pyyaml_writes_them(doc):
    fast, slow = both({"top": doc, "listed": [copy.deepcopy(doc)], "flow": emit.FlowMap(copy.deepcopy(doc))})
    assert fast == slow


def test_texts_are_reused_across_documents_but_aliases_are_left_to_pyyaml():
    shared = {"a": 1}
    writer = emit.Emitter(emit.Scalars(cw._pyyaml, cw._YAML12_NUMBER))
    level = {"id": "1", "jobs": [emit.FlowMap(id="J1")]}
    first = cw.render({"main": {"levels": [level]}}, writer=writer)
    assert cw.render({"main": {"levels": [level], "more": 2}}, writer=writer).startswith(first)
    doubled = {"x": shared, "y": shared}
    assert cw.render(doubled, writer=writer) == cw.render(doubled, cw.PYYAML)  # PyYAML writes &id001 / *id001
    assert "&id001" in cw.render(doubled)
