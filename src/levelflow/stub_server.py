"""A real local HTTP server that plays the executors (DESIGN.md §3) with scripted behaviour.

Every POST, whatever its path, is one executor call; the path's last segment names the function
called. The server answers from a `Scenario` and records every call, so tests (and users trying
a pipeline) can check exactly what was started and polled:

- `GET /_calls` returns the call log as JSON; `DELETE /_calls` clears it.
- `PUT /_scenario` replaces the scenario (JSON body); `GET /_health` answers `ok`.
- `--log FILE` also appends each call as a JSON line (kept across restarts).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from . import protocol
from .scenario import Scenario


@dataclass
class _Job:
    job_name: str
    started: float
    polls: int = 0


@dataclass
class StubState:
    scenario: Scenario
    log_file: Optional[str] = None
    calls: list = field(default_factory=list)
    jobs: dict = field(default_factory=dict)  # async job id -> _Job
    calls_per_job: dict = field(default_factory=dict)  # job name -> count of calls
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def answer(self, function: str, body: dict) -> tuple[int, str]:
        """Decide the answer to one call and record it."""
        job_name = str(body.get("job_name", ""))
        call_type = body.get("call_type")
        behaviour = self.scenario.behaviour(job_name)
        with self.lock:
            number = self.calls_per_job[job_name] = self.calls_per_job.get(job_name, 0) + 1
            if number in behaviour.transient:
                status, text = 503, "Service Unavailable (scripted transient fault)"
            elif call_type == protocol.GET_ID:
                status, text = self._start(job_name, behaviour)
            elif call_type == protocol.GET_STATUS:
                status, text = self._status(str(body.get("async_job_id", "")), behaviour)
            elif call_type == protocol.SYNC:
                failed = behaviour.outcome == "fail"
                status, text = (500, f"Exception: sync job {job_name} failed (scripted)") if failed else (200, protocol.SUCCESS)
            else:
                status, text = 500, f"Exception: unknown call_type {call_type!r}"
            record = {"seq": len(self.calls) + 1, "time": time.time(), "function": function,
                      "call_type": call_type, "job_name": job_name, "async_job_id": body.get("async_job_id"),
                      "status": status, "answer": text, "body": body}
            self.calls.append(record)
            if self.log_file:
                with open(self.log_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, sort_keys=True) + "\n")
        return status, text

    def _start(self, job_name: str, behaviour) -> tuple[int, str]:
        if behaviour.outcome == "fail" and behaviour.fail_on == "start":
            return 500, f"Exception: could not start {job_name} (scripted)"
        job_id = f"aef_{job_name}_{next(self.counter)}"
        self.jobs[job_id] = _Job(job_name, time.monotonic())
        return 200, job_id

    def _status(self, job_id: str, behaviour) -> tuple[int, str]:
        job = self.jobs.get(job_id)
        if job is None:
            return 500, f"Exception: unknown async_job_id {job_id!r}"
        job.polls += 1
        if behaviour.outcome == "never":
            return 200, protocol.RUNNING
        if job.polls <= behaviour.polls or time.monotonic() - job.started < behaviour.duration_s:
            return 200, protocol.RUNNING
        if behaviour.outcome == "fail":
            return 500, f"Exception: job {job_id} failed (scripted)"
        return 200, protocol.SUCCESS


class _Handler(BaseHTTPRequestHandler):
    server_version = "levelflow-stub/1"
    state: StubState  # set on the subclass made by make_server

    def log_message(self, format, *args):  # keep the terminal for the call log
        pass

    def _send(self, status: int, text: str, content_type: str = "text/plain") -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def do_GET(self):
        if self.path == "/_calls":
            with self.state.lock:
                self._send(200, json.dumps(self.state.calls), "application/json")
        elif self.path == "/_health":
            self._send(200, "ok")
        else:
            self._send(404, "not found")

    def do_DELETE(self):
        if self.path != "/_calls":
            return self._send(404, "not found")
        with self.state.lock:
            self.state.calls.clear()
            self.state.calls_per_job.clear()
        self._send(200, "ok")

    def do_PUT(self):
        if self.path != "/_scenario":
            return self._send(404, "not found")
        try:
            scenario = Scenario.model_validate(self._read_json())
        except (ValueError, json.JSONDecodeError) as exc:
            return self._send(400, f"invalid scenario: {exc}")
        with self.state.lock:
            self.state.scenario = scenario
        self._send(200, "ok")

    def do_POST(self):
        try:
            body = self._read_json()
        except json.JSONDecodeError:
            return self._send(500, "Exception: request body is not JSON")
        if not isinstance(body, dict):
            return self._send(500, "Exception: request body must be a JSON object")
        function = self.path.rstrip("/").rsplit("/", 1)[-1]
        behaviour = self.state.scenario.behaviour(str(body.get("job_name", "")))
        if behaviour.latency_ms:
            time.sleep(behaviour.latency_ms / 1000)
        status, text = self.state.answer(function, body)
        self._send(status, text)


def make_server(host: str = "127.0.0.1", port: int = 8080, scenario: Scenario | None = None,
                log_file: str | None = None) -> ThreadingHTTPServer:
    """Create (not start) the server; port 0 picks a free port (see server.server_address)."""
    state = StubState(scenario or Scenario(), log_file)
    handler = type("StubHandler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.state = state
    return server


class RunningStub:
    """Context manager running the stub in a background thread (for tests and the local engine)."""

    def __init__(self, scenario: Scenario | None = None, host: str = "127.0.0.1", port: int = 0, log_file: str | None = None):
        self.server = make_server(host, port, scenario, log_file)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def state(self) -> StubState:
        return self.server.state

    def __enter__(self) -> "RunningStub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
