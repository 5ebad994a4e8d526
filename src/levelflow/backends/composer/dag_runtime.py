"""The fixed code of every generated Composer DAG, as a module: its run-time helpers and DAG builder.

A generated DAG file is `dag_frame.py.tmpl` (its docstring, `from __future__ import annotations`
and the final `dag = build_dag()`) around the text of this module, included by the rule of
`dag_source`: this docstring and the `from __future__` import are dropped, and each line that
ends in a marker comment is replaced, whole, by generated text:

- `#@@EXECUTOR_IMPORTS@@`: the operator imports of the executors the pipeline uses;
- `#@@PIPELINE@@`: `PIPELINE = ...`, the pipeline as one data literal (here an empty dict);
- `#@@EXECUTOR_BUILDERS@@`: the builder modules of those executors (`builders/`), then
  `BUILDERS = {executor: builder}` (here an empty dict).

The DAG it builds (`build_dag`): a task group per level and, in it, per thread; a step's
tasks are `<step>.<task>` in its thread's group (a functions-mode step is the one task
`<step>`), so a task's step is its id less its last component (`_step_group`), which is how
`job_param`, `sibling` and `this_step` find the step's other tasks and data.

As a module it is what the builder modules import their names from (`JOB_REQUESTS`, `MACROS`,
`PIPELINE`, `job_param`, `sibling`, `templated`, ...), so that ruff and mypy check them, and
the tests import it, and them, in real Airflow 2 and 3. It imports nothing from levelflow:
the generated DAG has no levelflow to import. Importing it builds no DAG.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, TaskGroup
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2.10+
    from airflow import DAG
    from airflow.operators.empty import EmptyOperator
    from airflow.operators.python import PythonOperator
    from airflow.utils.task_group import TaskGroup
#@@EXECUTOR_IMPORTS@@

PIPELINE: dict = {}  #@@PIPELINE@@

PARAMS_TASK = "job_params"  # the task of a step that loads its job parameters


# ---- run-time helpers, used from templates (Jinja macros) and from tasks --------------------

def _step_group(ti):
    """The step's id (`<level group>.<thread group>.<step>`) of one of its tasks: a step's
    tasks are `<step>.<task>` in their thread's group, and step names hold no '.'."""
    return ti.task_id.rsplit(".", 1)[0]


def job_param(ti, key):
    """KEY of this step's operator arguments, as returned by the step's job_params task."""
    return ti.xcom_pull(task_ids=_step_group(ti) + "." + PARAMS_TASK)[key]


def sibling(ti, task_id):
    """The return value of another task of the same step."""
    return ti.xcom_pull(task_ids=_step_group(ti) + "." + task_id)


def unique_id(ti):
    """A job id unique per run: lowercase letters, digits and '-', at most 63 characters."""
    slug = re.sub(r"[^a-z0-9-]+", "-", _step_group(ti).rsplit(".", 1)[-1].lower())
    digest = hashlib.sha256(f"{ti.dag_id}/{ti.run_id}/{ti.task_id}".encode()).hexdigest()[:12]
    return f"lf-{slug[:44].strip('-')}-{digest}"


def query_variables(params, dag_run):
    """start_date / end_date of this run: the run's parameters, else, for a scheduled pipeline,
    its `dates` rule from the day it was triggered in the schedule's time zone, else its
    logical day."""
    schedule = PIPELINE["schedule"]
    if schedule is None:
        when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
        start = end = when.strftime("%Y-%m-%d") if when else None
    else:
        start, end = rule_dates(schedule["dates"], trigger_day(dag_run, schedule["time_zone"]))
    return {"start_date": params.get("start_date") or start, "end_date": params.get("end_date") or end}


def trigger_day(dag_run, time_zone):
    """The day a run was triggered, in `time_zone`: the end of its data interval (a scheduled run
    starts then, whether the timetable makes intervals, as Airflow 2's cron schedules do, or
    not, as Airflow 3's do), else when it was asked to run."""
    when = (getattr(dag_run, "data_interval_end", None) or getattr(dag_run, "run_after", None)
            or getattr(dag_run, "logical_date", None) or datetime.now(timezone.utc))
    return when.astimezone(ZoneInfo(time_zone)).date()


def rule_dates(rule, today):
    """(start_date, end_date) by the AEF pipeline-executor's rules, as text."""
    yesterday = today - timedelta(days=1)
    if rule == "PREVIOUS_MONTH":
        month_end = today.replace(day=1) - timedelta(days=1)
        days = (month_end.replace(day=1), month_end)
    else:
        days = {"YESTERDAY": (yesterday, yesterday), "TODAY": (today, today), "YESTERDAY_TODAY": (yesterday, today)}[rule]
    return tuple(day.isoformat() for day in days)


def workflow_properties(params):
    """The run's workflow_properties: a mapping, or a string holding a JSON object."""
    value = params.get("workflow_properties") or {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ValueError(f"workflow_properties is a string that does not hold JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"workflow_properties must be a mapping (or a string holding a JSON object), got {type(value).__name__}")
    return value


STEPS: dict = {}  # step id (`_step_group`) -> the step's data, filled while the DAG is built


def this_step(ti):
    """The data (from PIPELINE) of the step a task belongs to."""
    return STEPS[_step_group(ti)]


def workflow_execution(params, dag_run, ti):
    """The execution of a child Cloud Workflow: its argument (a JSON string) names the child and
    carries this run's dates and the step's properties over the run's."""
    step = this_step(ti)
    argument = {"workflow_name": step["workflow_id"], "query_variables": query_variables(params, dag_run),
                "workflow_properties": {**workflow_properties(params), **step["step_properties"]}}
    return {"argument": json.dumps(argument, sort_keys=True)}


MACROS = {"job_param": job_param, "sibling": sibling, "unique_id": unique_id, "query_variables": query_variables,
          "workflow_properties": workflow_properties, "workflow_execution": workflow_execution}


@functools.lru_cache(maxsize=None)
def templated(operator, *fields):
    """A subclass of `operator` that also renders `fields` as templates."""
    extra = {"template_fields": (*operator.template_fields, *fields), "__module__": __name__}
    return types.new_class(operator.__name__, (operator,), {}, lambda namespace: namespace.update(extra))


JOB_REQUESTS: dict = {}  # executor -> request(job_format, params, step, run): the operators' arguments


def _job_format(step, params, where):
    """The format of a job file: the one whose marker key it holds, all of that format's keys present."""
    formats = PIPELINE["job_formats"][step["executor"]]
    found = [name for name, spec in formats.items() if spec["marker"] is not None and spec["marker"] in params]
    if len(found) != 1:
        known = "; ".join(f"{name} format: keys {spec['keys']} (recognised by {spec['marker']!r})"
                          for name, spec in formats.items() if spec["marker"] is not None)
        why = "holds the marker keys of both formats" if found else "holds the marker key of neither format"
        raise ValueError(f"{where}: not a recognised {step['executor']} job file: it {why} ({known})")
    keys = formats[found[0]]["keys"]
    missing = [key for key in keys if key not in params]
    if missing:
        raise ValueError(f"{where}: missing job parameters {missing} ({found[0]} format; expected {keys})")
    return found[0]


def _download_job_params(step, where):
    """The step's job file read from GCS now; None when there is no such object."""
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from google.api_core.exceptions import NotFound

    try:
        raw = GCSHook().download(bucket_name=PIPELINE["jobs_bucket"], object_name=step["job_params_object"])
    except NotFound:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ValueError(f"{where}: cannot read job parameters: {error}") from None


def load_job_params(step, **context):
    """Return the arguments of the step's operators, built from its job file (embedded at
    generation time, else read from GCS now) as its AEF executor builds its API request."""
    params, job_format = step["job_params"], step["job_format"]
    where = f"gs://{PIPELINE['jobs_bucket']}/{step['job_params_object']}"
    if params is None and job_format is None:
        params = _download_job_params(step, where)
        if params is None:
            formats = PIPELINE["job_formats"][step["executor"]]
            job_format = next((name for name, spec in formats.items() if spec["marker"] is None), None)
            if job_format is None:
                raise FileNotFoundError(f"{where}: job parameter file not found")
    if params is not None:
        if not isinstance(params, dict):
            raise ValueError(f"{where}: job parameters must be a JSON object")
        job_format = _job_format(step, params, where)
    run_params = context["params"]
    run = {"dates": query_variables(run_params, context.get("dag_run")),
           "workflow_properties": {**workflow_properties(run_params), **(step["step_properties"] or {})},
           "workflow_name": run_params.get("workflow_name") or PIPELINE["dag_id"],
           "project_id": PIPELINE["project_id"]}
    request = JOB_REQUESTS[step["executor"]]
    if params is None:  # a format without a job file: its request function says what is wrong
        return request(job_format, {}, step, run)
    try:
        return request(job_format, params, step, run)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where} ({job_format} format): {type(error).__name__}: {error}") from error


# ---- notifications: the run's report on Pub/Sub (docs/notifications.md) ---------------------------

def run_report(context, status):
    """The run as the Cloud Workflows report lists it, each step's status from its tasks' states,
    as far as the callback's Airflow can tell them (task_states)."""
    dag_run = context.get("dag_run")
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
    report = {"workflow": PIPELINE["dag_id"], "status": status, "run_id": run_id, "reason": context.get("reason")}
    states = task_states(context, run_id)
    if states is None:  # this Airflow gives a DAG callback no task states: the report says so
        report["steps"] = None
        return report
    steps = []
    for level in PIPELINE["levels"]:
        for thread in level["threads"]:
            for step in thread["steps"]:
                prefix = f"{level['group_id']}.{thread['group_id']}.{step['task_id']}"
                mine = [state for task_id, state in states.items() if task_id == prefix or task_id.startswith(prefix + ".")]
                steps.append({"level": level["group_id"].removeprefix("level_"), "thread": thread["group_id"].removeprefix("thread_"),
                              "job_id": step["job_id"], "job_name": step["job_name"], "status": _step_status(mine)})
    return {**report, "failed": [s["job_id"] for s in steps if s["status"] == "failed"], "steps": steps}


def task_states(context, run_id):
    """task id -> state of this run: from the run's task instances (Airflow 2, where a callback
    holds the database's DagRun), else through the Task SDK (Airflow 3), else None."""
    dag_run = context.get("dag_run")
    if hasattr(dag_run, "get_task_instances"):
        return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        found = RuntimeTaskInstance.get_task_states(dag_id=PIPELINE["dag_id"], run_ids=[run_id])
        return {task_id: str(state) for task_id, state in (found.get(run_id) or {}).items()}
    except Exception:  # no Task SDK channel here (e.g. dag.test's in-process callbacks)
        return None


def _step_status(states):
    if any(state == "failed" for state in states):
        return "failed"
    if states and all(state == "success" for state in states):
        return "succeeded"
    if any(state in ("running", "queued", "up_for_retry", "deferred") for state in states):
        return "running"
    return "not_started"


def publish_report(context, status):
    """Publish the run's report, one message, as the workflows do. A message that cannot be sent
    is logged: it never changes the run's outcome."""
    import base64
    import logging

    notify = PIPELINE["notify"]
    try:
        report = run_report(context, status)
    except Exception as error:  # the message still goes: the outcome matters more than its detail
        report = {"workflow": PIPELINE["dag_id"], "status": status, "steps": None, "error": repr(error)}
    message = {"data": base64.b64encode(json.dumps(report).encode()).decode(),
               "attributes": {"pipeline": report["workflow"], "status": status, "execution_id": str(report.get("run_id"))}}
    try:
        request = urllib.request.Request(notify["url"], data=json.dumps({"messages": [message]}).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **_access_token_header(notify["url"])})
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()
    except Exception as error:  # no credentials, no network, an HTTP error: said, and the run's outcome stands
        logging.getLogger(__name__).warning("levelflow could not publish the run's report to %s: %s", notify["topic"], error)


def _access_token_header(url):
    """An OAuth2 access token of the environment's credentials; none for a loopback fake."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return {}
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    return {"Authorization": f"Bearer {credentials.token}"}


def callbacks():
    """The DAG's on_failure_callback / on_success_callback, as notify asks."""
    notify = PIPELINE["notify"] or {}
    return {"on_failure_callback": publish_failure if notify.get("on_failure") else None,
            "on_success_callback": publish_success if notify.get("on_success") else None}


def publish_failure(context):
    publish_report(context, "failed")


def publish_success(context):
    publish_report(context, "succeeded")


# ---- functions mode: the executor protocol over HTTP ------------------------------------------

def _is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _auth_headers(url):
    """An ID token for https functions; none for a local stub on a loopback http address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return {}
    if parts.scheme != "https":
        raise ValueError(f"refusing to call {url}: only https, or http on a loopback address")
    import google.auth.transport.requests
    import google.oauth2.id_token

    audience = f"{parts.scheme}://{parts.netloc}{parts.path}"
    token = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
    return {"Authorization": f"Bearer {token}"}


def _open(request, timeout):
    if _is_loopback(urllib.parse.urlsplit(request.full_url).hostname or ""):
        return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


def post(url, body, timeout):
    """One executor call -> (HTTP status, body text); transient faults retried with back-off."""
    protocol = PIPELINE["protocol"]
    delays = list(protocol["backoff_seconds"])
    while True:
        request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **_auth_headers(url)})
        try:
            with _open(request, timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode("utf-8", "replace")
            if status not in protocol["transient_status"] or not delays:
                return status, text
        except (urllib.error.URLError, ConnectionError):
            if not delays:
                raise
        time.sleep(delays.pop(0))


def _fail(step, what, status, text):
    raise RuntimeError(f"step {step['job_name']}: {what} failed: HTTP {status}: {text[:1000]}")


def _sync_problem(function, status, text):
    """Why a sync call failed, or None: success is a 2xx answer that is a success state word."""
    protocol = PIPELINE["protocol"]
    answer = text.strip()
    if not 200 <= status < 300:
        return f"{function} answered HTTP {status}: {answer[:1000]}"
    if answer.startswith("{"):
        try:
            error = json.loads(answer)
        except ValueError:
            error = None
        if isinstance(error, dict) and "error" in error:
            return f"{function} answered an error: {error.get('error')}: {error.get('message', '')}"[:1200]
    if answer in protocol["sync_success_words"]:
        return None
    if answer.startswith(tuple(protocol["job_id_prefixes"])):
        return (f"{function} started job {answer[:300]} instead of finishing: it is an asynchronous executor; "
                "declare this step TYPE async (FUNCTION_ID_NAME) so that it is polled")
    return f"{function} answered {answer[:300]!r}, not a success state ({', '.join(protocol['sync_success_words'])})"


def call_executor(step, **context):
    """Run one step through the executor protocol: a sync call, or start then poll."""
    params = context["params"]
    dates = query_variables(params, context.get("dag_run"))
    properties = workflow_properties(params)
    workflow_name = params.get("workflow_name") or PIPELINE["dag_id"]
    protocol = PIPELINE["protocol"]
    if step["type"] == "sync":  # the executor's own request body, straight to FUNCTION_NAME
        body = {"workflow_properties": {**properties, **step["step_properties"]}, "workflow_name": workflow_name,
                "job_name": step["job_name"],
                "query_variables": {"start_date": f"'{dates['start_date']}'", "end_date": f"'{dates['end_date']}'"}}
        status, text = post(step["function_url"], body, step["call_timeout_seconds"])
        problem = _sync_problem(step["executor"], status, text)
        if problem:
            raise RuntimeError(f"step {step['job_name']}: {problem}")
        return text.strip()
    body = {"workflow_name": workflow_name, "execution_id": context["run_id"], "job_name": step["job_name"],
            "function_url_to_call": step["function_url"], "query_variables": dates,
            "workflow_properties": properties, "step_properties": step["step_properties"]}
    status, job_id = post(PIPELINE["intermediate_url"], {"call_type": "get_id", **body}, step["call_timeout_seconds"])
    if status != 200 or not job_id.startswith(tuple(protocol["job_id_prefixes"])):
        _fail(step, "start", status, job_id)
    deadline = time.monotonic() + step["timeout_seconds"]
    status_body = {"call_type": "get_status", **body, "function_url_to_call": step["status_url"], "async_job_id": job_id}
    while True:
        time.sleep(step["wait_seconds"])
        status, text = post(PIPELINE["intermediate_url"], status_body, step["call_timeout_seconds"])
        if status == 200 and text == protocol["success"]:
            return job_id
        if status != 200 or text != protocol["running"]:
            _fail(step, f"job {job_id}", status, text)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"step {step['job_name']}: job {job_id} still running after {step['timeout_seconds']} s")


# ---- executor catalogue: the operators of each executor this pipeline uses -------------------
BUILDERS: dict = {}  #@@EXECUTOR_BUILDERS@@


# ---- the DAG ------------------------------------------------------------------------------------
#
# Built so that its cost stays linear in its size: a task group per level and per thread only (a
# new group costs Airflow time that grows with the DAG), a step's tasks named `<step>.<task>`
# inside its thread's group, and dependencies recorded by `depend`.

def depend(task, upstream):
    """Make `task` wait for each task of `upstream` (tasks of this DAG): what `set_upstream`
    records, without its cost. Airflow's `set_upstream` (`_set_relatives`, in Airflow 2's
    models/taskmixin.py and Airflow 3's sdk/definitions/_internal/node.py) puts the DAG of each
    task it names into a set, so it hashes the DAG each time, and a DAG's hash covers all its
    task ids: a DAG of n tasks with n dependencies costs about n^2, half of the import of a
    10,000-step DAG. For two operators already in the same DAG, what remains of it is these
    two updates, the same in both versions."""
    for before in upstream:
        before.downstream_task_ids.add(task.task_id)
        task.upstream_task_ids.add(before.task_id)


def _maker(step, prefix):
    def make(operator, task_id, **kwargs):
        return operator(task_id=prefix + task_id, retries=step["retries"],
                        execution_timeout=timedelta(seconds=step["timeout_seconds"]), **kwargs)

    return make


def build_step(step, thread_id):
    """The step's tasks in run order, and its `continue` gate for a CONTINUE_IF_FAIL step.

    In functions mode a step is one task, `<step>`; otherwise its tasks are `<step>.<task>`
    (`<step>.job_params` first when its executor reads a job file), chained in that order.
    """
    if PIPELINE["mode"] == "functions" and step["type"] != "workflows":
        task = PythonOperator(task_id=step["task_id"], python_callable=functools.partial(call_executor, step),
                              retries=step["retries"], execution_timeout=timedelta(seconds=step["timeout_seconds"] + 600))
        return [task], _gate(step)
    STEPS[thread_id + "." + step["task_id"]] = step
    tasks = []
    if step["executor"] in PIPELINE["job_formats"]:
        tasks.append(PythonOperator(task_id=step["task_id"] + "." + PARAMS_TASK,
                                    python_callable=functools.partial(load_job_params, step), retries=step["retries"]))
    tasks += BUILDERS[step["executor"]](step, _maker(step, step["task_id"] + "."))
    for before, after in zip(tasks, tasks[1:]):
        depend(after, [before])
    return tasks, _gate(step)


def _gate(step):
    # all_done: runs once the step ended, whether it succeeded or failed.
    if not step["continue_if_fail"]:
        return None
    return EmptyOperator(task_id=step["task_id"] + ".continue", trigger_rule="all_done")


def build_thread(steps, thread_id, entry):
    """Chain a thread's steps after the `entry` tasks; return (its first task, what a successor
    must wait for).

    A step starts when every task it waits for succeeded. After a CONTINUE_IF_FAIL step, that
    is the step's `continue` gate (the step ended, however) plus the witness that the thread
    was still going when the step began (the non-gate task it waited for), so that a thread
    or pipeline stopped earlier never resumes. The caller makes the first step wait for
    `entry` (for every thread of the level at once).
    """
    first, gates = None, set()
    for step in steps:
        tasks, gate = build_step(step, thread_id)
        if first is None:
            first = tasks[0]
        else:
            depend(tasks[0], entry)
        if gate is None:
            entry = [tasks[-1]]
            continue
        depend(gate, [tasks[-1]])
        entry = [gate] + [task for task in entry if task.task_id not in gates]
        gates.add(gate.task_id)
    return first, entry


def run_params():
    """What a run may be given; a scheduled pipeline's runs get its workflow_properties."""
    schedule = PIPELINE["schedule"] or {}
    return {"workflow_name": "", "start_date": "", "end_date": "",
            "workflow_properties": schedule.get("workflow_properties") or {}}


def build_dag():
    """The DAG. Its params, and each task's copy of them, are given once the tasks exist: each
    operator's constructor deep-copies the DAG's params twice (`get_merged_defaults`, once per
    constructor of its class chain), a fifth of a large DAG's import, where one new ParamsDict
    per task costs a tenth of that. A run sees the same params (`process_params` merges the
    DAG's and the task's, Airflow 2 and 3; a test compares)."""
    schedule = PIPELINE["schedule"] or {}
    with DAG(
        dag_id=PIPELINE["dag_id"],
        schedule=schedule.get("cron"),
        # the DAG's time zone is its start date's: the cron is read in it (pendulum, as Airflow wants)
        start_date=pendulum.datetime(2024, 1, 1, tz=schedule.get("time_zone", "UTC")),
        is_paused_upon_creation=schedule.get("paused"),
        # deadline_minutes: the scheduler fails a run still going after it (its failure callback tells)
        dagrun_timeout=timedelta(minutes=PIPELINE["deadline_minutes"]) if PIPELINE["deadline_minutes"] else None,
        catchup=False,
        tags=PIPELINE["tags"],
        doc_md=PIPELINE["doc_md"],
        render_template_as_native_obj=True,
        user_defined_macros=MACROS,
        default_args={"owner": "levelflow"},
        **callbacks(),
    ) as dag:
        before = None  # the previous level's `done`
        for level in PIPELINE["levels"]:
            with TaskGroup(level["group_id"]):
                firsts: list = []
                ends: dict = {}  # task id -> a task the next level waits for
                for thread in level["threads"]:
                    with TaskGroup(thread["group_id"]) as group:
                        first, end = build_thread(thread["steps"], group.group_id, [before] if before else [])
                    firsts.append(first)
                    ends.update((task.task_id, task) for task in end)
                done = EmptyOperator(task_id="done")  # all threads ended well: the next level may start
                depend(done, ends.values())
            if before is not None:
                for first in firsts:
                    depend(first, [before])
            before = done
    params = type(dag.params)  # this Airflow version's ParamsDict
    given = run_params()
    dag.params = params(given)
    for task in dag.tasks:  # each task its own, as the constructor's copy would be (a run sets their values)
        task.params = params(given)
    return dag
