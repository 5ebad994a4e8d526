"""The Cloud Workflows engine: a Plan becomes Google Cloud Workflows YAML (compiler.py).

This declaration is all the rest of levelflow knows about the engine (see `levelflow.backends`);
the compiler and the figures are imported only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import Engine, Figure, GenerateOptions, Limit

if TYPE_CHECKING:
    from ...errors import Problem
    from ...plan import Plan

QUOTAS = "https://cloud.google.com/workflows/quotas"
PARALLEL = "https://cloud.google.com/workflows/docs/reference/syntax/parallel-steps"

LIMITS = (
    Limit("source_bytes", "source size (largest file)", 128_000, "bytes", QUOTAS,
          "the pipeline is split into `<name>-part-N` workflows of whole levels, run in order by `<name>` "
          "(the documented 128 KB, counted in decimal kilobytes to stay on the safe side)"),
    Limit("variable_bytes", "variables of one execution (estimated)", 512_000, "bytes", QUOTAS,
          "estimated (pipeline data, step records, bounded errors); split when above; the parent lists part outcomes "
          "when every record would not fit"),
    Limit("branches", "branches in one parallel step", 10, "", PARALLEL,
          "levels of 11 to 100 threads become groups of at most 10 branches; more is an error"),
    Limit("parallel_depth", "parallel nesting depth", 2, "", PARALLEL, "groups nest one parallel step in another, no deeper"),
    Limit("concurrent_branches", "branches running at once", 20, "", QUOTAS, "more threads wait for a free slot"),
    Limit("executed_steps", "steps executed per execution (worst case)", 100_000, "", QUOTAS,
          "a step whose polling to its time-out cannot fit is an error (naming the WAIT_TIME_SECONDS that would fit); "
          "a run, or a split parent's polls of its parts, that could exceed it is warned about"),
    Limit("http_timeout", "HTTP call time-out (longest)", 1800, "s", QUOTAS, "TIMEOUT_SECONDS is 1..1800"),
    Limit("call_depth", "call-stack depth", 20, "", QUOTAS, "checked on the generated source"),
    Limit("switch_conditions", "conditions in one switch", 50, "", QUOTAS,
          "checked on the generated source; time-out switches nest by ranges"),
    Limit("assignments", "entries in one assign", 50, "", QUOTAS, "checked on the generated source"),
    Limit("expression_chars", "characters in one expression", 400, "", QUOTAS, "checked by the test suite's rules checker"),
    Limit("execution_seconds", "execution duration", 31_536_000, "s", QUOTAS,
          "a workflows step's time-out is at most one year, the longest execution"),
)


def _generate_files(plan: "Plan", options: GenerateOptions) -> dict[str, str]:
    from . import compiler

    return compiler.generate_files(plan, options)


def _check(plan: "Plan", options: GenerateOptions) -> "list[Problem]":
    from . import compiler

    return compiler.check(plan, options)


def _figures(plan: "Plan", options: GenerateOptions) -> list[Figure]:
    from .figures import figures

    return figures(plan, options)


ENGINE = Engine(
    name="cloud_workflows",
    title="Cloud Workflows",
    step_modes=("functions", "native"),
    inputs={"jobs_dir": ("native",)},
    generate_files=_generate_files,
    check=_check,
    figures=_figures,
    limits=LIMITS,
)
