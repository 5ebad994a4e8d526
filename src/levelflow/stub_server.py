"""`levelflow executors serve`: the AEF double (`aef_double`) over real HTTP.

One server plays the whole chain (`--role both`: the intermediate, the executors and the
Workflow Executions API under `/v1/`), or one hop only (`--role intermediate`, forwarding to
whatever `function_url_to_call` names; `--role executors`, behind any intermediate). The
intermediate forwards over real HTTP, to this server or another loopback one: two hops. Every
call is logged, at each hop:

- `GET /_calls` returns the call log as JSON; `DELETE /_calls` clears it.
- `PUT /_scenario` replaces the scenario (JSON body); `GET /_health` answers `ok`.
- `--log FILE` also appends each call as a JSON line (kept across restarts).
"""
from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

from .protocol import is_loopback
from .aef_double import DEFAULT_INTERMEDIATE, FORWARDED_HEADER, AefDouble
from .scenario import Scenario

FORWARD_TIMEOUT_SECONDS = 1800  # the longest call Cloud Functions allow
MAX_BODY_BYTES = 10 * 1024 * 1024


_forward_connections = threading.local()  # per handler thread: (scheme, host, port) -> kept-alive connection


def http_forward(url: str, body: dict) -> tuple[int, str, str]:
    """The intermediate's POST to an executor, over HTTP; only loopback addresses, since the
    double never calls real Google endpoints. Each handler thread keeps its connection to each
    executor host alive, as the deployed intermediate's HTTP client pool does."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not is_loopback(str(url)):
        raise ValueError(f"the double forwards only to loopback http(s) URLs, not {url!r}")
    data = json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json", FORWARDED_HEADER: "1"}
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in (1, 2):  # a kept-alive connection the executor closed meanwhile is opened again, once
        connection = _connection(parts)
        try:
            connection.request("POST", target or "/", body=data, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            _drop(parts)
            if attempt == 2:
                raise
            continue
        except Exception:
            _drop(parts)
            raise
        if response.will_close:
            _drop(parts)
        return response.status, response.reason, text
    raise AssertionError("unreachable")


def _connection(parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    pool = _forward_connections.__dict__.setdefault("pool", {})
    key = (parts.scheme, parts.hostname, parts.port)
    if key not in pool:
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        pool[key] = kind(parts.hostname or "127.0.0.1", parts.port, timeout=FORWARD_TIMEOUT_SECONDS)
    return pool[key]


def _drop(parts: urllib.parse.SplitResult) -> None:
    connection = _forward_connections.__dict__.get("pool", {}).pop((parts.scheme, parts.hostname, parts.port), None)
    if connection is not None:
        connection.close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "levelflow-double/2"
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    # The headers and the body leave in two writes; with Nagle's algorithm the body then waits
    # for the client's delayed ACK of the headers (about 40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True
    double: AefDouble  # set on the subclass made by make_server

    def log_message(self, format, *args):  # keep the terminal for the call log
        pass

    def _send(self, status: int, text: str, content_type: str = "text/plain") -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY_BYTES:
                raise ValueError(f"Content-Length {length} out of range")
        except ValueError:
            self.close_connection = True  # what follows on this connection cannot be trusted
            raise
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        if self.path == "/_calls":
            with self.double.lock:
                records = self.double.calls.records()
            return self._send(200, json.dumps(records, default=str), "application/json")
        if self.path == "/_health":
            return self._send(200, "ok")
        if self.path.startswith("/v1/"):
            return self._send(*self.double.handle("GET", self.path, None, http_forward))
        self._send(404, "not found")

    def do_DELETE(self):
        if self.path != "/_calls":
            return self._send(404, "not found")
        with self.double.lock:
            self.double.calls.clear()
            self.double.calls_per_job.clear()
        self._send(200, "ok")

    def do_PUT(self):
        if self.path != "/_scenario":
            return self._send(404, "not found")
        try:
            scenario = Scenario.model_validate(json.loads(self._read_body() or b"{}"))
        except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
            return self._send(400, f"invalid scenario: {exc}")
        with self.double.lock:
            self.double.scenario = scenario
        self._send(200, "ok")

    def do_POST(self):
        try:
            raw = self._read_body()
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            # Flask's request.get_json(): the intermediate answers 400; the executors read None.
            body = ValueError
        forwarded = self.headers.get(FORWARDED_HEADER) == "1"
        if body is ValueError:
            function = self.path.rstrip("/").rsplit("/", 1)[-1]
            if function == self.double.intermediate_name or self.path.startswith("/v1/"):
                return self._send(400, "Bad Request: the body is not JSON")
            body = None
        self._send(*self.double.handle("POST", self.path, body, http_forward, forwarded=forwarded))


def make_server(host: str = "127.0.0.1", port: int = 8080, scenario: Scenario | None = None,
                log_file: str | None = None, *, role: str = "both", intermediate_name: str = DEFAULT_INTERMEDIATE,
                jobs_dir: Optional[Path] = None) -> ThreadingHTTPServer:
    """Create (not start) the server; port 0 picks a free port (see server.server_address)."""
    double = AefDouble(scenario or Scenario(), role, intermediate_name, jobs_dir, log_file)
    handler = type("DoubleHandler", (_Handler,), {"double": double})
    # a listen backlog that fits a level of 100 threads calling through two hops at once
    server_class = type("DoubleServer", (ThreadingHTTPServer,), {"request_queue_size": 256})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    server.double = double  # type: ignore[attr-defined]
    return server


class RunningStub:
    """Context manager running the double in a background thread (for tests and the local engine)."""

    def __init__(self, scenario: Scenario | None = None, host: str = "127.0.0.1", port: int = 0, log_file: str | None = None,
                 *, role: str = "both", intermediate_name: str = DEFAULT_INTERMEDIATE, jobs_dir: Optional[Path] = None):
        self.server = make_server(host, port, scenario, log_file, role=role, intermediate_name=intermediate_name,
                                  jobs_dir=jobs_dir)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    @property
    def state(self) -> AefDouble:
        return self.server.double  # type: ignore[attr-defined]

    def __enter__(self) -> "RunningStub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
