"""End to end, as a person would do it (`make e2e`):

1. start Airflow with `scripts/airflow-standalone.sh` (what `make airflow` runs) on a free
   loopback port, with a throwaway AIRFLOW_HOME, store and warehouse, on small generated data;
2. log in through the REST API (`POST /auth/token` with the generated admin password),
   unpause the DAG and trigger it (`POST /api/v2/dags/movie_recommender/dagRuns` with
   `logical_date: null` and params in `conf`);
3. wait, bounded, for the run to succeed, every task a real spark-submit;
4. read the result through the movierec API (`serving.create_app`):
   `GET /users/<id>/recommendations` answers from the new run.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dag_helpers import DAG_ID, PROJECT, airflow_env, small_settings_env

from movierec.stages.pipeline import STAGES
from tests.ports import free_port

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1800)]

STARTUP_LIMIT_S = 300
RUN_LIMIT_S = 1200
TOP_K = 5
SPARK_INFO = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ")


class Api:
    """A tiny client of Airflow's REST API v2 (urllib, JSON, bearer token)."""

    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body=None, expect=(200,)):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        if status not in expect:
            raise AssertionError(f"{method} {path} -> {status}: {text[:2000]}")
        return status, (json.loads(text) if text else None)


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C as a person would (the script has become `airflow standalone`, which stops its
    parts), then make sure nothing of this test's own process group is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_until(what: str, check, limit_s: float, proc: subprocess.Popen, log: Path, every_s: float = 2.0):
    deadline = time.monotonic() + limit_s
    while True:
        result = check()
        if result:
            return result
        if proc.poll() is not None:
            pytest.fail(
                f"airflow standalone exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-6000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {limit_s:.0f} s:\n{log.read_text()[-6000:]}")
        time.sleep(every_s)


def task_logs(home: Path, run_id: str, task_ids) -> str:
    """The last events of the given tasks' logs (Airflow 3 writes JSON lines), for a failure message."""
    parts = []
    for task_id in task_ids:
        for path in sorted((home / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id={task_id}/*.log")):
            events = []
            for line in path.read_text(errors="replace").splitlines():
                try:
                    event = str(json.loads(line).get("event", ""))
                except ValueError:
                    event = line
                if not SPARK_INFO.match(event):  # Spark's own INFO chatter hides the error
                    events.append(event)
            parts.append(f"--- {task_id} ({path.name})\n" + "\n".join(events[-80:]))
    return "\n".join(parts)[-15000:]


@pytest.fixture
def airflow_standalone(tmp_path, small_data, jobs_zip):
    """`scripts/airflow-standalone.sh` on free loopback ports; yields (api base URL, AIRFLOW_HOME,
    settings env, log path); stopped afterwards, also when the test fails."""
    home = tmp_path / "airflow"
    port = free_port()
    settings_env = small_settings_env(tmp_path, small_data, jobs_zip)
    env = airflow_env(
        home,
        spark_master="local[2]",
        AIRFLOW_PORT=str(port),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        MOVIEREC_DAG_SCHEDULE="none",  # only the run this test triggers
        MOVIEREC_DAG_RETRIES="0",  # a failing stage fails the test now, not after backoff
        VENV=str(Path(os.sys.executable).parent.parent),
        **settings_env,
    )
    log = tmp_path / "standalone.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(PROJECT / "scripts" / "airflow-standalone.sh")],
            env=env,
            cwd=PROJECT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", home, settings_env, log, proc
    finally:
        stop(proc)


def test_trigger_through_the_rest_api_and_read_recommendations_from_the_api(airflow_standalone, small_data):
    base, home, settings_env, log, proc = airflow_standalone
    api = Api(base)
    started = time.monotonic()

    # the script prints the banner once the API answers and the password file exists
    wait_until("Airflow banner", lambda: "login: admin" in log.read_text(), STARTUP_LIMIT_S, proc, log)
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    assert f"password: {password}" in log.read_text()
    _, health = api.call("GET", "/api/v2/monitor/health")
    assert health["metadatabase"]["status"] == "healthy"

    api.call("GET", f"/api/v2/dags/{DAG_ID}", expect=(401, 403))  # no token, no access
    _, token = api.call("POST", "/auth/token", {"username": "admin", "password": password}, expect=(200, 201))
    api.token = token["access_token"]

    def dag_parsed():
        status, _ = api.call("GET", f"/api/v2/dags/{DAG_ID}", expect=(200, 404))
        return status == 200

    wait_until("parsed DAG", dag_parsed, STARTUP_LIMIT_S, proc, log)
    _, dag = api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert dag["is_paused"] is False

    # params are checked against their JSON schema before a run exists
    api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"top_k": 0}}, expect=(400,))
    # tiny models on tiny synthetic data need not beat popularity: the quality gate is the
    # jobs tests' subject, here it is skipped through the trigger form's param
    conf = {"top_k": TOP_K, "skip_quality_gate": True}
    _, run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    assert run["conf"] == conf
    ready_s = time.monotonic() - started

    def finished():
        _, state = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        return state["state"] if state["state"] in ("success", "failed") else None

    state = wait_until("finished run", finished, RUN_LIMIT_S, proc, log, every_s=1)
    _, tis = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
    failed = [t for t, s in states.items() if s == "failed"]
    assert state == "success", f"run {run_id}: {states}\n{task_logs(home, run_id, failed)}"
    assert states == {stage: "success" for stage in STAGES}
    run_s = time.monotonic() - started - ready_s
    print(f"\ne2e: Airflow ready and run triggered after {ready_s:.0f} s, run took {run_s:.0f} s")

    # the answer, through the movierec API reading the store the run published to
    from movierec.config import from_env
    from serving import create_app

    app = create_app({"SETTINGS": from_env(settings_env), "TESTING": True})
    client = app.test_client()
    with open(small_data / "ratings.csv", newline="") as f:
        users = sorted({int(row["userId"]) for row in csv.DictReader(f)})
    for user in (users[0], users[len(users) // 2], users[-1]):
        answer = client.get(f"/users/{user}/recommendations?k={TOP_K}")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert body["run_id"] == run_id, "the API serves the run Airflow just published"
        assert body["source"] == "precomputed"
        items = body["items"]
        assert len(items) == TOP_K
        scores = [item["score"] for item in items]
        assert scores == sorted(scores, reverse=True)
