"""runtime.yaml, the shared subworkflows of the Cloud Workflows backend: its literals equal the
Python constants they mirror (marked "checked" there), and the compiler's per-pipeline parts
(which subworkflows, run_step's dispatch, post's time-out switch) follow the rule its header
states. The rules checker and the Workflows schema on runtime.yaml itself: test_workflow_rules.py."""
import json
import re

import pytest
import yaml

from levelflow import protocol
from levelflow.backends.cloud_workflows import compiler as cw

RUNTIME = cw.runtime()


def body(subworkflow: str, step: str) -> dict:
    return cw._step_body(RUNTIME[subworkflow], step)


def calls(value, found=None) -> list[dict]:
    """Every call step body inside `value`, in order."""
    found = [] if found is None else found
    if isinstance(value, dict):
        if isinstance(value.get("call"), str):
            found.append(value)
        for item in value.values():
            calls(item, found)
    elif isinstance(value, list):
        for item in value:
            calls(item, found)
    return found


def same(a, b) -> bool:
    """Equal with key order and value types (True is not 1)."""
    return json.dumps(a) == json.dumps(b)


def texts(value):
    """Every string inside `value`."""
    if isinstance(value, str):
        yield value
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        yield from texts(item)


def test_every_kept_text_is_cut_to_the_limit_the_variables_estimate_assumes():
    limits = [(name, c["args"]["value"], c["args"]["limit"]) for name, sub in RUNTIME.items() for c in calls(sub) if c["call"] == "shown"]
    assert limits == [
        ("run_step", '${default(map.get(e, "message"), "")}', cw.ERROR_MESSAGE_CHARS),
        ("run_step", '${map.get(e, "body")}', cw.ERROR_BODY_CHARS),
        ("run_async_step", "${answer.body}", cw.ERROR_MESSAGE_CHARS - 40),  # no_id; room for the words around it
        ("run_async_step", "${answer.body}", cw.ERROR_MESSAGE_CHARS - 40),  # odd_answer
        ("run_sync_step", "${answer.body}", cw.ERROR_MESSAGE_CHARS - 60),
        ("run_workflow_step", '${map.get(execution, "error")}', cw.ERROR_MESSAGE_CHARS - 60),
        ("run_native_step", "${state.detail}", cw.ERROR_MESSAGE_CHARS - 60),
    ]


def test_the_executor_protocol_words_are_protocol_constants():
    assert body("run_async_step", "start")["args"]["call_type"] == protocol.GET_ID
    assert body("run_async_step", "poll")["args"]["call_type"] == protocol.GET_STATUS
    assert body("call_executor", "extras")["switch"][0]["condition"] == f'${{call_type == "{protocol.GET_STATUS}"}}'
    decide = [c["condition"] for c in body("run_async_step", "decide")["switch"]]
    assert decide[:2] == [f'${{answer.body == "{protocol.SUCCESS}"}}', f'${{answer.body != "{protocol.RUNNING}"}}']
    succeeded = body("run_sync_step", "succeeded")["switch"][0]["condition"]
    assert f"answer.body in {json.dumps(list(protocol.SYNC_SUCCESS_WORDS))}}}" in succeeded


@pytest.mark.parametrize("text", ["aef_1", "aef-2", "aef_", "aef", "aefx", "AEF_1", "xaef_1", "", "aef 1", "ae_f"])
def test_the_job_id_regex_accepts_what_protocol_accepts(text):
    regexes = [regex for t in texts(RUNTIME) for regex in re.findall(r'text\.match_regex\(answer\.body, "([^"]*)"\)', t)]
    assert len(regexes) == 2  # run_async_step's check_id, run_sync_step's check
    for regex in regexes:  # RE2, as Workflows uses it, reads this simple pattern as Python does
        assert (re.search(regex, text) is not None) == protocol.is_job_id(text), regex


def test_transient_faults_and_their_back_off_are_protocol_constants():
    condition = body("transient", "check")["switch"][0]["condition"]
    [codes] = re.findall(r"in \[([0-9, ]+)\]", condition)
    assert {int(c) for c in codes.split(",")} == protocol.TRANSIENT_HTTP_STATUS
    for caller in ("post", cw.GOOGLE_REQUEST):  # google_get, _post and _put are google_request written out
        assert same(body(caller, "send")["retry"], {
            "predicate": "${transient}", "max_retries": protocol.MAX_TRANSIENT_RETRIES,
            "backoff": {"initial_delay": int(protocol.BACKOFF_INITIAL_SECONDS), "max_delay": int(protocol.BACKOFF_MAX_SECONDS),
                        "multiplier": int(protocol.BACKOFF_MULTIPLIER)}})
    assert (protocol.BACKOFF_INITIAL_SECONDS, protocol.BACKOFF_MAX_SECONDS, protocol.BACKOFF_MULTIPLIER) == (1, 60, 2)  # whole seconds


def test_native_steps_decide_with_the_intermediates_state_words():
    decide = [c["condition"] for c in body("run_native_step", "decide")["switch"]]
    assert decide[0] == f"${{state.word in {json.dumps(list(protocol.SUCCESS_WORDS))}}}"
    assert decide[1] == f"${{not(state.word in {json.dumps(list(protocol.RUNNING_WORDS))})}}"


def test_native_mode_keeps_only_the_starters_of_the_pipelines_apis():
    library = cw._runtime_for(frozenset({"native"}), frozenset({"dataflow", "bigquery"}))
    starts = [c["call"] for c in cw._step_body(library["run_native_step"], "start")["switch"]]
    assert starts == ["start_dataflow_flex_template", "start_bigquery_saved_query"]
    assert {"start_dataproc_batch", "start_dataform_invocation", "run_async_step", "post"}.isdisjoint(library)
    assert {"read_job_file", "google_get", "google_post", "native_state", "transient"} <= set(library)
    for name, method in cw.GOOGLE_METHODS.items():  # google_request written out, one literal method each
        [branch] = cw._step_body(cw._subworkflows()[name], "by_timeout")["switch"]
        assert branch["args"]["method"] == method
    assert cw.GOOGLE_REQUEST not in library
    with pytest.raises(ValueError, match="no condition for API"):
        cw._runtime_for(frozenset({"native"}), frozenset({"pubsub"}))


def test_connectors_are_the_executions_ones_and_pubsub_for_the_report():
    """Child workflows run through the executions connector; the report goes out through Pub/Sub's."""
    connector = [c["call"] for c in calls(RUNTIME) if c["call"].startswith("googleapis.")]
    assert connector == [f"{cw.EXECUTIONS}.create", f"{cw.EXECUTIONS}.get", f"{cw.EXECUTIONS}.cancel",
                         "googleapis.pubsub.v1.projects.topics.publish"]


def test_the_split_parent_builds_its_report_as_finish_does():
    """_parent_doc uses _collect and _verdict; finish (runtime.yaml) writes the same steps out."""
    assert same(body("finish", "add"), cw._collect("records"))
    assert same(RUNTIME["finish"]["steps"][-2:], cw._verdict("pipeline.name"))


@pytest.mark.parametrize("types, runners", [
    ({"async"}, ["run_async_step", "call_executor", "post", "transient"]),
    ({"sync"}, ["run_sync_step", "post", "transient"]),
    ({"workflows"}, ["run_workflow_step"]),
    ({"async", "sync", "workflows"}, ["run_async_step", "run_sync_step", "call_executor", "post", "transient", "run_workflow_step"]),
])
def test_only_the_runners_of_the_pipelines_step_types_are_emitted(types, runners):
    library = cw._runtime_for(frozenset(types))
    assert list(library) == ["run_thread", "run_step", *runners, "shown", "level_failed", "finish", "not_started"]
    dispatch = cw._step_body(library["run_step"], "by_type")["switch"]
    assert [c["call"] for c in dispatch] == [r for r in runners if r.startswith("run_")]
    assert len(body("run_step", "by_type")["switch"]) == 4  # the shared source is left whole


def test_a_step_type_without_a_dispatch_condition_is_an_error():
    with pytest.raises(ValueError, match="by_type has no condition for step type"):
        cw._run_step(frozenset({"async", "carrier_pigeon"}))


def test_post_has_one_literal_time_out_per_branch_and_oidc_only_on_https():
    post = cw._timeout_switch("post", [60, 300], https=True)
    branches = cw._step_body(post, "by_timeout")["switch"]
    assert [(b["condition"], b["args"]["timeout"], b["args"]["auth"]) for b in branches] == [
        ("${seconds == 60}", 60, {"type": "OIDC"}), ("${seconds == 300}", 300, {"type": "OIDC"})]
    plain = cw._step_body(cw._timeout_switch("post", [60], https=False), "by_timeout")["switch"]
    assert list(plain[0]["args"]) == ["url", "body", "timeout"]
    assert "&id" not in cw.render(post) and len(body("post", "by_timeout")["switch"]) == 1  # no aliases; the sample stays


def test_more_than_fifty_time_outs_are_nested_by_ranges():
    branches = cw._step_body(cw._timeout_switch("post", list(range(1, 121)), https=True), "by_timeout")["switch"]
    assert len(branches) == 40 and branches[0]["condition"] == "${seconds >= 1 and seconds <= 3}"
    [(name, inner)] = branches[0]["steps"][0].items()
    assert name == "seconds_1_to_3" and [b["args"]["timeout"] for b in inner["switch"]] == [1, 2, 3]


def test_the_runtime_is_loaded_once_and_parsed_as_written():
    assert cw.runtime() is RUNTIME
    assert same(RUNTIME, yaml.safe_load(cw.RUNTIME.read_text(encoding="utf-8")))  # libyaml's loader reads what PyYAML's does


def test_the_report_speaks_the_local_engines_status_words():
    """Every step status the workflow's report can hold is a word of plan.STEP_STATUSES, the
    local engine's record and report vocabulary: one vocabulary for every engine."""
    from levelflow.plan import STEP_STATUSES

    source = cw.RUNTIME.read_text(encoding="utf-8")
    written = set(re.findall(r"\bstatus: ([a-z_]+)\b", source))
    assert {"succeeded", "failed", "continued", "skipped", "not_started"} <= written
    assert written <= set(STEP_STATUSES), written - set(STEP_STATUSES)
