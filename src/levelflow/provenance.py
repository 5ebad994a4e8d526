"""Where a generated file comes from, said in its first line: the levelflow version, the
definition file (relative to its project) and a digest of what was compiled.

The line is the same wherever and whenever the same definition and parameters are compiled:
the path is relative to the nearest directory above the definition that holds `.git`,
`pyproject.toml` or `levelflow.toml` (its bare name when there is none), and the digest is
taken over the definition and parameters as levelflow read them (not their formatting) and the
step mode, so that a reformatted file keeps its digest and a changed value changes it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from . import __version__

if TYPE_CHECKING:
    from .plan import Plan

PROJECT_MARKERS = (".git", "pyproject.toml", "levelflow.toml")


def source_label(source: Optional[str]) -> str:
    """The definition's path from its project's root, with '/' separators; its name without one."""
    if not source:
        return "(no file)"
    path = Path(source).resolve()
    for folder in path.parents:
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return Path(os.path.relpath(path, folder)).as_posix()
    return path.name


def digest(plan: "Plan", step_mode: Optional[str]) -> str:
    """sha256 (its first 16 hex digits) of the plan's content (engine included), its parameters and the step mode."""
    content = {"plan": dataclasses.replace(plan, source=None), "step_mode": step_mode}
    text = json.dumps(content, sort_keys=True, ensure_ascii=True, default=_fields)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fields(value: Any) -> Any:
    """json.dumps' fallback: a dataclass as its fields (what dataclasses.asdict would give, one
    level at a time: asdict copies the whole plan first, a fifth of a 10,000-step generate),
    anything else as its text. NamedTuples (the plan's steps, the parameters) are lists to json."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return str(value)


def provenance_line(plan: "Plan", step_mode: Optional[str]) -> str:
    """One line of ASCII text without a line break (the path is written as a JSON string), to
    follow a comment sign in any generated language."""
    return (f"levelflow {__version__}; source {json.dumps(source_label(plan.source))}; "
            f"definition and parameters sha256 {digest(plan, step_mode)}")
