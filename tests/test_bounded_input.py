"""Hostile, huge and broken input: every case a located error (file, place, the limit), exit
status 1, nothing written, no traceback, bounded time and memory (docs/limits.md)."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import levelflow
from conftest import EXAMPLES, PARAMS, pipeline, run_cli, step
from levelflow.errors import LevelflowError


def validate(path):
    return run_cli("validate", path, timeout=60)


def assert_located(result, *words):
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "error: " in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


BILLION_LAUGHS = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"] +
                           [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                            f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
                            for i in range(9)])


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.monotonic()
    result = validate(path)
    assert_located(result, f"{path}:2:", "YAML aliases (*a) are not allowed")
    assert time.monotonic() - started < 30  # bounded (generous: shared machines; the point is no 10^10 expansion)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_deep_nesting_is_a_located_error_in_json_and_yaml(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 1000 + "]" * 1000)
    assert_located(validate(path), str(path), "nested more than 64 levels deep")


def test_deep_json_inside_a_step_properties_string(write_json):
    for depth in (199, 100_000):
        definition = pipeline([[[step("A", STEP_PROPERTIES="[" * depth + "]" * depth)]]])
        assert_located(validate(write_json(definition)), "STEP_PROPERTIES", "nested more than 64 levels deep")


def test_huge_numbers_and_non_finite_numbers(tmp_path, write_json):
    huge = "9" * 5000
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(pipeline([[[step("A")]]])).replace('"10"', huge, 1))
    assert_located(validate(path), "a number of 5,000 characters, more than the 40 allowed")
    yaml_path = tmp_path / "huge.yaml"
    yaml_path.write_text(f"engine: cloud_workflows\ndefinition: {huge}\n")
    assert_located(validate(yaml_path), "more than the 40 allowed")
    infinite = tmp_path / "inf.json"
    infinite.write_text(json.dumps(pipeline([[[step("A", STEP_PROPERTIES={"x": 1})]]])).replace('"x": 1', '"x": 1e400'))
    assert_located(validate(infinite), "numbers must be finite")
    for text in ('{"x": NaN}', '{"x": Infinity}', '{"x": 1e999}'):
        result = validate(write_json(pipeline([[[step("A", STEP_PROPERTIES=text)]]])))
        assert_located(result, "STEP_PROPERTIES")
    dates = tmp_path / "dates.yaml"
    dates.write_text("engine: cloud_workflows\ndescription: 2026-02-30\ndefinition: []\n")
    assert_located(validate(dates), str(dates))


def test_lone_surrogates_and_huge_keys(tmp_path):
    path = tmp_path / "surrogate.json"
    path.write_text(json.dumps(pipeline([[[step("A")]]])).replace("job_A", "job\\ud800"))
    assert_located(validate(path), "lone surrogate")
    key = "k" * 10_000_000
    big = tmp_path / "key.json"
    big.write_text(json.dumps({"engine": "cloud_workflows", key: 1, "definition": []}))
    result = validate(big)
    assert_located(result, "a key of 10,000,000 characters")
    assert len(result.stderr) < 2000  # never echoed


def test_special_files_and_oversized_input(tmp_path):
    assert_located(validate("/dev/zero"), "not a regular file")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    assert_located(validate(fifo), "not a regular file")
    sparse = tmp_path / "big.json"
    with sparse.open("wb") as handle:
        handle.truncate(65 * 1024 * 1024)
    assert_located(validate(sparse), "larger than the 64 MiB")


def test_yaml_1_1_surprises_are_reported(tmp_path):
    for text, said in (("description: 017", "'017' as a number"), ("description: 1:30", "'1:30' as a number"),
                       ("description: yes", "'yes' as a boolean"), ("null: 1", "keys must be text")):
        path = tmp_path / "surprise.yaml"
        path.write_text(f"engine: cloud_workflows\n{text}\ndefinition: []\n")
        assert_located(validate(path), said)


def test_platform_parameters_are_checked_at_load(tmp_path, write_json):
    definition = write_json(pipeline([[[step("A")]]]))
    base = json.loads(PARAMS.read_text())
    for value, said in ((5, "must be a URL (text)"), ("http://evil.example", "plain http to a loopback address"),
                        ("ftp://x", "http(s) URL"), ("file:///etc/passwd", "http(s) URL")):
        params = tmp_path / "platform-parameters-bad.json"
        params.write_text(json.dumps(base + [{"ParameterKey": "pFunctionsBaseUrl", "ParameterValue": value}]))
        for engine_args in ([], ["--engine", "composer", "--step-mode", "functions"]):
            result = run_cli("generate", definition, "--params", params, "--out", tmp_path / "out", *engine_args)
            assert_located(result, str(params), said)
        result = run_cli("run", definition, "--params", params, "--simulate", "--state", tmp_path / "r.db")
        assert_located(result, str(params), said)
    assert not (tmp_path / "out").exists()


def test_time_scale_must_be_finite(write_json, tmp_path):
    result = run_cli("run", write_json(pipeline([[[step("A")]]])), "--params", PARAMS, "--simulate",
                     "--time-scale", "inf", "--state", tmp_path / "r.db")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_outputs_never_replace_inputs_and_all_files_land_or_none(tmp_path):
    definition = tmp_path / "a.json"
    definition.write_text((EXAMPLES / "demo_pipeline_cloud_workflows.json").read_text())
    result = run_cli("generate", definition, "--params", PARAMS, "-o", definition)
    assert_located(result, "would overwrite an input file")
    assert json.loads(definition.read_text())["engine"] == "cloud_workflows"
    second = tmp_path / "b.json"
    second.write_text(definition.read_text())
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.yaml").write_text("old a\n")
    (out / "b.yaml").mkdir()  # the second rename fails
    result = run_cli("generate", definition, second, "--params", PARAMS, "--out", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (out / "a.yaml").read_text() == "old a\n"  # put back as it was
    assert sorted(p.name for p in out.iterdir()) == ["a.yaml", "b.yaml"]  # no temporary files left


# --- executor answers are bounded -------------------------------------------------------------

class Misbehaving(BaseHTTPRequestHandler):
    """An intermediate that trickles its answer, never ends it, or answers a 20 MB job id."""
    mode = "trickle"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        if self.mode == "huge_id":
            body = ("aef_" + "x" * (20 * 1024 * 1024 - 4)).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.end_headers()
        try:
            for _ in range(600 if self.mode == "trickle" else 10_000_000):
                self.wfile.write(b"a" if self.mode == "trickle" else b"a" * 65536)
                self.wfile.flush()
                if self.mode == "trickle":
                    time.sleep(0.1)
        except OSError:
            pass


@pytest.mark.parametrize("mode, said", [("trickle", "did not finish answering within 2 s"),
                                        ("endless", "answered more than 1,024 KiB"),
                                        ("huge_id", "answered more than 1,024 KiB")])
def test_executor_answers_are_bounded_in_time_and_size(tmp_path, write_json, mode, said):
    handler = type("Handler", (Misbehaving,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from levelflow.backends.local import LocalRunOptions, run_local

        plan = levelflow.load_plan(write_json(pipeline([[[step("A", TIMEOUT_SECONDS="2")]]])), levelflow.load_params(PARAMS))
        started = time.monotonic()
        report = run_local(plan, tmp_path / "r.db", LocalRunOptions(executor_url=f"http://127.0.0.1:{server.server_address[1]}",
                                                                   time_scale=0.01))
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    [record] = report["steps"]
    assert record["status"] == "failed" and said in record["error"], record["error"]
    assert elapsed < 30


# --- a mutation fuzzer over the examples ------------------------------------------------------

HOSTILE_VALUES = st.sampled_from([
    float("nan"), float("inf"), 10 ** 30, -(10 ** 19), "\ud800", "[" * 300 + "]" * 300, "${sys.get_env('X')}",
    "x" * 300, "", None, True, [], {}, {"a": {"b": {"c": [1, 2, {"d": "e"}]}}}, "017", "1:30",
])


def _mutate(data, choices, draw):
    """Replace one value somewhere in `data` by a hostile one."""
    paths = []
    stack = [((), data)]
    while stack:
        path, value = stack.pop()
        paths.append(path)
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
    path = draw(st.sampled_from(sorted(paths, key=repr)))
    if not path:
        return draw(choices)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = draw(choices)
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), example=st.sampled_from(["demo_pipeline_cloud_workflows.json", "demo_pipeline_composer.json", "retail_daily.json"]),
       as_yaml=st.booleans())
def test_mutated_examples_never_crash_and_never_emit_invalid_output(tmp_path, data, example, as_yaml):
    import warnings

    import yaml

    definition = _mutate(json.loads((EXAMPLES / example).read_text()), HOSTILE_VALUES, data.draw)
    path = tmp_path / ("mutant.yaml" if as_yaml else "mutant.json")
    try:
        text = yaml.safe_dump(definition, allow_unicode=True) if as_yaml else json.dumps(definition)
    except (ValueError, yaml.YAMLError, UnicodeEncodeError):
        return  # not writable as such a file at all
    if as_yaml and data.draw(st.booleans()):
        text = "anchor: &x 1\nother: *x\n" + text  # aliases too
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except UnicodeEncodeError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            plan = levelflow.load_plan(path, levelflow.load_params(PARAMS))
            files = levelflow.generate([path], PARAMS, tmp_path / "out")
        except LevelflowError as exc:
            assert exc.problems and all(p.file for p in exc.problems)
            return
    for written in files:
        content = written.read_text()
        if written.suffix == ".py":
            compile(content, str(written), "exec")
        else:
            yaml.safe_load(content)
    assert plan.step_count > 0


def test_the_terraform_helper_answers_malformed_queries_without_a_traceback():
    import subprocess
    import sys

    from conftest import ROOT

    for query in ("not json", "[1, 2]", '{"command": 5}', '{"command": "\\"unclosed"}', '{"command": ""}',
                  '{"command": "levelflow --version", "out_dir": "x"}'):
        done = subprocess.run([sys.executable, str(ROOT / "terraform" / "levelflow_external.py")], input=query,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr.strip(), (query, done.stderr)


def test_a_run_record_locked_at_start_is_a_located_error(tmp_path, write_json):
    import sqlite3

    state = tmp_path / "runs.db"
    holder = sqlite3.connect(str(state), isolation_level=None)
    holder.execute("CREATE TABLE runs (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_cli("run", write_json(pipeline([[[step("A")]]])), "--params", PARAMS, "--simulate", "--state", state,
                         timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_located(result, str(state), "locked")
