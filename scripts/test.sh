#!/usr/bin/env bash
# Install levelflow and everything its tests need (from pyproject.toml extras), then run the
# whole test suite. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k workflows`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[test]'
# The Terraform providers' schemas (tests/provider_schema.py): data files only, so without the
# jsii runtime they would pull in.
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps 'cdktf-cdktf-provider-google==16.12.1' \
  'cdktf-cdktf-provider-google-beta==16.12.1' 'cdktf-cdktf-provider-external==11.0.1' 'cdktf-cdktf-provider-local==11.1.1'
# Debian's Chromium (the HTML graph's screenshot and Mermaid checks) and tmux (the live view in a
# real terminal). The tests that need them skip when they could not be installed, so a failure
# here never aborts the suite; it is said, and the skips say why.
missing=""; command -v chromium >/dev/null || missing=" chromium"; command -v tmux >/dev/null || missing="$missing tmux"
if [ -n "$missing" ]; then
  (apt-get update -qq && apt-get install -y -qq $missing) >/dev/null 2>&1 || echo "test.sh: could not install$missing; their tests will skip" >&2
fi
[ -s .cache/mermaid/mermaid.min.js ] || (mkdir -p .cache/mermaid && cd .cache/mermaid \
  && npm pack --silent mermaid@11 >/dev/null 2>&1 && tar xzf mermaid-*.tgz package/dist/mermaid.min.js \
  && mv package/dist/mermaid.min.js . && rm -rf package mermaid-*.tgz) || true
bash scripts/airflow-envs.sh  # real Airflow 2 and 3 for the Composer tests
# Lint and type checks (configured in pyproject.toml) before the tests.
.venv/bin/ruff check src tests scripts benchmarks terraform workflows_generator.py
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
