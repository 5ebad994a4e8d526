"""The executor protocol (DESIGN.md §3), shared by every engine and by the stub server.

Async steps talk to the *intermediate* function: `get_id` starts the job and answers its id
(`aef_...`/`aef-...`), `get_status` answers `running` or `success`. A failed job, or any
error, is HTTP 500 with a body starting `Exception`. Sync steps POST the same body, with
`call_type: "sync"`, straight to their FUNCTION_NAME and succeed on HTTP 200.
"""
from __future__ import annotations

GET_ID = "get_id"
GET_STATUS = "get_status"
SYNC = "sync"
CALL_TYPES = (GET_ID, GET_STATUS, SYNC)

RUNNING = "running"
SUCCESS = "success"
JOB_ID_PREFIXES = ("aef_", "aef-")

# Answers worth retrying with back-off; every other failure is final.
TRANSIENT_HTTP_STATUS = frozenset({429, 502, 503, 504})
MAX_TRANSIENT_RETRIES = 5
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MULTIPLIER = 2.0
BACKOFF_MAX_SECONDS = 60.0


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
