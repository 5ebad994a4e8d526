"""Run generated Cloud Workflows in the `workflows-emulator` package, in-process, against the
stub executor server over real HTTP.

The emulator interprets the YAML itself (steps, expressions, parallel branches, try/retry,
subworkflows, http.post through `requests`). `patched_emulator()` adds only what it lacks:

1. OIDC: the emulator raises NotImplementedError for `auth: {type: OIDC}`. The request is sent
   without a token instead (the stub ignores authentication); the OIDC request is counted.
2. Connection failures: `requests` raises its own ConnectionError/Timeout, which the emulator
   lets escape every `try`. They become the built-in ConnectionError/TimeoutError, which the
   emulator turns into Workflows errors tagged "ConnectionError"/"TimeoutError", as the
   service does.
3. The executions connector is not emulated. `...executions.run` runs the named workflow from
   the generated files in this same emulator and returns its result; a failed child raises an
   error tagged "ExecutionError", as the real helper does. `...executions.create` runs the
   child at once on its own virtual clock and answers the execution (`state: ACTIVE`);
   `...executions.get` answers ACTIVE until the caller's virtual time reaches the child's end,
   then SUCCEEDED with `result` or FAILED with `error.payload`; `...executions.cancel` marks an
   active execution CANCELLED (400 otherwise), as the Workflow Executions REST reference says.
4. Time: `sys.now`, `sys.sleep` and the retry back-off wait use a virtual clock, so a poll
   every 30 s costs nothing. The clock lives in a context variable: each parallel branch (the
   emulator runs branches in threads with a copy of the parent's context) keeps its own time,
   and when a parallel step ends its parent's clock moves on to the latest branch's end, as real
   time has by then on the service (a workflow reading sys.now() after it sees that).
5. Expressions (`_run_code`): the emulator renders a map returned by an expression through
   Python's repr and parses that as YAML, which mangles strings holding quotes or backslashes;
   results come back as plain data instead, which it then renders through JSON. And, for speed
   only: the emulator deep-copies and converts the whole context (including the source of every
   subworkflow) for each expression; `_LazyContext` copies just the variables the code reads.
6. `get_type`: the emulator looks the type up by exact class and so fails on its own map class
   (ContextDict, a dict subclass); maps and lists of any class answer "map" and "list", as the
   service's `get_type` does for every map and list (Workflows standard library reference).
7. An `assign` whose expression raises (e.g. `json.decode` of text that is not JSON) leaves the
   emulator's global assignment lock held, so the `except` block's own `assign` waits forever;
   the lock is released when the assignment fails, and the error goes on to `except`, as on
   the service.

8. Google APIs (only with `patched_emulator(google=fake)` / `run(..., google=fake)`, a
   fake_google_api.FakeGoogle): every `http.*` request to https://*.googleapis.com/... and every
   `googleapis.*` connector call (but the executions ones above) goes to the fake over loopback,
   with a dummy OAuth2 token and no credential look-up; connectors follow the documented
   retries, long-running-operation polling and `connector_params` (workflows_connectors.py says
   what is emulated and from which pages). Without a fake, such calls go where the emulator
   sends them, as before.
9. `text.url_encode`, which the emulator lacks: percent-encoding of every character but the
   unreserved ones of RFC 3986 (letters, digits, "-", "_", ".", "~"). The Workflows standard
   library reference lists text.url_encode among the text functions, and the Cloud Storage
   connector's documentation has object names passed through it to make them path-safe, so "/"
   becomes %2F (the Cloud Storage JSON API wants an object name as one path segment).
10. A value that is one whole expression (`${...}`) is the expression's value, of its type, as
    on the service; the emulator writes it out as text and parses that back as YAML, which turns
    null into the string "None" (and bytes into their repr).

Stricter than the emulator, as the service is: variables created inside an `except` block
(its `as` variable included) end with the block (Workflows syntax reference, "Variables" and
"Catching errors"), so a workflow that reads one after the block fails its run here, as it
would on Google Cloud. (The emulator already drops variables created inside a `for` loop.)
Every workflow loaded is also checked by `workflow_rules.check`.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import importlib.resources
import json
import logging
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

import requests
import yaml
from jsonschema import Draft7Validator

import workflow_rules
import workflows_connectors
import workflows_emulator.lib.http_utils as http_utils
import workflows_emulator.lib.sys_utils as sys_utils
import workflows_emulator.lib.text_utils as text_utils
import workflows_emulator.main as emulator
import workflows_emulator.render as render
from workflows_emulator.utils import ContextDict, WorkflowError

RUN_WORKFLOW = "googleapis.workflowexecutions.v1.projects.locations.workflows.executions.run"
EXECUTIONS = "googleapis.workflowexecutions.v1.projects.locations.workflows.executions"
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the virtual clock's start
_NOW = contextvars.ContextVar("_levelflow_virtual_now", default=EPOCH)


def virtual_now() -> float:
    return _NOW.get()


def _virtual_sleep(seconds) -> None:
    _NOW.set(_NOW.get() + float(seconds))


_BRANCH_ENDS: contextvars.ContextVar[list] = contextvars.ContextVar("_levelflow_branch_ends")


def _timed_parallel(original):
    """A parallel step's parent goes on at the latest virtual time its branches reached."""
    def execute_task_config(self, *args, **kwargs):
        started, ends = _NOW.get(), []
        token = _BRANCH_ENDS.set(ends)  # set before the branches copy the context: they share the list
        try:
            return original(self, *args, **kwargs)
        finally:
            _BRANCH_ENDS.reset(token)
            _NOW.set(max([started, *ends]))
    return execute_task_config


def _run_branch(thread_context, fn, *args, **kwargs):
    """emulator.run_with_context, noting the branch's virtual time when it ends."""
    try:
        return thread_context.run(fn, *args, **kwargs)
    finally:
        ends = thread_context.get(_BRANCH_ENDS)
        if ends is not None:
            ends.append(thread_context.get(_NOW, EPOCH))


def workflow_schema() -> dict:
    """The Cloud Workflows JSON Schema (from SchemaStore) shipped inside the emulator."""
    text = (importlib.resources.files("workflows_emulator") / "workflow-schema.json").read_text()
    return json.loads(text)


def schema_errors(text: str) -> list[str]:
    validator = Draft7Validator(workflow_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]


class _LazyContext(ContextDict):
    """The emulator's evaluation context, copying a variable only when the code reads it."""

    def __init__(self, source: dict):
        super().__init__()
        object.__setattr__(self, "_source", source)
        for name, value in render.STANDARD_LIBRARY.items():  # the library wins over variables, as in the emulator
            dict.__setitem__(self, name, value)

    def __getitem__(self, name):
        for var, value in contextvars.copy_context().items():  # parallel-for variables, as ContextDict does
            if var.name == name:
                return value
        if not dict.__contains__(self, name) and name in self._source:
            self[name] = ContextDict._hook(copy.deepcopy(self._source[name]))  # maps read by attribute, as in the emulator
        return super().__getitem__(name)


def _data(value):
    """Emulator maps (addict) as plain dicts and lists, as the service's values are."""
    if isinstance(value, dict):
        return {key: _data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_data(item) for item in value]
    return value


def _get_type(value) -> str:
    for kind, word in ((bool, "bool"), (dict, "map"), (list, "list"), (str, "string"), (bytes, "bytes"),
                       (int, "int"), (float, "double"), (type(None), "null")):
        if isinstance(value, kind):
            return word
    raise ValueError(f"Unknown type {type(value)}")


def _run_code(code: str, context: dict):
    if code in render.FORBIDDEN_KEYWORDS:
        raise ValueError(f"Forbidden keyword: {code}")
    scope = _LazyContext(context)
    try:
        return _data(eval(code, scope))
    except AttributeError as err:
        raise SyntaxError(f"Error evaluating code: `{code}`. The variable {err.args[0]} is probably not defined") from err


def _releasing_assign(original):
    def execute(self):
        try:
            return original(self)
        except BaseException:
            if emulator.LOCK.locked():  # taken by this very step before its expression raised
                emulator.LOCK.release()
            raise
    return execute


class _ExceptSteps(list):
    """The steps of an `except` block, marked so that the variables they create end with them."""
    error_variable: str = ""


def _mark_except_blocks(value) -> None:
    if isinstance(value, dict):
        handler = value.get("except")
        if isinstance(handler, dict) and isinstance(handler.get("steps"), list):
            steps = _ExceptSteps(handler["steps"])
            steps.error_variable = handler.get("as", "")
            handler["steps"] = steps
        for item in value.values():
            _mark_except_blocks(item)
    elif isinstance(value, list):
        for item in value:
            _mark_except_blocks(item)


def _scoped_steps(original):
    def execute_steps_list(steps, context, next_step=None):
        if not isinstance(steps, _ExceptSteps):
            return original(steps, context, next_step)
        before = set(context) - {steps.error_variable}
        context, next_step, ret_value = original(steps, context, next_step)
        for name in [name for name in context if name not in before]:
            del context[name]
        return context, next_step, ret_value
    return execute_steps_list


def _assign_var(key: str, value, context: dict):
    if key in render.FORBIDDEN_KEYWORDS:
        raise ValueError(f"Forbidden keyword: {key}")
    scope = _LazyContext(context)
    scope["__value"] = value
    exec(f"{key} = __value", scope)
    root = re.search(r"^[^\[\.]+", key).group(0)
    return root, scope[root]


@dataclass
class Emulator:
    workflows: dict[str, dict] = field(default_factory=dict)  # workflow id -> parsed source
    oidc_requests: int = 0
    executions: dict[str, dict] = field(default_factory=dict)  # executions.create: name -> record
    google: Optional[object] = None  # a FakeGoogle receiving the Google API calls, if any

    def load(self, files: dict[str, str]) -> None:
        problems = workflow_rules.check(files)
        assert not problems, "generated workflows break documented rules:\n" + "\n".join(problems)
        for name, text in files.items():
            doc = yaml.safe_load(text)
            _mark_except_blocks(doc)
            self.workflows[name.removesuffix(".yaml")] = doc

    def execute(self, workflow_id: str, args) -> object:
        """Run one workflow; returns its result or raises WorkflowError."""
        if workflow_id not in self.workflows:
            raise WorkflowError(message=f"workflow {workflow_id!r} not found", code=404, tags=["HttpError"])
        return emulator.execute_workflow(copy.deepcopy(self.workflows[workflow_id]), {"args": args})

    # -- patches --------------------------------------------------------------------------

    def _routing(self) -> workflows_connectors.GoogleRouting:
        return workflows_connectors.GoogleRouting(self.google, virtual_now, _virtual_sleep)

    def _request(self, original):
        def request(method, url, auth=None, **kwargs):
            if self.google is not None and workflows_connectors.is_google(url):
                return self._routing().http(method, url, auth=auth, **kwargs)
            if auth and auth.get("type") == "OIDC":
                self.oidc_requests += 1
                auth = None
            try:
                return original(method, url, auth=auth, **kwargs)
            except requests.Timeout as exc:
                raise TimeoutError(f"request to {url} timed out: {exc}") from None
            except requests.ConnectionError as exc:
                raise ConnectionError(f"connection to {url} failed: {exc}") from None
        return request

    def _create_execution(self, args: dict) -> dict:
        """executions.create: the child runs at once, on a clock of its own; the parent sees it
        ACTIVE until the parent's virtual time reaches the child's end (executions.get)."""
        parent = args["parent"]
        workflow_id = parent.rsplit("/", 1)[-1]
        if workflow_id not in self.workflows:  # the API answers 404 before any execution starts
            raise WorkflowError(message=f"workflow {workflow_id!r} not found", code=404, tags=["HttpError"])
        argument = json.loads(args["body"]["argument"]) if args.get("body", {}).get("argument") else None
        started = _NOW.get()
        try:
            result, error = self.execute(workflow_id, argument), None
        except WorkflowError as exc:
            result, error = None, exc.payload.to_dict() if hasattr(exc.payload, "to_dict") else exc.payload
        ended = _NOW.get()
        _NOW.set(started)
        name = f"{parent}/executions/e{len(self.executions) + 1}"
        self.executions[name] = {"workflow": workflow_id, "argument": argument, "ends": ended, "result": result,
                                 "error": error, "cancelled": False}
        return {"name": name, "state": "ACTIVE", "argument": args["body"]["argument"]}

    def _execution(self, name: str) -> dict:
        if name not in self.executions:
            raise WorkflowError(message=f"execution {name!r} not found", code=404, tags=["HttpError"])
        record = self.executions[name]
        view = {"name": name, "state": "ACTIVE"}
        if record["cancelled"]:
            view["state"] = "CANCELLED"
        elif _NOW.get() >= record["ends"]:
            view["state"] = "FAILED" if record["error"] is not None else "SUCCEEDED"
            if record["error"] is not None:
                view["error"] = {"payload": json.dumps(_data(record["error"])), "context": "failed"}
            else:
                view["result"] = json.dumps(_data(record["result"]))
        return view

    def _cancel(self, name: str) -> dict:
        view = self._execution(name)
        if view["state"] != "ACTIVE":
            raise WorkflowError(message=f"execution {name} is {view['state']}, not active", code=400, tags=["HttpError"])
        self.executions[name]["cancelled"] = True
        return self._execution(name)

    def _connector(self, original):
        def execute_connector(rendered_step):
            call = rendered_step["call"]
            if call == EXECUTIONS + ".create":
                return self._create_execution(rendered_step["args"])
            if call == EXECUTIONS + ".get":
                return self._execution(rendered_step["args"]["name"])
            if call == EXECUTIONS + ".cancel":
                return self._cancel(rendered_step["args"]["name"])
            if call != RUN_WORKFLOW and self.google is not None:
                return self._routing().connector(call, rendered_step.get("args"))
            if call != RUN_WORKFLOW:
                return original(rendered_step)
            args = rendered_step["args"]
            if args["workflow_id"] not in self.workflows:  # the API answers 404 before any execution starts
                raise WorkflowError(message=f"workflow {args['workflow_id']!r} not found", code=404, tags=["HttpError"])
            try:
                return self.execute(args["workflow_id"], args.get("argument"))
            except WorkflowError as exc:
                payload = exc.payload.to_dict() if hasattr(exc.payload, "to_dict") else exc.payload
                raise WorkflowError(message=f"Execution of {args['workflow_id']} failed", tags=["ExecutionError"], error=payload) from None
        return staticmethod(execute_connector)


def _whole_expression(original):
    def render_str(value, context):
        match = render.CODE_PATTERN.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            return original(value, context)
        return render.run_code(match.group(1), context)
    return render_str


def _url_encode(source: str) -> str:
    return urllib.parse.quote(source, safe="-_.~")


def _no_credentials(*args, **kwargs):
    raise AssertionError("a workflow run against the Google fake asked for real Google credentials")


@contextlib.contextmanager
def patched_emulator(execution_id: str = "test-execution-1", google=None, now: float = EPOCH):
    """An Emulator with the patches applied (undone on exit); Google API calls go to `google`
    (a running FakeGoogle) when one is given; the virtual clock starts at `now` (epoch seconds)."""
    state = Emulator(google=google)
    saved = [(http_utils, "request", http_utils.request), (sys_utils, "now", sys_utils.now), (sys_utils, "sleep", sys_utils.sleep),
             (emulator, "sleep", emulator.sleep), (emulator.StepCall, "execute_connector", emulator.StepCall.__dict__["execute_connector"]),
             (render, "run_code", render.run_code), (render, "assign_var", render.assign_var), (emulator, "run_code", emulator.run_code),
             (emulator, "assign_var", emulator.assign_var), (render.STANDARD_LIBRARY, "get_type", render.STANDARD_LIBRARY["get_type"]),
             (emulator.StepAssign, "execute", emulator.StepAssign.execute),
             (emulator, "execute_steps_list", emulator.execute_steps_list), (http_utils, "default", http_utils.default),
             (emulator, "run_with_context", emulator.run_with_context),
             (emulator.StepParallel, "execute_task_config", emulator.StepParallel.execute_task_config),
             (text_utils, "url_encode", getattr(text_utils, "url_encode", None)), (render, "render_str", render.render_str)]
    previous_env = os.environ.get("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID")
    levels = {name: logging.getLogger(name).level for name in ("", "workflows")}
    http_utils.request = state._request(http_utils.request)
    if google is not None:  # with a fake, nothing may ask google.auth for real credentials
        http_utils.default = _no_credentials
    text_utils.url_encode = _url_encode
    render.render_str = _whole_expression(render.render_str)
    sys_utils.now = virtual_now
    sys_utils.sleep = _virtual_sleep
    emulator.sleep = _virtual_sleep
    emulator.StepCall.execute_connector = state._connector(emulator.StepCall.execute_connector)
    render.run_code = emulator.run_code = _run_code
    render.assign_var = emulator.assign_var = _assign_var
    render.STANDARD_LIBRARY["get_type"] = _get_type
    emulator.StepAssign.execute = _releasing_assign(emulator.StepAssign.execute)
    emulator.execute_steps_list = _scoped_steps(emulator.execute_steps_list)
    emulator.run_with_context = _run_branch
    emulator.StepParallel.execute_task_config = _timed_parallel(emulator.StepParallel.execute_task_config)
    os.environ["GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID"] = execution_id
    for name in levels:  # the emulator logs every step and dumps its whole context on errors
        logging.getLogger(name).setLevel(logging.CRITICAL)
    token = _NOW.set(now)
    try:
        yield state
    finally:
        _NOW.reset(token)
        for owner, attribute, value in saved:
            if isinstance(owner, dict):
                owner[attribute] = value
            else:
                setattr(owner, attribute, value)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if previous_env is None:
            os.environ.pop("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID", None)
        else:
            os.environ["GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID"] = previous_env


@dataclass
class Outcome:
    """How an execution ended: its returned report, or the error it raised."""
    result: Optional[dict]
    error: Optional[dict]
    executions: dict = field(default_factory=dict)  # child executions started with executions.create

    @property
    def report(self) -> dict:
        return self.result if self.result is not None else self.error

    def statuses(self) -> dict[str, str]:
        return {step["job_id"]: step["status"] for step in self.report["steps"]}


def run(files: dict[str, str], args=None, google=None, now: float = EPOCH) -> Outcome:
    """Execute the main (first) generated file, with the others deployable beside it; Google API
    calls go to `google` (a running FakeGoogle) when one is given; the execution starts at `now`."""
    with patched_emulator(google=google, now=now) as state:
        state.load(files)
        main = next(iter(files)).removesuffix(".yaml")
        try:
            return Outcome(_plain(state.execute(main, args)), None, state.executions)
        except WorkflowError as exc:
            return Outcome(None, _plain(exc.payload), state.executions)


def _plain(value):
    """Emulator values (addict maps) as plain JSON data."""
    return json.loads(json.dumps(value))
