"""Backends compile a Plan into files. One module per engine, found through this registry.

Each engine module defines `generate_files(plan, options) -> dict[str, str]`: relative file
name -> file text. Modules are imported on first use so that `levelflow validate` never pays
for an engine it does not need.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..plan import Plan

ENGINE_MODULES = {
    "cloud_workflows": "levelflow.backends.cloud_workflows.compiler",
    "composer": "levelflow.backends.composer.compiler",
}
STEP_MODES = ("operators", "functions")


@dataclass(frozen=True)
class GenerateOptions:
    jobs_dir: Optional[Path] = None  # composer: embed job parameters read from this local copy
    step_mode: str = "operators"  # composer: native operators, or executor functions over HTTP
    # composer operators mode: a local checkout of the Dataform repository; each BigQuery step's
    # definitions/<pipeline>/<JOB_NAME>.sqlx is read from it and embedded at generation time
    dataform_dir: Optional[Path] = None


Backend = Callable[[Plan, GenerateOptions], "dict[str, str]"]


def backend_for(engine: str) -> Backend:
    return importlib.import_module(ENGINE_MODULES[engine]).generate_files
