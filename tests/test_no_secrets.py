"""A planted password never leaves the process: not into the store, the warehouse, the report,
the logs of a whole run, nor any answer of the API.

The run is the session's `cli_pipeline` (tests/conftest.py): `movierec pipeline` as a real
process with a password in its --db-url (the throwaway PostgreSQL trusts local connections, so
any password works and the run really uses that URL).  Everything the system writes or says is
then searched for it, as bytes, plain and URL-encoded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dags.dag_helpers import base_env, small_settings_env
from tests.serving.server import Served

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

PROJECT = Path(__file__).resolve().parents[1]


def movierec(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "movierec.cli", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"movierec {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def get(base: str, path: str, body: dict | None = None) -> tuple[int, str, str]:
    """(status, headers, body) of one call, errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, str(answer.headers), answer.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, str(err.headers), err.read().decode(errors="replace")


def store_dump(url: str) -> str:
    """Every row of every table in the store, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            return "\n".join(
                f"{table}: {row}" for table in tables for row in conn.execute(sa.text(f'select * from "{table}"'))
            )
    finally:
        engine.dispose()


def files_text(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()}


def test_a_planted_password_is_found_nowhere(cli_pipeline, small_data, jobs_zip, tmp_path):
    db_url, planted, run_id = cli_pipeline.db_url, cli_pipeline.password, cli_pipeline.run_id
    assert planted in db_url
    warehouse = cli_pipeline.root / "warehouse"
    env = base_env(
        **{
            **small_settings_env(tmp_path, small_data, jobs_zip),
            "PYTHONPATH": str(PROJECT),
            "MOVIEREC_DB_URL": db_url,
            "MOVIEREC_WAREHOUSE": str(warehouse),
            "MOVIEREC_SKIP_QUALITY_GATE": "true",
            "MOVIEREC_REPORTS_DIR": str(tmp_path / "reports"),
            # the first live call starts the worker's Spark: slow on a busy machine, and not the point here
            "MOVIEREC_LIVE_TIMEOUT": "240",
        }
    )
    # the run: `movierec pipeline` with the password in its --db-url (the session's `cli_pipeline`)
    said: dict[str, str] = {"pipeline": cli_pipeline.done.stdout + cli_pipeline.done.stderr}
    assert "published" in said["pipeline"]
    for command in (["config"], ["runs"], ["runs", "--json"], ["report", "--run-id", run_id]):
        done = movierec(*command, env=env)
        said[" ".join(command)] = done.stdout + done.stderr

    server = Served(db_url, tmp_path / "serve", workers=1, env={k: v for k, v in env.items() if k != "MOVIEREC_DB_URL"})
    try:
        server.wait_ready()
        base = server.base
        document = json.loads(get(base, "/openapi.json")[2])
        assert "/runs/active" in document["paths"]
        calls = [
            "/",
            "/docs",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/runs/active",
            "/users/1/recommendations",
            "/users/1/recommendations?k=15",  # past the stored ten: scored live, in Spark
            "/users/99999/recommendations",
            "/users/x/recommendations",
            "/movies/1",
            "/movies/1/similar",
            "/movies/999999",
            "/reports/latest.html",
            "/no-such-route",
        ]
        for path in calls:
            status, headers, body = get(base, path)
            said[f"GET {path}"] = f"{status}\n{headers}\n{body}"
        active = json.loads(get(base, "/runs/active")[2])
        assert active["run_id"] == run_id and active["params"]["code_version"] and active["params"]["inputs"]
        for body in ({"userId": 1, "movieIds": [1, 2, 3]}, {"userId": 1, "movieIds": [424242]}, {"userId": "x"}):
            status, headers, text = get(base, "/recommend", body)
            said[f"POST /recommend {body}"] = f"{status}\n{headers}\n{text}"
        assert said["GET /users/1/recommendations?k=15"].startswith("200"), said["GET /users/1/recommendations?k=15"]
    finally:
        server.stop()
    said["gunicorn log"] = server.log_path.read_text(errors="replace")
    said["store"] = store_dump(db_url)
    assert run_id in said["store"]

    secrets = [planted, urllib.parse.quote(planted)]
    for where, text in said.items():
        for secret in secrets:
            assert secret not in text, f"the password is in {where}"
    for path, data in files_text(warehouse, tmp_path / "reports").items():
        for secret in secrets:
            assert secret.encode() not in data, f"the password is in {path}"
    # a run's warehouse, report and logs are the places a leak would land: they were all there
    assert any(p.endswith(".html") for p in files_text(tmp_path / "reports"))
    assert os.path.isdir(warehouse / "runs" / run_id)
