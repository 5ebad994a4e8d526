"""Lean HTTP/1.1 calls to this machine: the local engine's calls of a double or of a local
function, and the double's own intermediate -> executor hop.

`requests` (and even `http.client`, which parses every answer's headers with the email
package and wraps each answer in a new file object) cost several times what the double takes
to answer a call; a loopback call needs none of what they offer (proxies, TLS, cookies,
redirects, tokens). This client sends each request in one write on a kept-alive connection
(one per thread and host, with TCP_NODELAY) and reads the answer straight from the socket:
a Content-Length, chunked or close-delimited body, within a time-out per read, an optional
deadline for the whole call and an optional size limit.

Failures are the exceptions `http.client` raises for the same events, so that callers (and
the texts the double puts in its answers) see what they saw before: the OSError of a refused
connect or a failed send, `http.client.RemoteDisconnected` for a connection closed without an
answer, `BadStatusLine` / `IncompleteRead` for a broken one; and three of this module's own:
`AnswerTimeout` (a TimeoutError), `DeadlinePassed` and `AnswerTooLarge`.
"""
from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from typing import NamedTuple, Optional

MAX_HEAD_BYTES = 64 * 1024  # the status line and headers of an answer
MAX_HEADERS = 100
READ_BYTES = 64 * 1024


class AnswerTimeout(TimeoutError):
    """A read waited longer than the call's time-out; `answering`: part of the answer had come."""

    def __init__(self, answering: bool):
        super().__init__("timed out")
        self.answering = answering


class DeadlinePassed(AnswerTimeout):
    """The whole call took longer than its deadline (an answer trickled in, or none came)."""


class AnswerTooLarge(Exception):
    """The answer's body is larger than the limit the caller set."""


class Answer(NamedTuple):
    status: int
    reason: str
    headers: dict  # lower-case name -> value (the last one, if repeated)
    body: bytes


class _Connection:
    __slots__ = ("sock", "buffer", "used")

    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.used = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def idle_and_closed(self) -> bool:
        """A kept-alive connection with something to read between calls was closed (or broken) by the server."""
        if self.buffer:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class LoopbackClient:
    """Kept-alive connections, one per calling thread and (host, port)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def call(self, host: str, port: int, method: str, target: str, body: Optional[bytes], headers: dict,
             timeout: float, *, deadline: Optional[float] = None, max_bytes: Optional[int] = None,
             retry_stale: bool = False) -> Answer:
        """One request and its answer. `deadline` (time.monotonic()) bounds the whole call;
        `retry_stale`: a kept-alive connection that turns out closed before any answer is opened
        again, once (the request never reached a handler)."""
        pool: dict = self._local.__dict__.setdefault("pool", {})
        key = (host, port)
        connection = pool.pop(key, None)
        if connection is not None and connection.idle_and_closed():
            connection.close()
            connection = None
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address in brackets
        head = [f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}\r\n")
        request = "".join(head).encode("latin-1") + b"\r\n" + (body or b"")
        for attempt in (1, 2):
            if connection is None:
                connection = _Connection(host, port, timeout)
            reused, connection.used = connection.used, True
            try:
                answer, keep = _exchange(connection, request, method, timeout, deadline, max_bytes)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if not (retry_stale and reused and attempt == 1):
                    raise
                connection = None
                continue
            except BaseException:
                connection.close()
                raise
            if keep:
                pool[key] = connection
            else:
                connection.close()
            return answer
        raise AssertionError("unreachable")


def _exchange(connection: _Connection, request: bytes, method: str, timeout: float, deadline: Optional[float],
              max_bytes: Optional[int]) -> tuple[Answer, bool]:
    sock, buffer = connection.sock, connection.buffer
    sock.settimeout(timeout)
    sock.sendall(request)

    def receive(answering: bool) -> bytes:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlinePassed(answering)
            if remaining < (sock.gettimeout() or 0) - 0.01:  # the deadline comes before the read time-out
                sock.settimeout(remaining)
        try:
            chunk = sock.recv(READ_BYTES)
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlinePassed(answering) from None
            raise AnswerTimeout(answering) from None
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlinePassed(True)
        return chunk

    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise http.client.LineTooLong("header section")
        chunk = receive(bool(buffer))
        if not chunk:
            if not buffer:
                raise http.client.RemoteDisconnected("Remote end closed connection without response")
            raise http.client.BadStatusLine(buffer.decode("latin-1", "replace"))
        buffer += chunk
    lines = buffer[:end].decode("latin-1").split("\r\n")
    del buffer[:end + 4]
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(status_line)
    if len(lines) - 1 > MAX_HEADERS:
        raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
    headers = {}
    for header in lines[1:]:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(code)
    connection_header = headers.get("connection", "").lower()
    keep = connection_header != "close" if version == "HTTP/1.1" else connection_header == "keep-alive"

    size = 0

    def take(count: int) -> bytes:
        """`count` bytes of body (all that comes until the server closes when count < 0)."""
        nonlocal size
        while count < 0 or len(buffer) < count:
            chunk = receive(True)
            if not chunk:
                if count < 0:
                    break
                raise http.client.IncompleteRead(bytes(buffer), count - len(buffer))
            buffer.extend(chunk)
            if max_bytes is not None and size + len(buffer) > max_bytes:
                raise AnswerTooLarge()
        data = bytes(buffer if count < 0 else buffer[:count])
        del buffer[:len(data)]
        size += len(data)
        if max_bytes is not None and size > max_bytes:
            raise AnswerTooLarge()
        return data

    def line() -> bytes:
        while (at := buffer.find(b"\r\n")) < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise http.client.LineTooLong("chunk size")
            chunk = receive(True)
            if not chunk:
                raise http.client.IncompleteRead(bytes(buffer))
            buffer.extend(chunk)
        text = bytes(buffer[:at])
        del buffer[:at + 2]
        return text

    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            try:
                length = int(line().split(b";", 1)[0], 16)
            except ValueError:
                raise http.client.IncompleteRead(b"".join(parts)) from None
            if length == 0:
                while line():  # trailers, up to the blank line
                    pass
                break
            parts.append(take(length))
            line()
        body = b"".join(parts)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise http.client.HTTPException(f"invalid Content-Length {headers['content-length']!r}") from None
        if max_bytes is not None and length > max_bytes:
            raise AnswerTooLarge()
        body = take(length)
    else:
        body = take(-1)
        keep = False
    return Answer(status, reason, headers, body), keep
