"""Composer engine: compile a Plan into one self-contained Airflow DAG file.

The file is fixed code written by levelflow (`dag_frame.py.tmpl` around the text of
`dag_runtime.py` and of the builder modules, `builders/`, of the executors the pipeline uses;
`dag_source` says what of a module's text the file holds) and one data literal, PIPELINE, of
plain dicts, lists, strings and numbers built from the plan (`literal`: keys sorted, one line
per step). Every text that comes from a definition lives in that literal only, as inert data;
the DAG builds its task groups and tasks from it in loops when Airflow parses the file.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Optional

from ... import protocol
from ...errors import LevelflowError, Problem
from ...executors import (
    AEF, BQ_SAVED_QUERY, CATALOGUE, DATAFLOW_FLEX_TEMPLATE, NATIVE, WORKFLOWS_EXECUTOR, Executor,
    dataflow_job_name, read_job_file, strip_config_block,
)
from ...loader import Document, load_document
from ...plan import Plan, PlanStep, PlanThread
from .. import GenerateOptions
from . import ENGINE, dag_source

TEMPLATE = Path(__file__).with_name("dag_frame.py.tmpl")
MAX_ID_COMPONENT = 60  # keeps level.thread.step.task ids well under Airflow's 250 characters


def generate_files(plan: Plan, options: GenerateOptions) -> dict[str, str]:
    options = ENGINE.options_for(plan, options)
    if plan.params is None:
        raise LevelflowError([Problem(plan.source or plan.name, "platform parameters are needed to generate a Composer DAG")])
    compiler = _Compiler(plan, options)
    data = compiler.pipeline_data()
    if compiler.problems:
        raise LevelflowError(compiler.problems)
    origin = f"# {options.provenance}\n" if options.provenance else ""  # a comment: the docstring stays the module's
    return {f"{plan.name}.py": origin + render(data, compiler.used)}


def check(plan: Plan, options: GenerateOptions) -> list[Problem]:
    """What generation would refuse that the plan alone shows (`validate` runs this, without
    platform parameters or job files): an executor operators mode does not know, a Dataflow
    step whose JOB_NAME gives no Dataflow job name."""
    compiler = _Compiler(plan, options)
    for li, level in enumerate(plan.levels):
        for ti, thread in enumerate(level.threads):
            for si, step in run_order(thread):
                executor = compiler.executor(step, (li, ti, si))
                if options.step_mode == "operators" and executor == DATAFLOW_FLEX_TEMPLATE.name:
                    compiler.check_dataflow_name(step, ("definition", li, "THREADS", ti, "STEPS", si, "JOB_NAME"))
    return compiler.problems


def render(data: dict, used: list[Executor]) -> str:
    """Fixed code around the data literal: no text from a definition reaches code positions.

    The frame's #@@RUNTIME@@ line becomes dag_runtime.py's text, whose marker lines become the
    builders' imports, the builders' code with the BUILDERS registry, and the literal (last).
    """
    imports, chunks = dag_source.builders_text([entry.composer for entry in used])
    builders = "\n".join("\n" + chunk for chunk in chunks)
    registry = "\n\nBUILDERS = {" + "".join(f"\n    {entry.name!r}: build_{entry.composer}," for entry in used) + "\n}"
    text = TEMPLATE.read_text(encoding="utf-8")
    for marker, value in (("#@@RUNTIME@@", dag_source.runtime_text().rstrip("\n")),
                          ("#@@EXECUTOR_IMPORTS@@", "\n".join(imports)),
                          ("#@@EXECUTOR_BUILDERS@@", builders + registry),
                          ("#@@PIPELINE@@", "PIPELINE = " + literal(data))):
        text = dag_source.fill(text, marker, value)
    return text


def literal(data: dict) -> str:
    """`data` as one Python literal, deterministic and compact: dict keys sorted, each value by
    `repr`, one line per top-level key, per executor's job formats, per level, per thread and
    per step (so that a file of 10,000 steps is written in a second and a diff shows the steps
    that changed). Only None, bools, numbers, strings, lists and dicts with string keys are
    data; anything else (a non-finite float, a tuple, an object) is refused."""
    data = _plain(data, "PIPELINE")
    lines = ["{"]
    for key, value in data.items():
        if key == "levels":
            lines.append(f"    {key!r}: [")
            for level in value:
                lines.append("        {" + _head(level, "threads") + "'threads': [")
                for thread in level["threads"]:
                    lines.append("            {" + _head(thread, "steps") + "'steps': [")
                    lines += [f"                {step!r}," for step in thread["steps"]]
                    lines.append("            ]},")
                lines.append("        ]},")
            lines.append("    ],")
        elif key == "job_formats" and value:
            lines += [f"    {key!r}: {{"] + [f"        {name!r}: {formats!r}," for name, formats in value.items()] + ["    },"]
        else:
            lines.append(f"    {key!r}: {value!r},")
    return "\n".join(lines + ["}"])


def _head(record: dict, nested: str) -> str:
    """The items of a level or thread before its nested list, which sorts last."""
    assert list(record)[-1] == nested, record.keys()
    return "".join(f"{key!r}: {value!r}, " for key, value in record.items() if key != nested)


def _plain(value, where: str):
    """`value` with every dict's keys sorted, checked to be literal data."""
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"{where}: keys must be strings, got {sorted(map(repr, value))}")
        return {key: _plain(value[key], f"{where}.{key}") for key in sorted(value)}
    if isinstance(value, list):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: {type(value).__name__} is not data of a DAG literal")


def component(text: str) -> str:
    """A task/group id component: ids are validated names; long ones are shortened uniquely."""
    if len(text) <= MAX_ID_COMPONENT:
        return text
    return f"{text[:MAX_ID_COMPONENT - 9]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def run_order(thread: PlanThread) -> list[tuple[int, PlanStep]]:
    """The steps a thread runs, following NEXT jumps; jumped-over steps never run."""
    return [(i, thread.steps[i]) for i in thread.executed_path()]


class _Compiler:
    def __init__(self, plan: Plan, options: GenerateOptions):
        self.plan, self.options = plan, options
        self.problems: list[Problem] = []
        self.used_names: set[str] = set()
        self._document: Optional[Document] = None

    @property
    def used(self) -> list[Executor]:
        return [entry for name, entry in CATALOGUE.items() if name in self.used_names]

    def pipeline_data(self) -> dict:
        plan, params = self.plan, self.plan.platform()
        levels = [  # first: the steps' data says which executors are used
            {"group_id": f"level_{component(level.level_id)}", "threads": [
                {"group_id": f"thread_{component(thread.thread_id)}",
                 "steps": [self.step_data(step, (li, ti, si)) for si, step in run_order(thread)]}
                for ti, thread in enumerate(level.threads)]}
            for li, level in enumerate(plan.levels)
        ]
        return {
            "dag_id": plan.name,
            "mode": self.options.step_mode,
            "schedule": plan.schedule._asdict() if plan.schedule else None,
            "tags": ["levelflow", self.options.step_mode],
            "doc_md": self.doc_md(),
            "notify": self.notify_data(),
            "deadline_minutes": plan.deadline_minutes,
            "project_id": params.pProjectID,
            "region": params.pRegion,
            "jobs_bucket": params.pJobsDefinitionsBucket,
            "intermediate_url": params.intermediate_url,
            "protocol": {
                "transient_status": sorted(protocol.TRANSIENT_HTTP_STATUS),
                "backoff_seconds": protocol.backoff_delays(),
                "job_id_prefixes": list(protocol.JOB_ID_PREFIXES),
                "running": protocol.RUNNING,
                "success": protocol.SUCCESS,
                "sync_success_words": list(protocol.SYNC_SUCCESS_WORDS),
            },
            "job_formats": self.job_formats(),
            "levels": levels,
        }

    def job_formats(self) -> dict:
        """The job file formats of each executor whose steps have a job_params task (operators
        mode): once per DAG, not once per step; known once the steps' data is made (`used_names`)."""
        if self.options.step_mode != "operators":
            return {}
        return {entry.name: entry.formats_data() for entry in self.used if entry.needs_job_params}

    def notify_data(self) -> Optional[dict]:
        """Where the DAG's callbacks publish the run's report (docs/notifications.md): the topic's
        publish URL (under pGoogleApisBaseUrl, a local fake, when the parameters give one)."""
        notify = self.plan.notify
        if notify is None:
            return None
        base = self.plan.platform().extra.get("pGoogleApisBaseUrl")
        root = f"{base.rstrip('/')}/pubsub.googleapis.com" if base else "https://pubsub.googleapis.com"
        topic = f"projects/{self.plan.platform().pProjectID}/topics/{notify.pubsub_topic}"
        return {"topic": topic, "url": f"{root}/v1/{topic}:publish", "on_failure": notify.on_failure,
                "on_success": notify.on_success}

    def step_data(self, step: PlanStep, where: tuple[int, int, int]) -> dict:
        executor = self.executor(step, where)
        entry = CATALOGUE.get(executor)
        if step.type == "workflows" or self.options.step_mode == "operators":
            if entry is not None:
                self.used_names.add(executor)
        needs_params = entry is not None and entry.needs_job_params and self.options.step_mode == "operators"
        data: dict = {
            "task_id": component(step.job_name),
            "job_id": step.job_id,
            "job_name": step.job_name,
            "type": step.type,
            "executor": executor,
            "function_url": self.plan.function_url(step.executor) if step.executor else None,
            "status_url": self.plan.function_url(step.status_executor) if step.status_executor else None,
            "workflow_id": step.workflow_id,
            "wait_seconds": step.wait_seconds,
            "timeout_seconds": step.call_timeout_seconds if step.type == "sync" else round(step.timeout_minutes * 60),
            "call_timeout_seconds": step.call_timeout_seconds,
            "retries": step.retries,
            "continue_if_fail": step.continue_if_fail,
            "step_properties": step.step_properties,
            "job_format": None, "job_params_object": None, "job_params": None,
        }
        if needs_params and entry is not None:
            data.update(self.job_data(entry, step, where))
        return data

    def job_data(self, entry: Executor, step: PlanStep, where: tuple[int, int, int]) -> dict:
        """How an operators-mode step gets its job parameters, and what its request needs besides.

        `job_format` is the file's format when known at generation time (--jobs-dir), else None:
        the step's job_params task recognises it at run time by the same rule.
        """
        params_object = f"{entry.name}/{step.job_name}.json"
        params, job_format = self.embedded_params(entry, params_object, step) if self.options.jobs_dir else (None, None)
        data = {"job_format": job_format, "job_params_object": params_object, "job_params": params}
        location = ("definition", where[0], "THREADS", where[1], "STEPS", where[2], "JOB_NAME")
        if entry.name == DATAFLOW_FLEX_TEMPLATE.name:
            data["dataflow_job_name"] = dataflow_job_name(step.job_name)
            if job_format != NATIVE:
                self.check_dataflow_name(step, location)
        if entry.name == BQ_SAVED_QUERY.name:
            # The query is embedded unless an operator-native job file (or a bad one) is the step's.
            aef = job_format == AEF or self.options.jobs_dir is None
            data["sql"] = self.embedded_sql(step, location) if self.options.dataform_dir and aef else None
        return data

    def check_dataflow_name(self, step: PlanStep, location: tuple) -> None:
        if not dataflow_job_name(step.job_name):
            self.problem(location, f"JOB_NAME {step.job_name!r} gives an empty Dataflow job name (the AEF rule: "
                                   "lower-cased, only a-z, 0-9 and '+' kept, leading digits dropped); "
                                   "give the step a JOB_NAME with a letter")

    def executor(self, step: PlanStep, where: tuple[int, int, int]) -> str:
        """The executor the Composer engine runs: COMPOSER_STEP first, a known one in operators mode."""
        if step.type == "workflows":
            return WORKFLOWS_EXECUTOR
        name = step.composer_step or step.executor or ""  # validation requires one for these types
        if self.options.step_mode == "functions" or name in CATALOGUE:
            return name
        key = "COMPOSER_STEP" if step.composer_step else ("FUNCTION_ID_NAME" if step.type == "async" else "FUNCTION_NAME")
        known = ", ".join(sorted(set(CATALOGUE) - {WORKFLOWS_EXECUTOR}))
        self.problem(("definition", where[0], "THREADS", where[1], "STEPS", where[2], key),
                     f"unknown executor {name!r} for the composer engine (operators mode); known executors: {known} "
                     f"(or generate with --step-mode functions to call any executor function over HTTP)")
        return name

    def embedded_params(self, entry: Executor, params_object: str, step: PlanStep) -> tuple[Optional[dict], Optional[str]]:
        """The job file read from --jobs-dir at generation time and checked: (its content, its format).

        A missing file is an error, except for an executor with a format that has no job file
        (BigQuery: then the step is in that format).
        """
        assert self.options.jobs_dir is not None  # only called with --jobs-dir
        path = Path(self.options.jobs_dir) / params_object
        value, job_format, problems = read_job_file(entry, path, step.job_name)
        self.problems.extend(Problem(str(path), message) for message in problems)
        return value, job_format

    def embedded_sql(self, step: PlanStep, location: tuple) -> Optional[str]:
        """A BigQuery step's query read from --dataform-dir, its config block dropped."""
        assert self.options.dataform_dir is not None  # only called with --dataform-dir
        path = Path(self.options.dataform_dir) / "definitions" / self.plan.name / f"{step.job_name}.sqlx"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problem(location, f"{path}: Dataform file not found in --dataform-dir (a bq-saved-query-executor step "
                                   f"runs definitions/<pipeline name>/<JOB_NAME>.sqlx of the repository)")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Problem(str(path), f"cannot read the Dataform file: {exc}"))
            return None
        try:
            return strip_config_block(text)
        except ValueError as exc:
            self.problems.append(Problem(str(path), str(exc)))
            return None

    def problem(self, path: tuple, message: str) -> None:
        if self.plan.source is None:
            self.problems.append(Problem(self.plan.name, message, path))
            return
        if self._document is None:
            self._document = load_document(self.plan.source)
        self.problems.append(self._document.problem(path, message))

    def doc_md(self) -> str:
        plan = self.plan
        lines = [f"# {plan.name}", ""]
        if plan.description:
            lines += [plan.description, ""]
        lines += ["| level | threads | steps |", "| --- | --- | --- |"]
        for level in plan.levels:
            steps = sum(len(thread.steps) for thread in level.threads)
            lines.append(f"| {level.level_id} | {len(level.threads)} | {steps} |")
        lines += ["", f"Generated by levelflow from a pipeline definition ({self.options.step_mode} mode)."]
        return "\n".join(lines)
