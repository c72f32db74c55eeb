#!/usr/bin/env bash
# The one-shot `airflow-init` service of docker-compose.yaml: migrate Airflow's metadata
# database, then give the admin user its password.
#
# Airflow runs with its simple auth manager: users come from
# AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (admin:admin) and their passwords from the JSON
# file AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE, which this script writes from
# AIRFLOW_ADMIN_PASSWORD (.env) on a volume the API server reads.  For more than a few
# trusted users switch to the FAB or Keycloak auth manager.
set -euo pipefail
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set}"

airflow db migrate

python - <<'PY'
import json, os, tempfile
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
users = [u.split(":")[0] for u in os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(",") if u]
os.makedirs(os.path.dirname(path), exist_ok=True)
passwords = {}
if os.path.exists(path):
    with open(path) as f:
        passwords = json.load(f)
passwords["admin"] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
missing = [u for u in users if u not in passwords]
if missing:
    raise SystemExit(f"no password for {missing}: add them to {path}")
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
with os.fdopen(fd, "w") as f:
    json.dump(passwords, f)
os.chmod(tmp, 0o600)
os.replace(tmp, path)
print(f"airflow-init: passwords for {sorted(passwords)} in {path}")
PY
