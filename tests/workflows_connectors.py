"""Google API calls of a workflow run in workflows-emulator, sent to a FakeGoogle instead of
Google: `http.*` steps to https://*.googleapis.com/..., and `googleapis.*` connector calls.
cloud_workflows_emulator.patched_emulator(google=fake) installs it.

HTTP steps (reference/stdlib/http, reference/syntax/authenticating): the URL is mapped with
`fake.url_for`; `auth: {type: OAuth2}` sends a dummy bearer token (a step without `auth` sends
none, as on the service, and the fake answers 401). No credential is looked up. A status >= 400
raises an error tagged "HttpError" with `code`, `headers`, `body` and `message`, as the service
does (the emulator alone would tag it "HTTPError"). No retries unless the step has a `retry`.

Connectors. The method comes from google-api-python-client's discovery documents (the emulator
ships none for Dataproc or Dataform), as google_discovery.connector_method resolves it: path
parameters fill the URL template (RFC 6570), the other arguments (those the method declares as
query parameters) go into the query string, `body` is the JSON body. From the Workflows pages
"Understand connectors" (workflows/docs/connectors, "Retries", "Long-running operations") and
"Invoke a connector call" (workflows/docs/invoke-connector-to-gcp-service, `connector_params`):
- Retries: a GET uses the idempotent policy (http.default_retry: 429, 502, 503, 504 and
  ConnectionError, ConnectionFailedError, TimeoutError), any other method the non-idempotent one
  (http.default_retry_non_idempotent: 429, 503, ConnectionFailedError); both up to 5 retries
  with retry.default_backoff (initial 1 s, multiplier 1.25, max 60 s), on the virtual clock.
  The failed polls of a long-running operation are retried the same way.
- Long-running operations: the call blocks until the operation is done, polling with
  `connector_params.polling_policy` (initial_delay 1.0, multiplier 1.25, max_delay 60.0 by
  default), on the virtual clock. A failed operation raises an error tagged "OperationError"
  with `operation` (the failed operation). `skip_polling: true` returns the first answer at once.
  `timeout` (default 1800 s) bounds the whole call, then a "TimeoutError". An LRO here is a
  method answering a google.longrunning `Operation` (polled with the service's
  `...operations.get` whose name pattern fits), and BigQuery `jobs.insert`, whose Job is its
  LRO resource (workflows/docs/poll-bigquery-job), polled with jobs.get until status.state is
  DONE; a DONE job with status.errorResult is an OperationError.
- The value of a finished LRO call is the last polled resource (the done Operation, the DONE
  Job): the pages found do not say which part the service returns.
Documented but not emulated: `scopes` (ignored), the ResponseTypeError for an invalid poll
answer, per-request time-outs (requests get 30 s of real time). A connector argument the method
does not declare, or a missing path parameter, is recorded in `fake.problems` and raises a
TypeError (the service rejects such a workflow when it is deployed).
"""
from __future__ import annotations

import urllib.parse
from typing import Callable

import requests
from workflows_emulator.utils import WorkflowError

import google_discovery

TOKEN = "Bearer levelflow-test-token"  # what a real caller's OAuth2 token stands in for
REQUEST_SECONDS = 30  # real seconds per loopback request: bounded, whatever the step asks
IDEMPOTENT = ((429, 502, 503, 504), ("ConnectionError", "ConnectionFailedError", "TimeoutError"))
NON_IDEMPOTENT = ((429, 503), ("ConnectionFailedError",))
MAX_RETRIES = 5
BACKOFF = {"initial_delay": 1.0, "multiplier": 1.25, "max_delay": 60.0}  # retry.default_backoff, and the polling default
DEFAULT_TIMEOUT = 1800.0


def is_google(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and parts.netloc.endswith(".googleapis.com")


def _http_error(answer: requests.Response) -> WorkflowError:
    is_json = "application/json" in answer.headers.get("Content-Type", "")
    return WorkflowError(message=f"HTTP server responded with error code {answer.status_code}", tags=["HttpError"],
                         code=answer.status_code, headers=dict(answer.headers), body=answer.json() if is_json else answer.text)


def _answer(answer: requests.Response) -> dict:
    """An HTTP step's result: {code, headers, body}, the body parsed when it is JSON."""
    if answer.status_code >= 400:
        raise _http_error(answer)
    is_json = "application/json" in answer.headers.get("Content-Type", "")
    return {"code": answer.status_code, "headers": dict(answer.headers), "body": answer.json() if is_json else answer.text}


def _query_text(query: dict) -> dict:
    """Query values as a URL carries them (booleans true/false, as JSON spells them)."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in (query or {}).items()}


class GoogleRouting:
    def __init__(self, fake, now: Callable[[], float], sleep: Callable[[float], None]):
        self.fake, self.now, self.sleep = fake, now, sleep

    # -- http.* steps ------------------------------------------------------------------------

    def http(self, method: str, url: str, body=None, headers=None, query=None, auth=None, **_ignored) -> dict:
        headers = dict(headers or {})
        if auth and auth.get("type") == "OAuth2":
            headers["Authorization"] = TOKEN
        return _answer(self._send(method, url, body, headers, query))

    def _send(self, method: str, url: str, body, headers: dict, query) -> requests.Response:
        kind = {"json": body} if isinstance(body, (dict, list)) else {"data": body} if body is not None else {}
        try:
            return requests.request(method, self.fake.url_for(url), headers=headers, params=_query_text(query),
                                    timeout=REQUEST_SECONDS, **kind)
        except requests.Timeout as exc:
            raise WorkflowError(message=f"request to {url} timed out: {exc}", tags=["TimeoutError"]) from None
        except requests.ConnectionError as exc:
            raise WorkflowError(message=f"connection to {url} failed: {exc}", tags=["ConnectionError"]) from None

    # -- googleapis.* connectors -------------------------------------------------------------

    def connector(self, call: str, args: dict):
        args = dict(args or {})
        params = dict(args.pop("connector_params", None) or {})
        body = args.pop("body", None)
        try:
            method = google_discovery.connector_method(call)
        except KeyError as exc:
            self._reject(f"{call}: {exc.args[0]}")
        url, query = self._request_parts(call, method, args)
        started = self.now()
        answer = self._with_retries(method.http_method, url, body, query)
        if params.get("skip_polling") or not self._is_lro(method):
            return answer
        return self._poll(method, answer, params, started)

    def _reject(self, problem: str):
        self.fake.problems.append(problem)
        raise WorkflowError(message=problem, tags=["TypeError"])

    def _request_parts(self, call: str, method, args: dict) -> tuple[str, dict]:
        declared = method.parameters
        path_names = [name for name, spec in declared.items() if spec["location"] == "path"]
        for name in path_names:
            if name not in args:
                self._reject(f"{call}: missing argument {name}")
        for name in args:
            if name not in declared and name not in method.doc.get("parameters", {}):
                self._reject(f"{call}: no argument {name} (it takes {', '.join(sorted(declared)) or 'none'}, body, connector_params)")
        return google_discovery.expand_path(method, args), {k: v for k, v in args.items() if k not in path_names}

    def _with_retries(self, verb: str, url: str, body, query) -> dict:
        codes, tags = IDEMPOTENT if verb == "GET" else NON_IDEMPOTENT
        delay = BACKOFF["initial_delay"]
        for attempt in range(MAX_RETRIES + 1):
            try:
                return _answer(self._send(verb, url, body, {"Authorization": TOKEN}, query))["body"]
            except WorkflowError as error:
                retryable = error.payload.get("code") in codes or set(error.payload.get("tags", [])) & set(tags)
                if not retryable or attempt == MAX_RETRIES:
                    raise
                self.sleep(delay)
                delay = min(delay * BACKOFF["multiplier"], BACKOFF["max_delay"])

    @staticmethod
    def _is_lro(method) -> bool:
        response = method.spec.get("response", {}).get("$ref")
        is_operation = response == "Operation" and "done" in method.doc["schemas"]["Operation"].get("properties", {})
        return is_operation or method.id == "bigquery.jobs.insert"

    def _poll(self, method, answer: dict, params: dict, started: float):
        policy = {**BACKOFF, **(params.get("polling_policy") or {})}
        timeout = float(params.get("timeout", DEFAULT_TIMEOUT))
        url, query, done, failed = self._poller(method, answer)
        delay = float(policy["initial_delay"])
        while not done(answer):
            if self.now() + delay - started > timeout:
                raise WorkflowError(message=f"{method.id} did not finish within {timeout:g} s", tags=["TimeoutError"])
            self.sleep(delay)
            delay = min(delay * float(policy["multiplier"]), float(policy["max_delay"]))
            answer = self._with_retries("GET", url, None, query)
        if failed(answer):
            raise WorkflowError(message=f"{method.id}: the long-running operation failed", tags=["OperationError"], operation=answer)
        return answer

    def _poller(self, method, answer: dict):
        """(url, query, done, failed) for polling what `method` answered."""
        if method.id == "bigquery.jobs.insert":
            reference = answer["jobReference"]
            get = google_discovery.connector_method("googleapis.bigquery.v2.jobs.get")
            url = google_discovery.expand_path(get, reference)
            return (url, {"location": reference["location"]}, lambda job: job.get("status", {}).get("state") == "DONE",
                    lambda job: "errorResult" in job.get("status", {}))
        get = self._operations_get(method, answer["name"])
        return (google_discovery.expand_path(get, {"name": answer["name"]}), {}, lambda op: bool(op.get("done")),
                lambda op: "error" in op)

    @staticmethod
    def _operations_get(method, name: str):
        for spec in google_discovery.methods(method.doc):
            candidate = google_discovery.Method(method.doc, spec, {"name": name})
            if spec["id"].endswith(".operations.get") and "name" in candidate.parameters and not candidate.pattern_problems():
                return candidate
        raise WorkflowError(message=f"no operations.get in {method.service} for {name}", tags=["ValueError"])
