"""What the local engine's and the double's shortcuts must keep (no timing is asserted here;
benchmarks/local_engine.py measures): the run record holds each change before the action that
depends on it, writes from many threads all land, worker threads are reused, the double's call
log reads as the list it was, and the lean loopback HTTP client reads every kind of answer."""
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import levelflow
from conftest import PARAMS, pipeline, step
from levelflow.aef_double import AefDouble, CallLog
from levelflow.backends.local import LocalRunOptions, RunStore, prepare_run
from levelflow.backends.local import store as store_module
from levelflow.backends.local.store import StoreError
from levelflow.loopback_http import AnswerTimeout, AnswerTooLarge, DeadlinePassed, LoopbackClient
from levelflow.scenario import Scenario
from levelflow.stub_server import RunningStub


def astep(job_id, **extra):
    return step(job_id, WAIT_TIME_SECONDS="1", **extra)


def sstep(job_id):
    return {"JOB_ID": job_id, "JOB_NAME": f"job_{job_id}", "TYPE": "sync", "FUNCTION_NAME": "my-function"}


def load(write_json, levels):
    return levelflow.load_plan(write_json(pipeline(levels, name="demo")), levelflow.load_params(PARAMS))


def recorded(state, sql, args=()):
    """What another process reading the run record sees now."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


def test_each_change_is_on_record_before_the_action_that_depends_on_it(write_json, tmp_path):
    """Polls only of a recorded job id; a sync call only once the step shows running and every
    earlier step's end is recorded; a job started after a sync step only once its end is recorded."""
    plan = load(write_json, [[[astep("A"), astep("B"), sstep("S"), astep("C")]], [[astep("D")]]])
    state = tmp_path / "runs.db"
    store = RunStore(state)
    engine = prepare_run(plan, store, LocalRunOptions(scenario=Scenario(), time_scale=0))
    transport, seen, wrong = engine.client.transport, [], []
    post = transport.post

    def checking_post(url, body, timeout):
        steps = dict(recorded(state, "SELECT job_id, status FROM steps"))
        jobs = dict(recorded(state, "SELECT job_id, async_job_id FROM steps"))
        job = {"job_A": "A", "job_B": "B", "job_S": "S", "job_C": "C", "job_D": "D"}[body["job_name"]]
        kind = body.get("call_type", "sync")
        seen.append((job, kind))
        if kind == "get_status" and not (jobs[job] == body["async_job_id"] and steps[job] == "running"):
            wrong.append((job, kind, steps, jobs))
        if kind == "sync" and not (steps["S"] == "running" and steps["A"] == steps["B"] == "succeeded"):
            wrong.append((job, kind, steps))
        if job == "C" and kind == "get_id" and steps["S"] != "succeeded":
            wrong.append((job, kind, steps))
        if job == "D" and {steps[k] for k in "ABSC"} != {"succeeded"}:  # a level's end is on record before the next starts
            wrong.append((job, kind, steps))
        return post(url, body, timeout)

    transport.post = checking_post
    assert engine.run() == "succeeded"
    store.close()
    assert wrong == []
    assert ("S", "sync") in seen and ("D", "get_status") in seen
    attempts = recorded(state, "SELECT job_id, attempt, status, async_job_id FROM attempts ORDER BY job_id")
    assert [(a[0], a[1], a[2]) for a in attempts] == [(j, 1, "succeeded") for j in "ABCDS"]
    assert all(a[3] for a in attempts if a[0] != "S") and [a[3] for a in attempts if a[0] == "S"] == [None]


def test_a_start_waiting_out_a_back_off_shows_the_step_running(write_json, tmp_path):
    plan = load(write_json, [[[astep("T")]]])
    state = tmp_path / "runs.db"
    store = RunStore(state)
    engine = prepare_run(plan, store, LocalRunOptions(scenario=Scenario.model_validate({"jobs": {"job_T": {"transient": [1]}}}),
                                                      time_scale=0.001))
    transport, during = engine.client.transport, []
    post = transport.post

    def post_and_look(url, body, timeout):
        during.append(recorded(state, "SELECT status, attempts, async_job_id FROM steps"))
        return post(url, body, timeout)

    transport.post = post_and_look
    assert engine.run() == "succeeded"
    store.close()
    # the first get_id (answered 503) went out before anything was committed; the retry after the back-off
    assert during[0] == [("pending", 0, None)] and during[1] == [("running", 1, None)]


def test_writes_of_many_threads_all_land_and_a_failed_commit_fails_every_writer_in_it(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs.db")
    rows = [{"job_id": f"J{n}", "job_name": f"j{n}", "level_id": "1", "thread_id": str(n), "position": n, "type": "async"}
            for n in range(16)]
    store.create_run("r", "p", None, "simulate", [], {}, rows)

    def write(n):
        for attempt in range(1, 26):
            store.begin_attempt("r", f"J{n}", attempt, time.time())
            store.end_attempt("r", f"J{n}", attempt, "failed", 0, "x", None)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.attempts("r")) == 16 * 25 and {s["attempts"] for s in store.steps("r")} == {25}

    monkeypatch.setattr(store_module, "LOCK_WAIT_SECONDS", 0.2)
    store.close()
    store = RunStore(tmp_path / "runs.db")
    locker = sqlite3.connect(str(tmp_path / "runs.db"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    failures = []

    def blocked(n):
        try:
            store.set_step_status("r", f"J{n}", "succeeded")
        except StoreError as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=blocked, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    locker.execute("ROLLBACK")
    locker.close()
    assert len(failures) == 8 and all("could not be written" in f for f in failures)
    assert {s["status"] for s in store.steps("r")} == {"running"}  # as the last committed write left them
    store.close()


def test_worker_threads_are_kept_from_level_to_level(write_json, tmp_path):
    plan = load(write_json, [[[astep(f"L{level}T{n}")] for n in range(3)] for level in range(6)])
    store = RunStore(tmp_path / "runs.db")
    engine = prepare_run(plan, store, LocalRunOptions(scenario=Scenario(), time_scale=0))
    transport, workers = engine.client.transport, set()
    post = transport.post

    def post_from(url, body, timeout):
        workers.add(threading.get_ident())
        return post(url, body, timeout)

    transport.post = post_from
    assert engine.run() == "succeeded"
    store.close()
    assert 1 <= len(workers) <= 3


def test_the_call_log_reads_as_a_list_of_records():
    double = AefDouble()
    assert isinstance(double.calls, CallLog) and not double.calls and list(double.calls) == []
    with RunningStub() as stub:
        import urllib.request

        for job in ("a", "b", "c"):
            request = urllib.request.Request(f"{stub.url}/my-function", json.dumps({"job_name": job}).encode())
            urllib.request.urlopen(request, timeout=10).read()
        calls = stub.state.calls
        assert len(calls) == 3 and calls
        assert [c["seq"] for c in calls] == [1, 2, 3] and calls[-1]["job_name"] == "c" and calls[0]["job_name"] == "a"
        assert [c["job_name"] for c in calls[1:]] == ["b", "c"] and calls[-2:][0]["seq"] == 2
        assert calls[0] == {"seq": 1, "time": calls[0]["time"], "hop": "executor", "entry": True, "function": "my-function",
                            "call_type": None, "job_name": "a", "async_job_id": None, "status": 200, "answer": "SUCCEEDED",
                            "body": {"job_name": "a"}}
        with urllib.request.urlopen(f"{stub.url}/_calls", timeout=10) as answer:
            assert json.loads(answer.read()) == list(calls)
        with pytest.raises(IndexError):
            calls[3]
        calls.clear()
        assert len(stub.state.calls) == 0


class Framings(BaseHTTPRequestHandler):
    """Answers in every framing a loopback executor may use."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"aef-", b"chunked", b""):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        elif self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"RUNNING")
            self.close_connection = True
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"a")
            self.wfile.flush()
            time.sleep(1)
        elif self.path == "/silent":
            time.sleep(1)
            self.close_connection = True
        else:
            data = b"x" * (2000 if self.path == "/big" else 5)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if self.path == "/then-close":
                self.close_connection = True


def test_the_loopback_client_reads_every_framing_and_keeps_its_limits():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Framings)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    client = LoopbackClient()

    def call(path, **limits):
        return client.call("127.0.0.1", port, "POST", path, b"{}", {"Content-Type": "application/json"}, 5, **limits)

    try:
        assert call("/chunked").body == b"aef-chunked"
        assert call("/until-close").body == b"RUNNING"
        assert call("/plain").body == b"xxxxx" and call("/plain").status == 200  # kept alive
        assert call("/then-close").body == b"xxxxx"
        time.sleep(0.1)  # the server closed that connection: the next call opens another
        assert call("/plain").body == b"xxxxx"
        with pytest.raises(AnswerTooLarge):
            call("/big", max_bytes=1000)
        with pytest.raises(DeadlinePassed):
            call("/slow", deadline=time.monotonic() + 0.2)
        with pytest.raises(AnswerTimeout) as timed_out:
            client.call("127.0.0.1", port, "POST", "/silent", b"", {}, 0.3)
        assert not timed_out.value.answering
        with pytest.raises(ConnectionRefusedError):
            client.call("127.0.0.1", 1, "POST", "/", b"", {}, 1)
    finally:
        server.shutdown()
        server.server_close()
