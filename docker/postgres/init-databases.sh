#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d):
# Airflow's metadata and the recommendation store live in separate databases, each owned
# by its own role, so neither application can touch the other's tables.
# Passwords come from the environment (docker-compose.yaml passes them from .env).
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${MOVIEREC_DB_PASSWORD:?MOVIEREC_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
     -v airflow_password="$AIRFLOW_DB_PASSWORD" -v movierec_password="$MOVIEREC_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE movierec LOGIN PASSWORD :'movierec_password';
CREATE DATABASE movierec OWNER movierec;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE movierec FROM PUBLIC;
SQL
echo "init-databases: created databases airflow and movierec"
