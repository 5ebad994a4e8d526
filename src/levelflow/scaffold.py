"""`levelflow init`: a new repository of pipelines that validates and generates from day one."""
from __future__ import annotations

import json
from pathlib import Path

from . import __version__
from .errors import LevelflowError, Problem

# Where pre-commit fetches levelflow's hook definitions (.pre-commit-hooks.yaml) from by
# default; `levelflow init --hook-repo URL` names another Git URL (a fork, a mirror).
PRE_COMMIT_REPO = "https://github.com/levelflow/levelflow"
SCAFFOLD_ENGINES = ("cloud_workflows", "composer")  # the engines `init` writes an example definition for


def example_definition(engine: str) -> dict:
    """Two parallel ingestions, then a transformation, then a report that may fail harmlessly."""
    executor_key = "COMPOSER_STEP" if engine == "composer" else "FUNCTION_ID_NAME"

    def job(job_id, name, executor, wait, timeout, estimate, **extra):
        return {"JOB_ID": job_id, "JOB_NAME": name, "TYPE": "async", executor_key: executor,
                "WAIT_TIME_SECONDS": wait, "ASYNC_TIMEOUT_LOOP_IN_MINUTES": timeout,
                "ESTIMATED_MINUTES": estimate, **extra}

    return {
        "description": "Example pipeline: ingest two sources in parallel, transform them, refresh a report.",
        "engine": engine,
        "schedule": "0 4 * * *",
        "definition": [
            {"LEVEL_ID": "1", "THREADS": [
                {"THREAD_ID": "orders", "STEPS": [
                    job("ingest_orders", "ingest_orders_jdbc", "dataflow-flextemplate-job-executor", "30", "45", "10"),
                ]},
                {"THREAD_ID": "customers", "STEPS": [
                    job("ingest_customers", "ingest_customers_spark", "dataproc-serverless-job-executor", "30", "45", "12"),
                ]},
            ]},
            {"LEVEL_ID": "2", "THREADS": [
                {"THREAD_ID": "transform", "STEPS": [
                    job("transform_sales", "transform_sales", "dataform-tag-executor", "20", "30", "8"),
                    job("refresh_report", "refresh_sales_report", "bq-saved-query-executor", "10", "10", "2",
                        CONTINUE_IF_FAIL="True"),
                ]},
            ]},
        ],
    }


PARAMETERS = [
    {"ParameterKey": "pProjectID", "ParameterValue": "my-orchestration-dev"},
    {"ParameterKey": "pRegion", "ParameterValue": "us-central1"},
    {"ParameterKey": "pFunctionIntermediateName", "ParameterValue": "orch-framework-intermediate"},
    {"ParameterKey": "pJobsDefinitionsBucket", "ParameterValue": "my-orchestration-dev-jobs"},
]

CI_WORKFLOW = f"""\
# Validates every pipeline definition and generates the orchestration code on each push and
# pull request; the generated files are kept as a build artifact.
name: levelflow

on:
  push:
    branches: [main]
  pull_request:

jobs:
  validate-and-generate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pip install levelflow=={__version__}
      - run: levelflow validate workflow-definitions/
      - run: levelflow generate workflow-definitions/ --params workflow-definitions/platform-parameters-dev.json --out build/
      - uses: actions/upload-artifact@v4
        with:
          name: generated-orchestration
          path: build/
"""

def pre_commit_config(hook_repo: str) -> str:
    # json.dumps quotes the URL as a YAML string, whatever it contains
    return f"""\
# Run `pre-commit install` once; every commit then validates the definitions it changes.
repos:
  - repo: {json.dumps(hook_repo)}
    rev: v{__version__}
    hooks:
      - id: levelflow-validate
"""


README = """\
# Pipelines

Batch pipelines described with [levelflow](https://pypi.org/project/levelflow/): LEVELs run one
after another, the THREADs of a level run in parallel, the STEPs of a thread run in order.

| path | what |
| --- | --- |
| `workflow-definitions/` | one definition per pipeline (JSON or YAML) |
| `workflow-definitions/platform-parameters-dev.json` | the dev environment's platform parameters; one file per environment |
| `.github/workflows/levelflow.yaml` | CI: validates every definition and generates the orchestration into `build/` |
| `.pre-commit-config.yaml` | validates definitions before each commit (`pre-commit install`) |

Everyday commands:

```bash
pip install levelflow
levelflow validate workflow-definitions/
levelflow plan workflow-definitions/example_pipeline.json
levelflow graph workflow-definitions/example_pipeline.json -o example_pipeline.html
levelflow generate workflow-definitions/ --params workflow-definitions/platform-parameters-dev.json --out build/
```

`levelflow schema -o definition.schema.json` writes the definition format's JSON Schema for
your editor.
"""


def scaffold_files(engine: str = "cloud_workflows", hook_repo: str = PRE_COMMIT_REPO) -> dict[str, str]:
    """Relative path -> text of every file `levelflow init` writes."""
    return {
        "workflow-definitions/example_pipeline.json": json.dumps(example_definition(engine), indent=2) + "\n",
        "workflow-definitions/platform-parameters-dev.json": json.dumps(PARAMETERS, indent=2) + "\n",
        ".github/workflows/levelflow.yaml": CI_WORKFLOW,
        ".pre-commit-config.yaml": pre_commit_config(hook_repo),
        ".gitignore": "build/\n",
        "README.md": README,
    }


def init_repository(directory: str | Path, *, engine: str = "cloud_workflows", force: bool = False,
                    hook_repo: str = PRE_COMMIT_REPO) -> list[Path]:
    """Write the scaffold into `directory`; existing files stop everything unless `force`."""
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise LevelflowError([Problem(str(root), "exists and is not a directory")])
    files = {root / name: text for name, text in scaffold_files(engine, hook_repo).items()}
    existing = [path for path in files if path.exists()]
    if existing and not force:
        raise LevelflowError([Problem(str(path), "already exists; nothing was written (use --force to overwrite)") for path in existing])
    from .writer import write_all_atomic  # (imported when writing: the CLI imports this module for SCAFFOLD_ENGINES)

    write_all_atomic(files)
    return list(files)
