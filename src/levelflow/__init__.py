"""levelflow: compile LEVEL/THREAD/STEP pipeline definitions into Cloud Workflows and Airflow."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The API is imported when first used (PEP 562), so that a command pays only for what it runs
_API = {
    "find_definitions": "discovery", "generate": "api", "load_params": "api", "load_pipeline": "api", "load_plan": "api",
    "LevelflowError": "errors", "Problem": "errors", "Plan": "plan", "build_plan": "plan",
}

if TYPE_CHECKING:
    from .api import generate, load_params, load_pipeline, load_plan
    from .discovery import find_definitions
    from .errors import LevelflowError, Problem
    from .plan import Plan, build_plan

__all__ = [
    "LevelflowError",
    "Plan",
    "Problem",
    "build_plan",
    "find_definitions",
    "generate",
    "load_params",
    "load_pipeline",
    "load_plan",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'levelflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value
