#!/usr/bin/env bash
# Create the two real Airflow environments the Composer tests import generated DAGs in:
#   .venv-airflow3  Airflow 3 (latest 3.x) + Google and Apache Beam providers
#   .venv-airflow2  Airflow 2.11 + the same providers (they still support Airflow 2.11)
# Idempotent: an environment whose stamp matches its pins is left as it is. Each also gets an
# initialised metadata database (SQLite, in <venv>/airflow-home) for `dag.test()`.
# Versions are pinned so that they resolve from PyPI alone (no constraint files needed).
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
PROVIDERS="apache-airflow-providers-google==22.8.0 apache-airflow-providers-apache-beam==6.3.1 apache-beam==2.77.0"

make_env() {
  local dir=$1 pins="$2"
  local stamp="$dir/.levelflow-stamp"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then return; fi
  echo "airflow-envs: creating $dir ($pins)" >&2
  rm -rf "$dir"
  "$UV" venv --quiet --python python3 "$dir"
  # shellcheck disable=SC2086  # pins are word-split on purpose
  "$UV" pip install --quiet --python "$dir/bin/python" $pins
  mkdir -p "$dir/airflow-home"
  AIRFLOW_HOME="$PWD/$dir/airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False \
    "$dir/bin/airflow" db migrate >"$dir/airflow-home/migrate.log" 2>&1
  echo "$pins" >"$stamp"
}

make_env .venv-airflow3 "apache-airflow==3.3.2 $PROVIDERS" &
airflow3=$!
make_env .venv-airflow2 "apache-airflow==2.11.2 $PROVIDERS" &
airflow2=$!
status=0
wait "$airflow3" || status=1
wait "$airflow2" || status=1
exit "$status"
