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

import email.utils
import http.client
import json
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

from .loopback_http import LoopbackClient
from .protocol import is_loopback
from .aef_double import DEFAULT_INTERMEDIATE, FORWARDED_HEADER, AefDouble
from .scenario import Scenario

FORWARD_TIMEOUT_SECONDS = 1800  # the longest call Cloud Functions allow
MAX_BODY_BYTES = 10 * 1024 * 1024


_forward_client = LoopbackClient()  # per handler thread: a kept-alive connection to each executor host


def http_forward(url: str, body: dict) -> tuple[int, str, str]:
    """The intermediate's POST to an executor, over HTTP; only loopback addresses, since the
    double never calls real Google endpoints. Each handler thread keeps its connection to each
    executor host alive, as the deployed intermediate's HTTP client pool does (one closed by the
    executor meanwhile is opened again, once)."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme != "http" or not is_loopback(str(url)):
        if parts.scheme != "https" or not is_loopback(str(url)):
            raise ValueError(f"the double forwards only to loopback http(s) URLs, not {url!r}")
        return _https_forward(parts, body)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    answer = _forward_client.call(parts.hostname or "127.0.0.1", parts.port or 80, "POST", target,
                                  json.dumps(body).encode("utf-8"), _FORWARD_HEADERS, FORWARD_TIMEOUT_SECONDS,
                                  retry_stale=True)
    return answer.status, answer.reason, answer.body.decode("utf-8", "replace")


_FORWARD_HEADERS = {"Content-Type": "application/json", FORWARDED_HEADER: "1"}


def _https_forward(parts: urllib.parse.SplitResult, body: dict) -> tuple[int, str, str]:
    """A loopback executor behind TLS (rare): http.client, a new connection each time."""
    connection = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, timeout=FORWARD_TIMEOUT_SECONDS)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=json.dumps(body).encode("utf-8"), headers=_FORWARD_HEADERS)
        response = connection.getresponse()
        return response.status, response.reason, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


class _Headers(dict):
    """A request's headers, by lower-case name (the last of repeated ones)."""

    def get(self, name, default=None):  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name) -> bool:
        return super().__contains__(str(name).lower())


_date = (0, "")


def _http_date() -> str:
    """The Date header, made once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True))
    return _date[1]


class _Handler(BaseHTTPRequestHandler):
    server_version = "levelflow-double/2"
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    # The headers and the body leave in two writes; with Nagle's algorithm the body then waits
    # for the client's delayed ACK of the headers (about 40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True
    double: AefDouble  # set on the subclass made by make_server

    def log_message(self, format, *args):  # keep the terminal for the call log
        pass

    def parse_request(self) -> bool:
        """The request line and headers. A well-formed HTTP/1.0 or 1.1 request is read here,
        without the email package that BaseHTTPRequestHandler parses headers with (most of the
        server's time per call); anything else goes to BaseHTTPRequestHandler's parser, which
        answers it as it always did. Same limits: 65,536 bytes a line, 100 headers."""
        raw: bytes = self.raw_requestline  # type: ignore[attr-defined]  # set by handle_one_request
        words = raw.split()
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return super().parse_request()
        self.requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        self.command, self.path, self.request_version = (str(word, "iso-8859-1") for word in words)
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")  # as BaseHTTPRequestHandler does (gh-87389)
        headers = _Headers()
        while True:
            line = self.rfile.readline(65537)
            if len(line) > 65536:
                self.close_connection = True
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= 100:
                self.close_connection = True
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
                return False
            name, _, value = str(line, "iso-8859-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (self.request_version == "HTTP/1.0" and connection != "keep-alive")
        if headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _send(self, status: int, text: str, content_type: str = "text/plain") -> None:
        """The answer in one write (status line, headers and body: no Nagle wait between them)."""
        data = text.encode("utf-8")
        phrase = self.responses[status][0] if status in self.responses else ""
        head = (f"{self.protocol_version} {status} {phrase}\r\nServer: {self.version_string()}\r\n"
                f"Date: {_http_date()}\r\nContent-Type: {content_type}; charset=utf-8\r\n"
                f"Content-Length: {len(data)}\r\n\r\n")
        self.wfile.write(head.encode("latin-1", "strict") + data)

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
