#!/usr/bin/env bash
# `make airflow`: Apache Airflow 3 standalone for this project, on this machine only.
#
#   AIRFLOW_HOME      var/airflow (SQLite metadata database, logs, generated password file)
#   dags folder       the project's dags/
#   UI and REST API   http://127.0.0.1:${AIRFLOW_PORT:-8080} (loopback only)
#   spark_default     $AIRFLOW_CONN_SPARK_DEFAULT, or host local[*]: Spark runs in the task's
#                     own spark-submit; export a spark://, yarn or k8s:// URI to run elsewhere
#   movierec          MOVIEREC_* from the environment; warehouse, store and data default to
#                     var/warehouse, var/movierec.db and data/ml-latest-small (make data)
#
# Login: user `admin`; Airflow generates its password on first start and keeps it in
# $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated (printed below once ready).
# Ctrl-C stops every Airflow process (airflow standalone runs in the foreground).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PORT=${AIRFLOW_PORT:-8080}
URL="http://127.0.0.1:$PORT"

export PATH="$VENV/bin:$PATH"                      # airflow, spark-submit
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/var/airflow}
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$PORT
export AIRFLOW__API__BASE_URL=$URL                 # tasks reach the execution API here
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}
# without this connection SparkSubmitOperator would silently submit to master `yarn`
export AIRFLOW_CONN_SPARK_DEFAULT=${AIRFLOW_CONN_SPARK_DEFAULT:-'{"conn_type": "spark", "host": "local[*]"}'}
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$VENV/bin/python}
export MOVIEREC_WAREHOUSE=${MOVIEREC_WAREHOUSE:-$ROOT/var/warehouse}
export MOVIEREC_DB_URL=${MOVIEREC_DB_URL:-sqlite:///$ROOT/var/movierec.db}
export MOVIEREC_DATA_DIR=${MOVIEREC_DATA_DIR:-$ROOT/data/ml-latest-small}
export MOVIEREC_JOBS_ZIP=${MOVIEREC_JOBS_ZIP-$ROOT/var/dist/movierec.zip}   # empty: no --py-files

mkdir -p "$AIRFLOW_HOME" "$ROOT/var"
# the movierec library as the --py-files zip, built once here for this Airflow
[ -z "$MOVIEREC_JOBS_ZIP" ] || python -m movierec.spark.package "$MOVIEREC_JOBS_ZIP" >/dev/null

PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"

# in the background: wait until the API answers, then say where and how to log in
python - "$URL" "$PASSWORDS" "$$" <<'EOF' &
import json, os, sys, time, urllib.request
url, passwords, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(0)  # Airflow stopped; its own output says why
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2):
            pass
        if os.path.exists(passwords):
            break
    except OSError:
        pass
    time.sleep(1)
else:
    sys.exit(f"Airflow did not answer on {url} within 300 s")
try:
    password = json.load(open(passwords)).get("admin", "?")
except (OSError, ValueError):
    password = "?"
print(f"""
==================================================================
 Airflow UI and REST API: {url}
 login: admin   password: {password}
   (kept in {passwords})
 DAG: movie_recommender (dags/movie_recommender.py); unpause it, then
 trigger it from the UI (the trigger form shows its params) or see
 dags/README.md for the REST API.  Ctrl-C stops Airflow.
==================================================================
""", flush=True)
EOF

# in the foreground, in place of this shell: Ctrl-C reaches Airflow, which stops its parts
exec airflow standalone
