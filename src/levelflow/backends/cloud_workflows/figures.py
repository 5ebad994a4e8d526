"""The Cloud Workflows rows of `levelflow plan`: each limit beside the pipeline's own figure,
measured on the source the compiler generates (when platform parameters are given)."""
from __future__ import annotations

import warnings
from typing import Optional

import yaml

from ...errors import LevelflowError
from ...plan import Plan
from .. import Figure, GenerateOptions
from . import ENGINE
from .compiler import SourceShape, source_shape

__all__ = ["SourceShape", "figures", "generated_sources", "source_shape"]


def generated_sources(plan: Plan, options: Optional[GenerateOptions] = None) -> tuple[Optional[dict[str, str]], str]:
    """The generated files (name -> source text), or None and why not."""
    if plan.params is None:
        return None, "n/a (give --params to generate the source)"
    try:
        with warnings.catch_warnings():  # its warnings repeat figures this report shows anyway
            warnings.simplefilter("ignore")
            return ENGINE.generate(plan, options or GenerateOptions(step_mode=ENGINE.default_mode)), ""  # as `generate` writes them
    except (LevelflowError, ValueError) as exc:
        first = exc.problems[0] if isinstance(exc, LevelflowError) and exc.problems else exc
        return None, f"n/a (not generated: {first})"


def executed_steps(plan: Plan) -> int:
    """Worst case: every async step polls until its time-out, every retry is used (the compiler's
    own per-step costs, so `plan` and `generate` give the same figure)."""
    from .compiler import total_executed_steps

    return total_executed_steps(plan.levels)


MEASURES = ("branches", "parallel_depth", "call_depth", "switch", "assign")


def figures(plan: Plan, options: Optional[GenerateOptions] = None) -> list[Figure]:
    limit = {limit.key: limit for limit in ENGINE.limits}
    sources, why = generated_sources(plan, options)
    widest = max(len(level.threads) for level in plan.levels)
    rows = []
    if sources is None:
        rows.append(limit["source_bytes"].figure(None, why))
        shape, measured = SourceShape(branches=widest, parallel_depth=1), False
        origin = "from the definition, one branch per thread (source not generated)"
    else:
        sizes = {name: len(text.encode("utf-8")) for name, text in sources.items()}
        largest = max(sizes, key=lambda name: (sizes[name], name))
        note = largest if len(sizes) == 1 else f"{largest}; {len(sizes)} files: " + ", ".join(f"{n} {s}" for n, s in sorted(sizes.items()))
        rows.append(limit["source_bytes"].figure(sizes[largest], note))
        shapes = [source_shape(yaml.safe_load(text)) for text in sources.values()]
        shape = SourceShape(**{f: max(getattr(one, f) for one in shapes) for f in MEASURES})
        measured, origin = True, "measured on the generated source"
    rows += [
        limit["branches"].figure(shape.branches, origin),
        limit["parallel_depth"].figure(shape.parallel_depth, origin),
        limit["concurrent_branches"].figure(widest, "the widest level's threads; more wait for a free slot"),
        limit["executed_steps"].figure(executed_steps(plan),
                                       "every async step polls until its time-out (time-out / wait), every retry used"),
        limit["http_timeout"].figure(max(s.call_timeout_seconds for s in plan.steps()), ""),
    ]
    if measured:
        rows += [
            limit["call_depth"].figure(shape.call_depth, origin),
            limit["switch_conditions"].figure(shape.switch, origin),
            limit["assignments"].figure(shape.assign, origin),
        ]
    return rows
