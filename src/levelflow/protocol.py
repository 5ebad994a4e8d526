"""The executor protocol (docs/executor-protocol.md), shared by every engine and by the double.

Two hops, as the deployed AEF functions implement them:

- **Async steps** talk to the *intermediate* function: `get_id` starts the job and answers its
  id (`aef_...`/`aef-...`), `get_status` answers `running` or `success`. A failed job, or any
  error, is HTTP 500 with a body starting `Exception`. The intermediate forwards each call to
  the executor named by `function_url_to_call` with the *executor body* below.
- **Sync steps** call their FUNCTION_NAME once, directly, with that same executor body; the
  step succeeded only when the answer is 2xx and its text is a success state word. Executors
  answer errors as HTTP 200 with a JSON body `{"error": ..., "message": ...}`, and a job id
  when they started a job instead of finishing one: both are failures of a sync step.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Optional
from urllib.parse import urlsplit

GET_ID = "get_id"
GET_STATUS = "get_status"

RUNNING = "running"
SUCCESS = "success"
JOB_ID_PREFIXES = ("aef_", "aef-")

# The intermediate's mapping of executor state words (AEF intermediate, JobStatus).
SUCCESS_WORDS = ("DONE", "SUCCESS", "SUCCEEDED", "JOB_STATE_DONE")
RUNNING_WORDS = ("PENDING", "RUNNING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_PENDING")
# A sync step succeeded when its function answered one of these (the intermediate's own
# "success" included, for functions written for levelflow's earlier protocol).
SYNC_SUCCESS_WORDS = (*SUCCESS_WORDS, SUCCESS)
# The intermediate fails every answer whose text contains one of these (case-insensitive).
FAILING_WORDS = ("error", "exception")

# Answers worth retrying with back-off; every other failure is final.
TRANSIENT_HTTP_STATUS = frozenset({429, 502, 503, 504})
MAX_TRANSIENT_RETRIES = 5
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MULTIPLIER = 2.0
BACKOFF_MAX_SECONDS = 60.0

# The AEF executors: each starts a job and answers its id, so a sync step cannot call them.
ASYNC_EXECUTORS = ("dataform-tag-executor", "dataflow-flextemplate-job-executor",
                   "dataproc-serverless-job-executor", "bq-saved-query-executor")


def request_body(
    call_type: str,
    *,
    workflow_name: str,
    execution_id: str,
    job_name: str,
    function_url_to_call: str,
    query_variables: dict,
    workflow_properties: dict,
    step_properties: dict,
    async_job_id: str | None = None,
) -> dict:
    """What an engine posts to the intermediate function."""
    body = {
        "call_type": call_type,
        "workflow_name": workflow_name,
        "execution_id": execution_id,
        "job_name": job_name,
        "function_url_to_call": function_url_to_call,
        "query_variables": query_variables,
        "workflow_properties": workflow_properties,
        "step_properties": step_properties,
    }
    if async_job_id is not None:
        body["async_job_id"] = async_job_id
    return body


def quoted(date: str) -> str:
    """A date as the intermediate hands it to executors: wrapped in single quotes."""
    return "'" + date + "'"


def executor_body(*, workflow_name: str, job_name: str, query_variables: dict, properties: dict,
                  job_id: str | None = None) -> dict:
    """What an executor receives (from the intermediate, or from a sync step): `properties` are
    the step properties merged over the workflow's; the dates are quoted."""
    body = {
        "workflow_properties": properties,
        "workflow_name": workflow_name,
        "job_name": job_name,
        "query_variables": {"start_date": quoted(query_variables["start_date"]),
                            "end_date": quoted(query_variables["end_date"])},
    }
    if job_id:
        body["job_id"] = job_id
    return body


def properties_object(value, what: str = "workflow_properties") -> dict:
    """Workflow or step properties: a mapping, or a string holding a JSON object (as the
    intermediate accepts them). Raises ValueError saying what is wrong."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is a string but not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object (or a string holding one), got {type(value).__name__}")
    return value


def is_loopback(url: str) -> bool:
    """True for a URL on this machine (localhost, 127.0.0.0/8, ::1): the only place plain http
    and unauthenticated calls may go."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def backoff_delays(retries: int = MAX_TRANSIENT_RETRIES) -> list[float]:
    """Seconds to wait before each retry of a transient fault: 1, 2, 4, 8, 16 (capped)."""
    delays, delay = [], BACKOFF_INITIAL_SECONDS
    for _ in range(retries):
        delays.append(min(delay, BACKOFF_MAX_SECONDS))
        delay *= BACKOFF_MULTIPLIER
    return delays


def is_job_id(text: str) -> bool:
    return isinstance(text, str) and text.startswith(JOB_ID_PREFIXES)


def is_failure_body(text: str) -> bool:
    return isinstance(text, str) and text.startswith("Exception")


def has_failing_word(text: str) -> bool:
    """True when the intermediate would fail an answer holding `text` (it contains "error" or
    "exception", in any case)."""
    lowered = text.lower()
    for word in FAILING_WORDS:
        if word in lowered:
            return True
    return False


def error_dict(text: str) -> Optional[dict]:
    """An executor's HTTP 200 error answer `{"error": ..., "message": ...}`, or None."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and "error" in data else None


def sync_failure(function: str, status: int, text: str, shown: int = 300) -> Optional[str]:
    """Why a sync call failed, or None when it succeeded (2xx and a success state word)."""
    answer = text.strip()
    short = answer if len(answer) <= shown else answer[:shown - 3] + "..."
    if not 200 <= status < 300:
        return f"{function} answered HTTP {status}: {short}"
    error = error_dict(answer)
    if error is not None:
        return f"{function} answered an error: {error.get('error')}: {error.get('message', '')}"[:shown + 60]
    if answer in SYNC_SUCCESS_WORDS:
        return None
    if is_job_id(answer):
        return (f"{function} started job {short} instead of finishing: it is an asynchronous executor; "
                f"declare this step TYPE async (FUNCTION_ID_NAME) so that levelflow polls the job")
    return f"{function} answered {short!r}, not a success state ({', '.join(SYNC_SUCCESS_WORDS)})"
