#!/usr/bin/env bash
# Install levelflow and everything its tests need (from pyproject.toml extras), then run the
# whole test suite. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k workflows`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[test]'
bash scripts/airflow-envs.sh  # real Airflow 2 and 3 for the Composer tests
exec .venv/bin/python -m pytest "$@"
