"""levelflow: compile LEVEL/THREAD/STEP pipeline definitions into Cloud Workflows and Airflow."""
from .api import find_definitions, generate, load_params, load_pipeline, load_plan
from .errors import LevelflowError, Problem
from .plan import Plan, build_plan

__version__ = "0.1.0"

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
