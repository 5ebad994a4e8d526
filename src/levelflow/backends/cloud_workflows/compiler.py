"""Cloud Workflows backend: compile a Plan into Google Cloud Workflows YAML.

Shape of the output (every file is a complete workflow):

- `main` first assigns the pipeline as *data* (`pipeline`: levels -> threads -> step
  descriptors), the settings (URLs, project, region) and the run context (`ctx`, built from
  the optional execution arguments). Nothing from the definition is ever placed inside a
  `${...}` expression: expressions only name variables and positions.
- Then one block per level, in order: a `parallel` step whose branches each run one thread
  through the shared `run_thread` subworkflow (a single thread runs without `parallel`).
  Levels of more than 10 threads are split into groups of at most 10: the level's branches
  call a generated `level_<L>_group_<G>` subworkflow holding the group's own `parallel`
  step (nesting depth 2). Each thread's result is kept in the shared map `done`, keyed
  "<level position>.<thread position>". After each level but the last, `level_failed`
  looks at that level's threads and jumps to the report when one of them failed.
- `finish` lists every step with its status and the workflow returns that report, or
  raises it (a map with `message`) when a step failed.
- The shared subworkflows (the runtime) do the work, so a further step costs only its data.
  They are Cloud Workflows source, runtime.yaml beside this module, which says what each does:
  `run_thread` (order, NEXT, stop on failure), `run_step` (type dispatch, STEP_PROPERTIES,
  RETRIES, CONTINUE_IF_FAIL), `run_async_step` (start, poll every WAIT_TIME_SECONDS, time-out
  measured with sys.now()), `run_sync_step`, `run_workflow_step` (executions connector),
  `call_executor` (the intermediate's request body, docs/executor-protocol.md), `post` (OIDC
  http.post, retried with back-off on faults `transient` accepts), `shown`, `level_failed`,
  `finish`, `not_started`. Per pipeline the compiler keeps what its step types need and fills
  `post` with one branch per distinct call time-out (OIDC only on https).

A pipeline whose source would exceed 128 KB (or whose variables are estimated above 512 KB)
is split: `<name>-part-N.yaml` files each hold whole levels, and `<name>.yaml` runs them in
order through the executions connector, passing the same arguments; a part that failed makes
the later ones report their steps as not_started without running them. Every limit of
docs/platform-limits.md is checked on the generated data before anything is returned; a
definition that cannot fit raises LevelflowError.

The YAML is written by emit.py (PyYAML's exact bytes, without its slow representer). Each
level's data and blocks are built once per generation (`_Settings.once`) and their text reused
by every candidate part the splitter measures, so a pipeline's text is written about once.
"""
from __future__ import annotations

import collections
import copy
import functools
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ... import protocol
from ...errors import LevelflowError, LevelflowWarning, Problem
from ...executors import CATALOGUE, DATAFLOW_FLEX_TEMPLATE, dataflow_job_name
from ...native import native_problems
from ...model import Notify, Schedule, unix_cron
from ...plan import Plan, PlanLevel, PlanStep
from .. import GenerateOptions
from . import ENGINE
from .emit import Emitter, Scalars
from .emit import FlowMap as _FlowMap  # a mapping written on one line (step descriptors), to keep the source compact
from .emit import dumps as _fast_dumps

# The platform limits, as the engine declares them (docs/platform-limits.md)
MAX_SOURCE_BYTES = ENGINE.limit("source_bytes")
MAX_BRANCHES = ENGINE.limit("branches")
MAX_PARALLEL_DEPTH = ENGINE.limit("parallel_depth")
MAX_SWITCH_CONDITIONS = ENGINE.limit("switch_conditions")
MAX_ASSIGNMENTS = ENGINE.limit("assignments")
MAX_CALL_DEPTH = ENGINE.limit("call_depth")
MAX_HTTP_TIMEOUT = ENGINE.limit("http_timeout")
MAX_CONNECTOR_TIMEOUT = ENGINE.limit("execution_seconds")  # a connector waits at most as long as an execution lasts
MAX_EXECUTED_STEPS = ENGINE.limit("executed_steps")
MAX_VARIABLE_BYTES = ENGINE.limit("variable_bytes")
RECORD_BYTES = 250  # one step's entry in the report, as kept by `done`, `finish` and its result
ERROR_MESSAGE_CHARS = 120  # a kept error's message and body are cut to these lengths, marked as cut
ERROR_BODY_CHARS = 200
CUT_MARK_BYTES = 40  # "... [cut: 123456 characters in all]"
ERROR_BYTES = ERROR_MESSAGE_CHARS + ERROR_BODY_CHARS + 2 * CUT_MARK_BYTES + 60  # with its keys and code
EXECUTIONS = "googleapis.workflowexecutions.v1.projects.locations.workflows.executions"  # .create, .get, .cancel in runtime.yaml
RUN_WORKFLOW = EXECUTIONS + ".run"
PART_ARG = "levelflow_part"  # argument the parent passes to its part workflows: "run" or "skip"
DEADLINE_ARG = "levelflow_deadline"  # and the run's deadline (epoch seconds), when the pipeline has one

# Workflow steps executed per status poll (in runtime.yaml: sleep, call_executor with its 5
# steps, post with its try and switch branch, the decision) and per step outside polling; used
# to estimate the worst case against the 100,000 executed-steps limit.
STEPS_PER_POLL = 14
STEPS_PER_CALL = 30


def generate_workflows(plan: Plan) -> dict[str, str]:
    return generate_files(plan, GenerateOptions())


def generate_files(plan: Plan, options: GenerateOptions) -> dict[str, str]:
    """File name -> YAML text; the main workflow first, then its parts if it was split."""
    if plan.params is None:
        raise LevelflowError([Problem(_where(plan), "platform parameters are needed to generate Cloud Workflows (--params)")])
    settings = _settings(plan, options.provenance, options)
    if settings.native and (problems := native_problems(plan, options.jobs_dir, settings.jobs)):
        raise LevelflowError(problems)
    try:
        whole = _workflow_doc(plan, plan.levels, settings, part=False)
    except _LimitError as exc:
        raise _problem(plan, str(exc), exc.path) from None
    _check_doc(plan, whole)
    text = _with_header(settings, render(whole, writer=settings.writer), plan, plan.levels)
    size = len(text.encode())
    if size <= MAX_SOURCE_BYTES and _variable_bytes(plan, plan.levels, settings) <= MAX_VARIABLE_BYTES:
        _check_steps_budget(plan, plan.levels)
        return {f"{plan.name}.yaml": text}
    return _split(plan, settings, size)


# ---------------------------------------------------------------------------------------------
# Serialization


# Plain scalars that YAML 1.2 parsers read as numbers although PyYAML (YAML 1.1) writes them
# unquoted, such as "1e5" or "0x1F": quoted, so that such strings stay strings everywhere.
_YAML12_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+"
                            r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


def _represent_str(dumper, text: str):
    style = "'" if _YAML12_NUMBER.fullmatch(text) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _represent_flow_map(dumper, data: dict):
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _dumper(base):
    dumper = type("Dumper", (base,), {})
    dumper.add_representer(str, _represent_str)
    dumper.add_representer(_FlowMap, _represent_flow_map)
    return dumper


@functools.cache
def _dumpers() -> dict[str, Any]:
    """PyYAML's dumpers, made when first needed: `validate` checks a plan without writing YAML,
    and importing PyYAML is a third of its start-up. libyaml's emitter writes the same bytes as
    PyYAML's (a test checks it), only faster."""
    import yaml

    dumpers = {"python": _dumper(yaml.SafeDumper)}
    if getattr(yaml, "CSafeDumper", None):
        dumpers["libyaml"] = _dumper(yaml.CSafeDumper)
    return dumpers


PYYAML = "pyyaml"  # render's name for PyYAML's fastest emitter here: libyaml's when it is installed


def _pyyaml(doc, emitter: str = PYYAML) -> str:
    """`doc` written by PyYAML: its emitter `emitter` ("libyaml", "python" or PYYAML)."""
    import yaml

    dumpers = _dumpers()
    if emitter == PYYAML:
        emitter = "libyaml" if "libyaml" in dumpers else "python"
    dumper = dumpers[emitter]
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 20)


def render(doc: dict, emitter: str = "fast", writer: Optional[Emitter] = None) -> str:
    """The YAML text of a workflow. "fast" writes PyYAML's exact bytes without its representer
    (emit.py), reusing the texts `writer` already wrote; "libyaml" and "python" are PyYAML's
    emitters, PYYAML the faster of them here."""
    if emitter == "fast":
        return _fast_dumps(doc, _pyyaml, writer or Emitter(Scalars(_pyyaml, _YAML12_NUMBER)))
    return _pyyaml(doc, emitter)


def _with_header(settings: "_Settings", text: str, plan: Plan, levels: Iterable[PlanLevel], note: str = "") -> str:
    steps = sum(len(t.steps) for level in levels for t in level.threads)
    header = f"# Generated by levelflow from pipeline {plan.name}: {steps} steps. Do not edit; regenerate.\n"
    origin = f"# {settings.provenance}\n" if settings.provenance else ""
    return origin + header + _comment(plan.description or "") + (f"# {note}\n" if note else "") + text


DESCRIPTION_CHARS = 2000  # of a description in each file's header: it never decides how a pipeline is split


def _comment(text: str) -> str:
    """`text` (the definition's description) as YAML comment lines, shown with the workflow's
    source, cut to DESCRIPTION_CHARS: a YAML stream takes no control character, and some of them
    end a line, so every unprintable character becomes a space."""
    if len(text) > DESCRIPTION_CHARS:
        text = text[:DESCRIPTION_CHARS] + f"... [cut: {len(text):,} characters in all]"
    lines = ("".join(c if c.isprintable() else " " for c in line).rstrip() for line in text.splitlines())
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def _expr(text: str) -> str:
    return "${" + text + "}"


# ---------------------------------------------------------------------------------------------
# Data: the pipeline, step descriptors, settings


@dataclass(frozen=True)
class _Settings:
    intermediate: str
    functions: str  # base URL of the functions, ending with "/"
    project: str
    region: str
    default_props: dict
    provenance: str  # the files' first comment line (levelflow.provenance)
    native: bool = False  # native step mode: async steps call Google's APIs (runtime.yaml, run_native_step)
    jobs: Optional[dict] = None  # native mode with --jobs-dir: the job files embedded, by <executor>/<JOB_NAME>.json
    notify: Optional[Notify] = None  # publish the report when the run ends so (runtime.yaml, publish_report)
    deadline: bool = False  # the pipeline has deadline_minutes: polling loops also end at ctx.deadline
    # One generation's memory: the data and blocks of each level, built once and reused by every
    # candidate part (so the writer reuses their texts), and that writer.
    memo: dict = field(default_factory=dict, compare=False, repr=False)
    writer: Emitter = field(default_factory=lambda: Emitter(Scalars(_pyyaml, _YAML12_NUMBER)), compare=False, repr=False)

    def once(self, key: tuple, build, *args):
        """build(*args), the first time `key` is asked for in this generation."""
        if key not in self.memo:
            self.memo[key] = build(*args)
        return self.memo[key]

    @property
    def https(self) -> bool:
        """OIDC authentication only on https; plain http is only allowed to a loopback double."""
        return self.functions.startswith("https://")


_URL = re.compile(r"^https?://[^\s${}\"'\\]+$")


def _settings(plan: Plan, provenance: str = "", options: Optional[GenerateOptions] = None) -> _Settings:
    params = plan.platform()
    intermediate = params.intermediate_url
    functions = params.function_url("")
    for url in (intermediate, functions):
        if not _URL.match(url):
            raise LevelflowError([Problem(_where(plan), "pFunctionsBaseUrl must be an http(s) URL without spaces, quotes or '${', "
                                                        f"got {url!r}")])
        if url.startswith("http://") and not protocol.is_loopback(url):
            raise LevelflowError([Problem(_where(plan), f"pFunctionsBaseUrl {url!r}: plain http is only for a loopback address "
                                                        "(a local double); Cloud Workflows authenticates calls (OIDC) on https only")])
    native = options is not None and options.step_mode == "native"
    return _Settings(intermediate, functions, params.pProjectID, params.pRegion,
                     {"jobs_definitions_bucket": params.pJobsDefinitionsBucket}, provenance, native,
                     {} if native and options is not None and options.jobs_dir is not None else None, plan.notify,
                     plan.deadline_minutes is not None)


def _number(value: float):
    return int(value) if float(value).is_integer() else value


def _limit_seconds(step: PlanStep):
    return _number(step.timeout_minutes * 60)


def _connector_timeout(step: PlanStep) -> int:
    return min(MAX_CONNECTOR_TIMEOUT, max(1, math.ceil(step.timeout_minutes * 60)))


def _is_inert(value) -> bool:
    """True when no string inside could be read as an expression by Workflows."""
    if isinstance(value, str):
        return "${" not in value
    if isinstance(value, dict):
        return all(_is_inert(k) and _is_inert(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_inert(v) for v in value)
    return True


def _inert_json(value) -> str:
    """JSON text with every '$' written as the JSON escape \\u0024: no '${' can remain, and
    json.decode gives back exactly the original data."""
    return json.dumps(value, ensure_ascii=False, sort_keys=False).replace("$", "\\u0024")


def _step_data(step: PlanStep, settings: _Settings) -> _FlowMap:
    data = _FlowMap(id=step.job_id, job=step.job_name, type=_step_type(step, settings))
    if data["type"] == "native":
        _native_step_data(data, step, settings)
    elif step.type == "workflows":
        data["workflow"] = step.workflow_id
        data["wait"] = step.wait_seconds
        data["limit"] = _connector_timeout(step)
    else:
        data["fn"] = step.executor
        if step.type == "async":
            if step.status_executor and step.status_executor != step.executor:
                data["status_fn"] = step.status_executor
            data["wait"] = step.wait_seconds
            data["limit"] = _limit_seconds(step)
        data["timeout"] = step.call_timeout_seconds
    if step.step_properties != settings.default_props:
        if _is_inert(step.step_properties):
            data["props"] = _FlowMap(step.step_properties)
        else:
            data["props_json"] = _inert_json(step.step_properties)
    if step.next_job_id:
        data["next"] = step.next_job_id
    if step.continue_if_fail:
        data["continue_if_fail"] = True
    if step.retries:
        data["retries"] = step.retries
    return data


def _step_type(step: PlanStep, settings: _Settings) -> str:
    """The runtime's step type: an async step of native mode is `native` (run_native_step)."""
    return "native" if settings.native and step.type == "async" else step.type


def _native_step_data(data: _FlowMap, step: PlanStep, settings: _Settings) -> None:
    """A native step's descriptor: its API, its job file (where to read it, or its content when
    embedded with --jobs-dir), the Dataflow job name; native_problems has checked all of it."""
    entry = CATALOGUE[step.executor or ""]
    data["api"] = entry.native_api
    if entry.needs_job_params and entry.fileless_format is None:
        job_file = f"{entry.name}/{step.job_name}.json"
        if settings.jobs is None:
            data["file"] = job_file
        else:
            params = settings.jobs[job_file]
            if _is_inert(params):
                data["params"] = _FlowMap(params)
            else:
                data["params_json"] = _inert_json(params)
    if entry.name == DATAFLOW_FLEX_TEMPLATE.name:
        data["df_name"] = dataflow_job_name(step.job_name)
    data["wait"] = step.wait_seconds
    data["limit"] = _limit_seconds(step)
    data["timeout"] = step.call_timeout_seconds


def _pipeline_data(plan: Plan, levels: tuple[PlanLevel, ...], settings: _Settings) -> dict:
    return {"name": plan.name, "levels": [_level_data(level, settings) for level in levels]}


def _level_data(level: PlanLevel, settings: _Settings) -> dict:
    return settings.once(("data", id(level)), lambda: {"id": level.level_id, "threads": [
        {"id": thread.thread_id, "jobs": [_step_data(s, settings) for s in thread.steps]} for thread in level.threads]})


def _level_json_bytes(level: PlanLevel, settings: _Settings) -> int:
    return settings.once(("json", id(level)), lambda: len(json.dumps(_level_data(level, settings))))


def _context_assignments(name_expr: str, schedule: Optional[Schedule], *, full: bool = True,
                         native: bool = False, deadline: Optional[float] = None) -> list[dict]:
    """Execution arguments, all optional: workflow_name, query_variables, workflow_properties
    (a map, or a string holding a JSON object, as the intermediate accepts it). `_argument_steps`
    then checks and completes them; the dates they lack come from `_default_dates`."""
    ctx = {
        "workflow_name": _expr(f'default(map.get(a, "workflow_name"), {name_expr})'),
        "query_variables": _expr('default(map.get(a, "query_variables"), empty)'),
        "workflow_properties": _expr('default(map.get(a, "workflow_properties"), empty)'),
    }
    if deadline is not None:  # a part keeps its parent's deadline
        ctx["deadline"] = _expr(f'default(map.get(a, "{DEADLINE_ARG}"), sys.now() + {_number(deadline * 60)})')
    if full:
        ctx = {"workflow_name": ctx["workflow_name"],
               "execution_id": _expr('sys.get_env("GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID")'),
               "query_variables": ctx["query_variables"], "workflow_properties": ctx["workflow_properties"],
               "intermediate": _expr("settings.intermediate"), "functions": _expr("settings.functions"),
               "project": _expr("settings.project"), "location": _expr("settings.location"),
               "default_props": _expr("settings.default_props"),
               **({"deadline": ctx["deadline"]} if "deadline" in ctx else {})}
        if native:  # no function to call: Google's APIs instead
            del ctx["intermediate"], ctx["functions"]
            ctx["native"] = _expr("json.decode(settings.native)")
    return [
        {"empty": {}},
        {"a": _expr("default(args, empty)")},
        *_default_dates(schedule),
        {"ctx": ctx},
        {"problem": ""},  # set when an argument is unusable; assigned here, outside the try below
    ]


# A day before a date (YYYY-MM-DD): its midnight read as UTC, less a day, so that no daylight-
# saving change of the schedule's time zone can skip or repeat a day.
_DAY_BEFORE = 'text.substring(time.format(time.parse({} + "T00:00:00.000000Z") - 86400), 0, 10)'
_RULE_DATES = {  # the AEF pipeline-executor's rules (docs/scheduling.md): (start_date, end_date)
    "YESTERDAY": ("yesterday", "yesterday"), "TODAY": ("today", "today"),
    "YESTERDAY_TODAY": ("yesterday", "today"), "PREVIOUS_MONTH": ('text.substring(month_end, 0, 8) + "01"', "month_end"),
}


def _default_dates(schedule: Optional[Schedule]) -> list[dict]:
    """`dates`, the run's start_date / end_date when its arguments give none: today (UTC) for an
    unscheduled pipeline; for a scheduled one, its `dates` rule from the day the execution
    starts (the trigger) in the schedule's time zone."""
    if schedule is None:
        return [{"today": _expr("text.substring(time.format(sys.now()), 0, 10)")},
                {"dates": {"start_date": _expr("today"), "end_date": _expr("today")}}]
    start, end = _RULE_DATES[schedule.dates]
    steps: list[dict] = [{"time_zone": schedule.time_zone},  # data: a tz database name (model._time_zone)
                         {"today": _expr("text.substring(time.format(sys.now(), time_zone), 0, 10)")}]
    if "yesterday" in (start, end):
        steps.append({"yesterday": _expr(_DAY_BEFORE.format("today"))})
    if schedule.dates == "PREVIOUS_MONTH":
        steps.append({"month_end": _expr(_DAY_BEFORE.format('text.substring(today, 0, 8) + "01"'))})
    return [*steps, {"dates": {"start_date": _expr(start), "end_date": _expr(end)}}]


def _argument_steps(bad: str) -> list[dict]:
    """Decode string workflow_properties, default the dates; an unusable argument jumps to `bad`."""
    not_map = 'get_type(ctx.workflow_properties) != "map"'
    return [
        {"read_properties": {"switch": [{"condition": _expr('get_type(ctx.workflow_properties) == "string"'), "steps": [
            {"decode_properties": {
                "try": {"steps": [{"decoded": {"assign": [{"ctx.workflow_properties": _expr("json.decode(ctx.workflow_properties)")}]}}]},
                "except": {"as": "e", "steps": [{"not_json": {"assign": [
                    {"problem": "workflow_properties is a string that does not hold JSON"}]}}]}}},
        ]}]}},
        {"check_arguments": {"switch": [
            {"condition": _expr(f'problem == "" and {not_map}'),
             "assign": [{"problem": "workflow_properties must be a map (or a string holding a JSON object)"}]},
            {"condition": _expr('problem == "" and get_type(ctx.query_variables) != "map"'),
             "assign": [{"problem": "query_variables must be a map with start_date and end_date"}]},
        ]}},
        {"arguments_ok": {"switch": [{"condition": _expr('problem != ""'), "next": bad}]}},
        {"default_dates": {"assign": [{"ctx.query_variables": _expr("map.merge(dates, ctx.query_variables)")}]}},
    ]


def _bad_arguments(report: dict, *, raises: bool, notify: Optional[Notify] = None) -> dict:
    """The step `_argument_steps` jumps to: `report` (a step body) makes `outcome`, and the run
    fails with it, saying why (and, with `notify`, publishes it first)."""
    return {"bad_arguments": {"steps": [
        {"bad_report": report},
        {"bad_verdict": {"assign": [{"outcome.status": "failed"},
                                    {"outcome.message": _expr('"levelflow: unusable execution argument: " + problem')}]}},
        *([{"bad_notify": _notify_step(notify)}] if notify is not None and notify.on_failure else []),
        {"bad_end": {"raise" if raises else "return": _expr("outcome")}},
    ]}}


def _deadline_note(minutes: Optional[float]) -> list[dict]:
    """A failed run that outlived its deadline says so first in its report's message."""
    if minutes is None:
        return []
    note = f"levelflow: the run's deadline ({_number(minutes)} min, deadline_minutes) was exceeded; "
    return [{"deadline_note": {"switch": [{"condition": _expr('outcome.status == "failed" and sys.now() >= ctx.deadline'),
                                           "assign": [{"outcome.message": _expr(f"{json.dumps(note)} + outcome.message")}]}]}}]


# The time-out condition of every polling loop (runtime.yaml): with a deadline, it also ends the
# poll when the run's deadline has passed, so the job is cancelled and the step fails as on its
# own time-out; a step not started yet fails at once.
_LIMIT = "sys.now() - since >= s.limit"
_LIMIT_OR_DEADLINE = "sys.now() - since >= s.limit or sys.now() >= ctx.deadline"


def _with_deadline(library: dict) -> dict:
    """The runtime subworkflows with every polling loop's time-out also ending at ctx.deadline,
    and run_step failing an attempt that would start after it."""
    text = json.dumps(library)
    assert text.count(_LIMIT) >= 1, "runtime.yaml's polling loops no longer test their time-out as _LIMIT says"
    library = json.loads(text.replace(_LIMIT, _LIMIT_OR_DEADLINE))
    _step_body(library["run_step"], "by_type")["switch"].insert(0, {
        "condition": _expr("sys.now() >= ctx.deadline"),
        "raise": {"message": "the run's deadline (deadline_minutes) was exceeded: the step was not started"}})
    return library


def _notify_steps(notify: Optional[Notify]) -> list[dict]:
    """The report published when the run ends as `notify` asks (before a failed run raises)."""
    if notify is None or not (notify.on_failure or notify.on_success):
        return []
    return [{"notify": _notify_step(notify)}]


def _notify_step(notify: Notify) -> dict:
    wanted = [status for status, asked in (("failed", notify.on_failure), ("succeeded", notify.on_success)) if asked]
    condition = " or ".join(f'outcome.status == "{status}"' for status in wanted)
    return {"switch": [{"condition": _expr(condition), "call": "publish_report",
                        "args": {"topic": _expr("settings.notify_topic"), "outcome": _expr("outcome")}}]}


def _topic(settings: "_Settings") -> str:
    assert settings.notify is not None
    return f"projects/{settings.project}/topics/{settings.notify.pubsub_topic}"


def _braces_pattern(depth: int) -> str:
    """RE2 (and Python re) for a {...} block nested at most `depth` deep, braces inside quoted
    strings not counted: regular expressions cannot count, so the depth is bounded."""
    quoted = "|".join(f"{q}(?:[^{q}\\\\]|\\\\.)*{q}" for q in "\"'`")
    inner = ""
    for _ in range(depth):
        inner = f"\\{{(?:[^{{}}\"'`]|{quoted}{'|' + inner if inner else ''})*\\}}"
    return inner


# What native mode's BigQuery steps match in a .sqlx file: text holding "${", so it travels as
# inert JSON (decoded into ctx.native). The leading config block is matched to 4 levels of
# braces (config { bigquery { labels { ... } } } is 3).
CONFIG_DEPTH = 4
NATIVE_TEXTS = {"config_block": rf"^\s*config\s*{_braces_pattern(CONFIG_DEPTH)}\s*",
                "config_start": r"^\s*config\s*\{", "start_date": "${start_date}", "end_date": "${end_date}"}


def _settings_data(settings: _Settings) -> dict:
    data = {"intermediate": settings.intermediate, "functions": settings.functions,
            "project": settings.project, "location": settings.region,
            "default_props": settings.default_props}
    if settings.native:
        del data["intermediate"], data["functions"]
        data["native"] = _inert_json(NATIVE_TEXTS)
    if settings.notify is not None:
        data["notify_topic"] = _topic(settings)
    return data


# ---------------------------------------------------------------------------------------------
# main: one block per level


class _LimitError(Exception):
    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.path = path


def _where(plan: Plan) -> str:
    return plan.source or plan.name


def _key(li: int, ti: int) -> str:
    """Key of a thread's result in `done`: positions (1-based) of its level and of the thread."""
    return f"{li + 1}.{ti + 1}"


def _thread_steps(li: int, ti: int, store: str, level: str = "") -> list[dict]:
    """Run thread `ti` of level `li` (the variable `level`, by default pipeline.levels[li]) and
    keep its result in the shared map `store`."""
    name, result = f"l{li + 1}_t{ti + 1}", f"r{li + 1}_{ti + 1}"  # unique per branch, so no two branches share a variable
    level = level or f"pipeline.levels[{li}]"
    return [
        {f"{name}_run": {"call": "run_thread", "args": {
            "ctx": _expr("ctx"), "level": _expr(f"{level}.id"), "thread": _expr(f"{level}.threads[{ti}]")}, "result": result}},
        {f"{name}_keep": {"assign": [{f'{store}["{_key(li, ti)}"]': _expr(result)}]}},
    ]


def _parallel(name: str, store: str, branches: list[dict]) -> dict:
    return {name: {"parallel": {"shared": [store], "branches": branches}}}


def _too_many_threads(li: int, level: PlanLevel) -> _LimitError:
    count, most = len(level.threads), MAX_BRANCHES ** MAX_PARALLEL_DEPTH
    return _LimitError(f"level {level.level_id!r} has {count} threads, {count - most} more than the {most} that nested parallel "
                       f"steps can run ({MAX_BRANCHES} branches per step, nested at most {MAX_PARALLEL_DEPTH} deep); "
                       "split it into several levels", ("definition", li, "THREADS"))


def _groups(level: PlanLevel) -> list[range]:
    count = len(level.threads)
    return [range(first, min(first + MAX_BRANCHES, count)) for first in range(0, count, MAX_BRANCHES)]


def _level_steps(li: int, level: PlanLevel) -> list[dict]:
    """Steps of `main` that run one level and leave each thread's result in `done`."""
    count = len(level.threads)
    if count == 1:
        return _thread_steps(li, 0, "done")
    if count <= MAX_BRANCHES:
        return [_parallel(f"level_{li + 1}", "done", [{f"l{li + 1}_t{ti + 1}": {"steps": _thread_steps(li, ti, "done")}}
                                                      for ti in range(count)])]
    if count > MAX_BRANCHES ** MAX_PARALLEL_DEPTH:
        raise _too_many_threads(li, level)
    branches = []
    for gi, members in enumerate(_groups(level)):
        name, result = f"l{li + 1}_g{gi + 1}", f"g{li + 1}_{gi + 1}"
        # The group runs in its own subworkflow; its threads' results come back as one map.
        branches.append({name: {"steps": [
            {f"{name}_run": {"call": f"level_{li + 1}_group_{gi + 1}",
                             "args": {"ctx": _expr("ctx"), "level": _expr(f"pipeline.levels[{li}]")}, "result": result}},
            {f"{name}_keep": {"assign": [{f'done["{_key(li, ti)}"]': _expr(f'{result}["{_key(li, ti)}"]')} for ti in members]}},
        ]}})
    return [_parallel(f"level_{li + 1}", "done", branches)]


def _group_subworkflows(li: int, level: PlanLevel) -> dict:
    if len(level.threads) <= MAX_BRANCHES:
        return {}
    subworkflows = {}
    for gi, members in enumerate(_groups(level)):
        if len(members) == 1:
            run = _thread_steps(li, members[0], "out", "level")
        else:
            run = [_parallel("threads", "out", [{f"l{li + 1}_t{ti + 1}": {"steps": _thread_steps(li, ti, "out", "level")}}
                                                for ti in members])]
        subworkflows[f"level_{li + 1}_group_{gi + 1}"] = {"params": ["ctx", "level"], "steps": [  # only its level: less memory
            {"init": {"assign": [{"out": {}}]}}, *run, {"done": {"return": _expr("out")}}]}
    return subworkflows


def _level_check(li: int, level: PlanLevel) -> list[dict]:
    check = {"done": _expr("done"), "level": li + 1, "threads": len(level.threads)}
    return [{f"level_{li + 1}_check": {"call": "level_failed", "args": check, "result": "stop"}},
            {f"level_{li + 1}_stop": {"switch": [{"condition": _expr("stop"), "next": "report"}]}}]


def _workflow_doc(plan: Plan, levels: tuple[PlanLevel, ...], settings: _Settings, *, part: bool) -> dict:
    """One complete workflow running `levels`: the whole pipeline, or one part of it."""
    body: list[dict] = []
    groups: dict = {}
    for li, level in enumerate(levels):
        body += settings.once(("steps", id(level), li), _level_steps, li, level)
        groups.update(settings.once(("groups", id(level), li), _group_subworkflows, li, level))
        if li < len(levels) - 1:  # no later level starts once a thread of this one failed
            body += settings.once(("check", id(level), li), _level_check, li, level)
    init = [{"pipeline": _pipeline_data(plan, levels, settings)}, {"settings": _settings_data(settings)},
            *_context_assignments("pipeline.name", plan.schedule, native=settings.native, deadline=plan.deadline_minutes),
            {"done": {}}]
    steps = [{"init": {"assign": init}}, *_argument_steps("bad_arguments")]
    if part:  # a part asked to "skip" by its parent (an earlier part failed) only reports its steps
        steps.append({"skip": {"switch": [{"condition": _expr(f'default(map.get(a, "{PART_ARG}"), "") == "skip"'), "next": "report"}]}})
    steps += body
    steps.append({"report": {"call": "finish", "args": {"pipeline": _expr("pipeline"), "done": _expr("done")}, "result": "outcome"}})
    if not part:  # parts always return their report; the parent decides (and tells)
        steps += _deadline_note(plan.deadline_minutes)
        steps += _notify_steps(settings.notify)
        steps.append({"fail": {"switch": [{"condition": _expr('outcome.status == "failed"'), "raise": _expr("outcome")}]}})
    steps.append({"answer": {"return": _expr("outcome")}})
    no_step_ran = {"call": "finish", "args": {"pipeline": _expr("pipeline"), "done": {}}, "result": "outcome"}
    steps.append(_bad_arguments(no_step_ran, raises=not part, notify=None if part else settings.notify))
    return {"main": {"params": ["args"], "steps": steps}, **groups, **_library(levels, settings),
            **({} if part else _publishing(settings))}


# ---------------------------------------------------------------------------------------------
# The shared subworkflows: runtime.yaml, and the parts of it that vary per pipeline

RUNTIME = Path(__file__).with_name("runtime.yaml")
_DISPATCH = re.compile(r'\$\{s\.type == "(\w+)"\}')  # a condition of run_step's by_type switch
_API_DISPATCH = re.compile(r'\$\{s\.api == "(\w+)"\}')  # a condition of run_native_step's start switch
GOOGLE_REQUEST = "google_request"  # runtime.yaml's one Google API call, written out per HTTP method as:
GOOGLE_METHODS = {"google_get": "GET", "google_post": "POST", "google_put": "PUT"}


@functools.cache
def runtime() -> dict:
    """runtime.yaml's subworkflows, loaded once per process. Generated documents share them, so
    they are never modified: what varies per pipeline is deep-copied first."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(RUNTIME.read_text(encoding="utf-8"), Loader=loader)


def _all_steps(levels: Iterable[PlanLevel]) -> list[PlanStep]:
    return [s for level in levels for t in level.threads for s in t.steps]


def _library(levels: tuple[PlanLevel, ...], settings: _Settings) -> dict:
    """The runtime subworkflows the pipeline's step types need, in runtime.yaml's order, with
    `post` filled for its call time-outs."""
    steps = _all_steps(levels)
    types = [_step_type(s, settings) for s in steps]
    apis = frozenset(CATALOGUE[s.executor or ""].native_api or "" for s, kind in zip(steps, types) if kind == "native")
    library = dict(_runtime_for(frozenset(types), apis))
    for name, kinds in (("post", ("async", "sync")), *((name, ("native",)) for name in GOOGLE_METHODS)):
        if name in library:
            timeouts = tuple(sorted({s.call_timeout_seconds for s, kind in zip(steps, types) if kind in kinds}))
            library[name] = settings.once((name, timeouts), _timeout_switch, name, list(timeouts), settings.https)
    if not settings.deadline:
        return library
    return settings.once(("with_deadline", json.dumps(library, sort_keys=True)), _with_deadline, library)


@functools.cache  # one entry per set of step types and native APIs
def _runtime_for(types: frozenset[str], apis: frozenset[str] = frozenset()) -> dict:
    """The runtime subworkflows that steps of `types` need (runtime.yaml's header says which):
    run_step dispatches on `types` only, run_native_step starts jobs of `apis` only, and what
    is no longer reached is left out."""
    library = {**_subworkflows(), "run_step": _run_step(types)}
    if "native" in types:
        library["run_native_step"] = _dispatching(runtime()["run_native_step"], "start", _API_DISPATCH, apis)
    reached = set(_entry_points()) - {PUBLISH_REPORT}  # main's alone, when the pipeline asks to be told (_publishing)
    todo = list(reached)
    while todo:
        for callee in (_callees(library[todo.pop()]) & library.keys()) - reached:
            reached.add(callee)
            todo.append(callee)
    return {name: sub for name, sub in library.items() if name in reached}


@functools.cache
def _subworkflows() -> dict:
    """runtime.yaml's subworkflows as the output may hold them: google_request written out once
    per HTTP method (http.request's `method` must be a literal), in its place."""
    written: dict = {}
    for name, subworkflow in runtime().items():
        if name != GOOGLE_REQUEST:
            written[name] = subworkflow
            continue
        for copy_name, method in GOOGLE_METHODS.items():
            made = copy.deepcopy(subworkflow)
            [sample] = _step_body(made, "by_timeout")["switch"]
            sample["args"]["method"] = method
            written[copy_name] = made
    return written


@functools.cache
def _entry_points() -> frozenset[str]:
    """The runtime subworkflows that no other one calls: those `main` calls."""
    called = set().union(*(_callees(sub) for sub in _subworkflows().values()))
    return frozenset(_subworkflows().keys() - called)


def _run_step(types: frozenset[str]) -> dict:
    """run_step whose `by_type` switch has one condition (`s.type == "<type>"`) per type in `types`."""
    return _dispatching(runtime()["run_step"], "by_type", _DISPATCH, types, "step type")


def _dispatching(subworkflow: dict, step_name: str, pattern: re.Pattern, kinds: frozenset[str], what: str = "API") -> dict:
    """A copy of `subworkflow` whose switch step `step_name`, one condition per kind (each
    matching `pattern`), keeps the conditions of `kinds` only."""
    made = copy.deepcopy(subworkflow)
    switch = _step_body(made, step_name)
    dispatch = {}
    for condition in switch["switch"]:
        match = pattern.fullmatch(condition["condition"])
        if match is None:
            raise ValueError(f"{RUNTIME}: a {step_name} condition must match {pattern.pattern}, not {condition['condition']!r}")
        dispatch[match.group(1)] = condition
    if kinds - dispatch.keys():
        raise ValueError(f"{RUNTIME}: {step_name} has no condition for {what}(s) {', '.join(sorted(kinds - dispatch.keys()))}")
    switch["switch"] = [condition for kind, condition in dispatch.items() if kind in kinds]
    return made


def _switch_by_value(variable: str, values: list[int], branch) -> list[dict]:
    """A switch with one condition per value (values are literals: Workflows wants literal
    time-outs), nested by ranges when there are more than 50 values."""
    if len(values) <= MAX_SWITCH_CONDITIONS:
        return [{"condition": _expr(f"{variable} == {v}"), **branch(v)} for v in values]
    size = math.ceil(len(values) / MAX_SWITCH_CONDITIONS)
    chunks = [values[i:i + size] for i in range(0, len(values), size)]
    return [{"condition": _expr(f"{variable} >= {c[0]} and {variable} <= {c[-1]}"),
             "steps": [{f"{variable}_{c[0]}_to_{c[-1]}": {"switch": _switch_by_value(variable, c, branch)}}]} for c in chunks]


def _timeout_switch(name: str, timeouts: list[int], https: bool) -> dict:
    """The subworkflow `name` (post, or one of GOOGLE_METHODS) whose `by_timeout` switch has a
    branch like runtime.yaml's sample for each time-out; post's `auth` (OIDC) only when the
    functions are on https (the Google calls are always https with OAuth2)."""
    post = copy.deepcopy(_subworkflows()[name])
    by_timeout = _step_body(post, "by_timeout")
    [sample] = by_timeout["switch"]
    del sample["condition"]  # _switch_by_value writes each branch's own
    if name == "post" and not https:
        del sample["args"]["auth"]

    def branch(seconds: int) -> dict:
        made = copy.deepcopy(sample)  # no object twice in a document: the YAML dumper would write aliases
        made["args"]["timeout"] = seconds
        return made

    by_timeout["switch"] = _switch_by_value("seconds", timeouts, branch)
    return post


def _step_body(subworkflow: dict, name: str) -> dict:
    """The body of the step called `name` in a subworkflow (step names are unique there)."""
    return next(_bodies_named(subworkflow["steps"], name))


def _bodies_named(value, name: str):
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and list(item) == [name]:
                yield item[name]
    for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        yield from _bodies_named(child, name)


# The split parent's report, built as `finish` (runtime.yaml) builds its own: a test checks
# that _collect("records") and _verdict("pipeline.name") equal finish's `add` loop and verdict.


def _collect(records: str, keep: bool = True) -> dict:
    """Loop naming each failed record of `records` in `failed` and `message` (and appending
    every record to `steps` when `keep`)."""
    steps = [{"keep": {"assign": [{"steps": _expr("list.concat(steps, rec)")}]}}] if keep else []
    return {"for": {"value": "rec", "in": _expr(records), "steps": [
        *steps,
        {"name_failure": {"switch": [{"condition": _expr('rec.status == "failed"'), "assign": [
            {"failed": _expr("list.concat(failed, rec.job_id)")},
            {"message": _expr('message + " " + rec.job_id + " (" + rec.job_name + ")"')},
        ]}]}},
    ]}}


def _verdict(name: str, listing: str = "steps") -> list[dict]:
    return [
        {"verdict": {"switch": [{"condition": _expr("len(failed) > 0"), "return": {
            "workflow": _expr(name), "status": "failed",
            "message": _expr('"levelflow: " + string(len(failed)) + " step(s) failed:" + message'),
            "failed": _expr("failed"), listing: _expr("steps")}}]}},
        {"succeeded": {"return": {"workflow": _expr(name), "status": "succeeded", "failed": [], listing: _expr("steps")}}},
    ]


# ---------------------------------------------------------------------------------------------
# Splitting a pipeline too large for one source file


def _part_name(plan: Plan, number: int) -> str:
    return f"{plan.name}-part-{number}"


def _parent_doc(plan: Plan, parts: list[str], settings: _Settings) -> dict:
    """Run the parts in order with the same arguments; after a failed part, the later parts
    only report their steps (not_started). The report lists every step, as usual, when that
    fits the variables limit; otherwise it lists each part's outcome (`parts`) and every part
    execution's own result lists its steps."""
    full = 3 * _records_bytes(plan.levels) <= MAX_VARIABLE_BYTES
    run = {"call": RUN_WORKFLOW, "args": {
        "workflow_id": _expr("part"), "location": _expr("settings.location"), "project_id": _expr("settings.project"),
        "argument": {"workflow_name": _expr("ctx.workflow_name"), "query_variables": _expr("ctx.query_variables"),
                     "workflow_properties": _expr("ctx.workflow_properties"), PART_ARG: _expr("mode"),
                     **({DEADLINE_ARG: _expr("ctx.deadline")} if plan.deadline_minutes is not None else {})},
        # the connector polls the part's execution; an explicit policy makes those steps countable
        "connector_params": {"timeout": MAX_CONNECTOR_TIMEOUT, "polling_policy": PART_POLLING}}, "result": "outcome"}
    crashed = {"status": "failed", "failed": _expr("[part]"), "steps": [{
        "job_id": _expr("part"), "job_name": _expr("part"), "status": "failed",
        "error": {"message": _expr('default(map.get(e, "message"), "")')}}]}
    summary = [] if full else [
        {"summarize": {"assign": [{"summary": {"workflow": _expr("part"), "status": _expr("outcome.status"),
                                               "failed": _expr("outcome.failed")}}]}},
        {"skipped": {"switch": [{"condition": _expr('mode == "skip"'), "assign": [{"summary.status": "not_started"}]}]}},
        {"keep_summary": {"assign": [{"steps": _expr("list.concat(steps, summary)")}]}},
    ]
    parent_settings = {"project": settings.project, "location": settings.region,
                       **({"notify_topic": _topic(settings)} if settings.notify is not None else {})}
    init = [{"pipeline": {"name": plan.name}}, {"settings": parent_settings},
            {"parts": parts}, *_context_assignments("pipeline.name", plan.schedule, full=False, deadline=plan.deadline_minutes),
            {"mode": "run"}, {"steps": []}, {"failed": []}, {"message": ""},
            {"outcome": None}]  # assigned here: what run_part's except assigns must outlive the except block
    steps = [
        {"init": {"assign": init}},
        *_argument_steps("bad_arguments"),
        {"run_parts": {"for": {"value": "part", "in": _expr("parts"), "steps": [
            {"run_part": {"try": run, "except": {"as": "e", "steps": [{"crashed": {"assign": [{"outcome": crashed}]}}]}}},
            *summary,
            {"add": _collect("outcome.steps", keep=full)},
            {"after_failure": {"switch": [{"condition": _expr('outcome.status == "failed"'), "assign": [{"mode": "skip"}]}]}},
        ]}}},
        {"report": {"call": "verdict", "args": {"name": _expr("pipeline.name"), "steps": _expr("steps"), "failed": _expr("failed"),
                                                "message": _expr("message")}, "result": "outcome"}},
        *_deadline_note(plan.deadline_minutes),
        *_notify_steps(settings.notify),
        {"fail": {"switch": [{"condition": _expr('outcome.status == "failed"'), "raise": _expr("outcome")}]}},
        {"answer": {"return": _expr("outcome")}},
        _bad_arguments({"assign": [{"outcome": {"workflow": _expr("pipeline.name"), "failed": [], "parts": []}}]}, raises=True,
                       notify=settings.notify),
    ]
    return {"main": {"params": ["args"], "steps": steps},
            "verdict": {"params": ["name", "steps", "failed", "message"], "steps": _verdict("name", "steps" if full else "parts")},
            **_publishing(settings)}


PUBLISH_REPORT = "publish_report"


def _publishing(settings: "_Settings") -> dict:
    """publish_report, for the workflow a run starts (not a part) of a pipeline with `notify`."""
    return {PUBLISH_REPORT: runtime()[PUBLISH_REPORT]} if settings.notify is not None else {}


def _split(plan: Plan, settings: _Settings, whole_size: int) -> dict[str, str]:
    """Pack whole levels into part workflows of at most MAX_SOURCE_BYTES each."""
    texts: list[tuple[tuple[PlanLevel, ...], str]] = []
    remaining = list(plan.levels)
    guess = int(MAX_SOURCE_BYTES * 0.9 / (whole_size / len(plan.levels)))
    while remaining:
        levels, text = _largest_part(plan, remaining, settings, guess)
        guess = len(levels)  # the next part most likely holds as many levels
        texts.append((levels, text))
        remaining = remaining[len(levels):]
    parts = [_part_name(plan, n + 1) for n in range(len(texts))]
    for name in parts:
        if len(name) > 64:
            raise LevelflowError([Problem(_where(plan), f"the pipeline needs {len(parts)} part workflows but the part name {name!r} is "
                                                        f"{len(name)} characters, {len(name) - 64} more than a workflow id allows (64); "
                                                        "use a shorter \"name\"")])
    parent = _parent_doc(plan, parts, settings)
    _check_doc(plan, parent)
    _check_parent_budget(plan, [levels for levels, _text in texts])
    note = f"Runs {len(parts)} part workflows in order: {', '.join(parts)}."
    files = {f"{plan.name}.yaml": _with_header(settings, render(parent, writer=settings.writer), plan, plan.levels, note)}
    for name, (levels, text) in zip(parts, texts):
        _check_steps_budget(plan, levels, part=name)
        files[f"{name}.yaml"] = _with_header(settings, text, plan, levels, f"Part of {plan.name}; deploy it as workflow {name}.")
    return files


def _largest_part(plan: Plan, levels: list[PlanLevel], settings: _Settings, guess: int) -> tuple[tuple[PlanLevel, ...], str]:
    """The longest prefix of `levels` whose part workflow fits: galloping from a size-based guess."""
    texts: dict[int, Optional[str]] = {}

    def fits(count: int) -> Optional[str]:
        if count not in texts:
            text = render(_workflow_doc(plan, tuple(levels[:count]), settings, part=True), writer=settings.writer)
            small = _source_size(settings, text, plan, levels[:count]) <= MAX_SOURCE_BYTES
            texts[count] = text if small and _variable_bytes(plan, levels[:count], settings) <= MAX_VARIABLE_BYTES else None
        return texts[count]

    if fits(1) is None:
        level = levels[0]
        size = _source_size(settings, render(_workflow_doc(plan, (level,), settings, part=True), writer=settings.writer), plan, [level])
        need, limit, what = (size, MAX_SOURCE_BYTES, "workflow source") if size > MAX_SOURCE_BYTES else \
            (_variable_bytes(plan, [level], settings), MAX_VARIABLE_BYTES, "variables (estimated)")
        raise LevelflowError([Problem(_where(plan), f"level {level.level_id!r} alone needs {need:,} bytes of {what}, "
                                                    f"{need - limit:,} more than the {limit:,}-byte limit; split it into several levels",
                                      ("definition", plan.levels.index(level)))])
    good = min(max(1, guess), len(levels))
    bad: Optional[int] = good
    step = 1
    if fits(good) is not None:  # grow until it no longer fits (or every level is in)
        bad = None
        while bad is None and good < len(levels):
            trial = min(good + step, len(levels))
            if fits(trial) is None:
                bad = trial
            else:
                good, step = trial, step * 2
    else:  # shrink until it fits
        while fits(good) is None:
            bad, good = good, max(1, good - step)
            step *= 2
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) is not None else (good, middle)
    _check_doc(plan, _workflow_doc(plan, tuple(levels[:good]), settings, part=True))
    text = texts[good]
    assert text is not None  # `good` always fits
    return tuple(levels[:good]), text


def _variable_bytes(plan: Plan, levels, settings: _Settings) -> int:
    """Estimated peak of variables (512 KB per execution): the pipeline data in `main` and as
    `finish`'s argument, and the step records (with their bounded errors) in `done`, in
    `finish`'s argument and its report."""
    # json.dumps of {"name": ..., "levels": [...]}: its frame, each level's data, ", " between them
    data = len(json.dumps({"name": plan.name, "levels": []})) + sum(_level_json_bytes(level, settings) for level in levels)
    data += 2 * max(0, len(levels) - 1)
    return 2 * data + 3 * _records_bytes(levels)


def _records_bytes(levels) -> int:
    """The step records of a report, with the bounded errors it can hold at most: a thread
    keeps one error per continue-if-fail step plus the one failure that stops it."""
    steps = _all_steps(levels)
    errors = sum(min(len(t.steps), 1 + sum(s.continue_if_fail for s in t.steps)) for level in levels for t in level.threads)
    return RECORD_BYTES * len(steps) + ERROR_BYTES * errors


def _source_size(settings: "_Settings", text: str, plan: Plan, levels) -> int:
    note = "Part of " + plan.name + "; deploy it as workflow " + _part_name(plan, 99) + "."
    return len(_with_header(settings, text, plan, levels, note).encode())


# ---------------------------------------------------------------------------------------------
# Limits (docs/platform-limits.md), checked on the generated data


def _problem(plan: Plan, message: str, path: tuple = ()) -> LevelflowError:
    return LevelflowError([Problem(_where(plan), message, path)])


POLLED = ("async", "workflows")  # step types whose workflow polls (a job; a child execution)


def executed_steps(step: PlanStep) -> int:
    """Workflow steps one plan step may execute at worst: every poll until its time-out, every retry."""
    polls = math.ceil(step.timeout_minutes * 60 / step.wait_seconds) if step.type in POLLED else 0
    return (STEPS_PER_CALL + polls * STEPS_PER_POLL) * (1 + step.retries)


PART_POLLING = {"initial_delay": 1, "multiplier": 2, "max_delay": 300}  # seconds
PARENT_STEPS_PER_PART = 40  # the parent's own steps around one part, polls aside


def worst_seconds(step: PlanStep) -> float:
    """The longest one step can take, every retry used."""
    once = step.timeout_minutes * 60 if step.type in POLLED else step.call_timeout_seconds
    return once * (1 + step.retries)


def _check_parent_budget(plan: Plan, parts: list[tuple[PlanLevel, ...]]) -> None:
    """The `run` connector's polls of each part count as executed steps of the parent: warn when
    parts running to their time-outs could exceed 100,000 of them."""
    total = 0
    for levels in parts:
        seconds = sum(max(sum(worst_seconds(s) for s in t.steps) for t in level.threads) for level in levels)
        polls = 1 + math.ceil(math.log2(PART_POLLING["max_delay"])) + math.ceil(seconds / PART_POLLING["max_delay"])
        total += PARENT_STEPS_PER_PART + polls
    if total > MAX_EXECUTED_STEPS:
        warnings.warn(LevelflowWarning(
            f"{_where(plan)}: if every part ran until its time-outs, the parent's polls of its parts could need about {total:,} "
            f"workflow steps, more than the {MAX_EXECUTED_STEPS:,} allowed; lower ASYNC_TIMEOUT_LOOP_IN_MINUTES"), stacklevel=2)


def total_executed_steps(levels: Iterable[PlanLevel]) -> int:
    """The worst case of one execution: every step a thread runs (NEXT followed), every poll
    until its time-out, every retry. `levelflow plan` shows this same figure."""
    return sum(executed_steps(step) for level in levels for thread in level.threads for step in thread.executed_steps())


def _polling_problem(step: PlanStep) -> Optional[str]:
    """Why polling this step to its time-out cannot fit one execution, if it cannot."""
    cost = executed_steps(step)
    if cost <= MAX_EXECUTED_STEPS:
        return None
    attempts = 1 + step.retries
    wait = math.ceil(step.timeout_minutes * 60 * STEPS_PER_POLL * attempts / (MAX_EXECUTED_STEPS - STEPS_PER_CALL * attempts))
    return (f"step {step.job_id!r}: polling every {step.wait_seconds} s for up to {_number(step.timeout_minutes)} min "
            f"({attempts} attempt(s)) needs up to {cost:,} workflow steps, {cost - MAX_EXECUTED_STEPS:,} more "
            f"than the {MAX_EXECUTED_STEPS:,} steps an execution may run; set WAIT_TIME_SECONDS to at least {wait} "
            f"or lower ASYNC_TIMEOUT_LOOP_IN_MINUTES")


def check(plan: Plan, options: GenerateOptions) -> list[Problem]:
    """What generation would refuse that the plan alone shows (`validate` runs this, without
    platform parameters): a level wider than nested parallel steps run, a step whose polling
    cannot fit an execution."""
    problems = [Problem(_where(plan), str(error), error.path)
                for li, level in enumerate(plan.levels) if len(level.threads) > MAX_BRANCHES ** MAX_PARALLEL_DEPTH
                for error in [_too_many_threads(li, level)]]
    problems += [Problem(_where(plan), message) for step in plan.executed_steps()
                 if (message := _polling_problem(step)) is not None]
    if plan.schedule is not None and unix_cron(plan.schedule.cron) is None:
        problems.append(Problem(_where(plan), f"schedule {plan.schedule.cron!r} means nothing to Cloud Scheduler, which "
                                              "triggers workflows on a unix-cron schedule; start a one-off run by hand "
                                              "(gcloud workflows run, or levelflow run) and drop the schedule",
                                ("schedule",)))
    if options.step_mode == "native":
        problems += native_problems(plan, options.jobs_dir)
    return problems



def _check_steps_budget(plan: Plan, levels: Iterable[PlanLevel], part: Optional[str] = None) -> None:
    """Estimate executed steps: polling an async step to its time-out must fit 100,000 steps,
    or the time-out could never fire; a whole run that could exceed it is warned about (each
    part of a split pipeline is an execution of its own, with its own budget)."""
    levels = tuple(levels)
    for step in (s for level in levels for thread in level.threads for s in thread.executed_steps()):
        if (problem := _polling_problem(step)) is not None:
            raise _problem(plan, problem)
    total = total_executed_steps(levels)
    if total > MAX_EXECUTED_STEPS:
        warnings.warn(LevelflowWarning(
            f"{_where(plan)}: {f'part workflow {part}: ' if part else ''}if every async job ran until its time-out, "
            f"one execution could need about {total:,} workflow steps, "
            f"more than the {MAX_EXECUTED_STEPS:,} allowed; raise WAIT_TIME_SECONDS or lower ASYNC_TIMEOUT_LOOP_IN_MINUTES"), stacklevel=2)


def _check_doc(plan: Plan, doc: dict) -> None:
    """Fail loudly rather than emit a workflow that breaks a platform limit."""
    shape = source_shape(doc)
    problems = [f"step names must be unique in a subworkflow, repeated: {name}" for name in shape.repeated_names]
    if shape.recursion:
        problems.append(f"recursive subworkflow call {shape.recursion}")
    for measured, most, what in ((shape.call_depth, MAX_CALL_DEPTH, "call-stack depth"),
                                 (shape.parallel_depth, MAX_PARALLEL_DEPTH, "parallel steps nested deep"),
                                 (shape.branches, MAX_BRANCHES, "branches in one parallel step"),
                                 (shape.switch, MAX_SWITCH_CONDITIONS, "conditions in one switch"),
                                 (shape.assign, MAX_ASSIGNMENTS, "entries in one assign"),
                                 (shape.http_timeout, MAX_HTTP_TIMEOUT, "seconds of HTTP time-out")):
        if measured > most:
            problems.append(f"{measured} {what}, {measured - most} more than {most}")
    if shape.fewest_branches is not None and shape.fewest_branches < 2:
        problems.append(f"a parallel step of {shape.fewest_branches} branch(es); a parallel step holds 2 to {MAX_BRANCHES}")
    if problems:
        raise LevelflowError([Problem(_where(plan), "generated workflow breaks a Cloud Workflows limit: " + p) for p in problems])


@dataclass
class SourceShape:
    """What the Cloud Workflows limits constrain, measured on one workflow source: the one walk of
    generated workflows, behind the compiler's checks and the figures of `levelflow plan`."""
    branches: int = 0  # largest `parallel` step
    parallel_depth: int = 0  # deepest nesting of `parallel` steps, through subworkflow calls
    call_depth: int = 1  # deepest chain of subworkflow calls from main
    switch: int = 0  # longest `switch`
    assign: int = 0  # longest `assign`
    # what only the compiler's checks look at (not compared: `plan` shows the measures above)
    http_timeout: int = field(default=0, compare=False)  # longest time-out of an http.* call
    fewest_branches: Optional[int] = field(default=None, compare=False)  # smallest `parallel` step
    repeated_names: list[str] = field(default_factory=list, compare=False)  # "subworkflow.step" of names used twice
    recursion: str = field(default="", compare=False)  # a recursive chain of calls, if any


def _callee(key: str, value: Any) -> Optional[str]:
    """The subworkflow a `call:` runs, or a retry `predicate: ${name}` (also a call)."""
    if key == "call" and isinstance(value, str):
        return value
    if key == "predicate" and isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1].strip()
    return None


def _callees(value: Any) -> set[str]:
    """Every name a piece of workflow calls (subworkflows, connectors, retry predicates)."""
    if isinstance(value, list):
        return set().union(*(_callees(item) for item in value))
    if not isinstance(value, dict):
        return set()
    found = {callee for key, item in value.items() if (callee := _callee(key, item)) is not None}
    return found.union(*(_callees(item) for item in value.values()))


def source_shape(document: Any) -> SourceShape:
    """Walk a parsed Cloud Workflows source (a step list, or `main` plus subworkflows), following
    the syntax only: steps, branches, loops, try/except and switch conditions. Values (assigned
    data, call arguments, returns) are not walked: the pipeline's data is most of a source."""
    subworkflows = document if isinstance(document, dict) and "main" in document else {"main": document}
    shape = SourceShape()
    depths: dict[str, tuple[int, int]] = {}  # subworkflow -> (parallel depth, call depth) inside it

    def deepest(results) -> tuple[int, int]:
        parallel, calls = 0, 0
        for inner in results:
            parallel, calls = max(parallel, inner[0]), max(calls, inner[1])
        return parallel, calls

    def steps(items: Any, stack: tuple, names: list) -> tuple[int, int]:
        """A list of named steps: (parallel nesting, call chain) reached from it."""
        if not isinstance(items, list):
            return 0, 0
        named = [next(iter(item.items())) for item in items if isinstance(item, dict) and len(item) == 1]
        names.extend(name for name, _body in named)
        return deepest(body(item, stack, names) for _name, item in named)

    def called(callee: Optional[str], stack: tuple) -> tuple[int, int]:
        if callee is None or callee not in subworkflows:
            return 0, 0
        if callee in stack:
            shape.recursion = shape.recursion or " -> ".join((*stack, callee))
            return 0, 0
        depth = subworkflow(callee, stack)
        return depth[0], depth[1] + 1

    def body(node: Any, stack: tuple, names: list) -> tuple[int, int]:
        """A step's body (or a switch condition, a try, a loop): what it runs."""
        if not isinstance(node, dict):
            return 0, 0
        found = [steps(node.get("steps"), stack, names), called(_callee("call", node.get("call")), stack)]
        call, args = node.get("call"), node.get("args")
        if isinstance(call, str) and call.startswith("http.") and isinstance(args, dict) and isinstance(args.get("timeout"), int):
            shape.http_timeout = max(shape.http_timeout, args["timeout"])
        if isinstance(node.get("assign"), list):
            shape.assign = max(shape.assign, len(node["assign"]))
        if isinstance(node.get("switch"), list):
            shape.switch = max(shape.switch, len(node["switch"]))
            found += [body(condition, stack, names) for condition in node["switch"]]
        parallel = node.get("parallel")
        if isinstance(parallel, dict):
            count = len(parallel.get("branches") or [])
            shape.branches = max(shape.branches, count)
            shape.fewest_branches = count if shape.fewest_branches is None else min(shape.fewest_branches, count)
            inner = deepest([steps(parallel.get("branches"), stack, names), body(parallel.get("for"), stack, names)])
            found.append((inner[0] + 1, inner[1]))
        found += [body(node.get(key), stack, names) for key in ("for", "try", "except")]
        retry = node.get("retry")
        predicate = retry.get("predicate") if isinstance(retry, dict) else retry
        found.append(called(_callee("predicate", predicate), stack))
        return deepest(found)

    def subworkflow(name: str, stack: tuple) -> tuple[int, int]:
        if name not in depths:
            source, names = subworkflows[name], list[str]()
            inner = (*stack, name)
            depths[name] = steps(source, inner, names) if isinstance(source, list) else body(source, inner, names)
            shape.repeated_names += [f"{name}.{step}" for step, count in collections.Counter(names).items() if count > 1]
        return depths[name]

    shape.parallel_depth, calls = subworkflow("main", ())
    shape.call_depth = calls + 1
    return shape
