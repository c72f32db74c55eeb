"""The whole DAG under Airflow's own `dag.test()`: real spark-submit calls on small data.

Airflow runs in a subprocess with its own AIRFLOW_HOME, a SQLite metadata database and
`spark_default` = local[2], exactly as a deployment would be configured through the
environment.  The first run is triggered with params (top_k=7, skip the quality gate)
and must publish: the store's active run is that run, with recommendations for every
user, 7 each.  A second run whose data directory does not exist must fail at ingest, run
nothing after it, and leave the first run serving.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from dag_helpers import DAG_ID, DAGS_DIR, STAGES, airflow_env, small_settings_env

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1500)]

DRIVER = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]
results = []
for conf in json.loads(sys.argv[3]):
    dr = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    results.append({"run_id": dr.run_id, "state": str(dr.state), "tasks": states})
print("RESULT " + json.dumps(results), flush=True)
"""


def run_dag_test(env: dict[str, str], confs: list[dict], log: Path) -> list[dict]:
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(DAGS_DIR), DAG_ID, json.dumps(confs)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1400,
        )
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"dag.test driver failed (exit {done.returncode}):\n{text[-6000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def task_output(log: Path, task_id: str) -> str:
    """What the last attempt of `task_id` printed (spark-submit's output included), for failure messages."""
    text = log.read_text(errors="replace")
    start = text.rfind(f"[DAG TEST] running task <TaskInstance: {DAG_ID}.{task_id} ")
    end = text.find("[DAG TEST] running task", start + 1)
    part = text[start : end if end > 0 else None] if start >= 0 else text
    lines = [line for line in part.splitlines() if not re.search(r"\] \d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ", line)]
    return "\n".join(lines)[-8000:]


def users_in(data_dir: Path) -> set[int]:
    with open(data_dir / "ratings.csv", newline="") as f:
        return {int(row["userId"]) for row in csv.DictReader(f)}


def test_dag_runs_every_stage_and_publishes_then_a_failed_run_leaves_it_serving(small_data, jobs_zip, tmp_path):
    settings_env = small_settings_env(tmp_path, small_data, jobs_zip)
    env = airflow_env(tmp_path / "airflow", MOVIEREC_DAG_RETRIES="0", **settings_env)
    migrate = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    missing = tmp_path / "no-such-data"
    # tiny models on tiny data need not beat popularity: skip the gate (the jobs tests cover it)
    good, bad = run_dag_test(
        env, [{"top_k": 7, "skip_quality_gate": True}, {"data_dir": str(missing)}], tmp_path / "dag_test.log"
    )

    failed = [t for t, state in good["tasks"].items() if state == "failed"]
    assert good["state"] == "success", f"{good}\n" + "\n".join(
        task_output(tmp_path / "dag_test.log", t) for t in failed
    )
    assert good["tasks"] == {stage: "success" for stage in STAGES}
    assert bad["state"] == "failed", bad
    assert bad["tasks"]["ingest"] == "failed"
    assert {bad["tasks"][s] for s in STAGES if s != "ingest"} == {"upstream_failed"}

    engine = sa.create_engine(settings_env["MOVIEREC_DB_URL"])
    with engine.connect() as conn:
        active = conn.execute(sa.text("SELECT run_id FROM active_run WHERE id = 1")).scalar_one()
        status = dict(conn.execute(sa.text("SELECT run_id, status FROM runs")).all())
        per_user = dict(
            conn.execute(
                sa.text("SELECT user_id, COUNT(*) FROM recommendations WHERE run_id = :r GROUP BY user_id"),
                {"r": active},
            ).all()
        )
        ranks = {
            r
            for (r,) in conn.execute(
                sa.text("SELECT DISTINCT rank FROM recommendations WHERE run_id = :r"), {"r": active}
            )
        }

    assert active == good["run_id"], "the successful run is the active one"
    assert status[good["run_id"]] == "published"
    assert bad["run_id"] not in status or status[bad["run_id"]] != "published"
    assert set(per_user) == users_in(small_data), "every user has recommendations"
    assert set(per_user.values()) == {7}, "top_k from the trigger's params reached the stages"
    assert ranks == set(range(1, 8))
    # the failed run never got past ingest in the warehouse either
    failed_root = Path(settings_env["MOVIEREC_WAREHOUSE"]) / "runs" / bad["run_id"]
    assert not any((failed_root / stage).exists() for stage in STAGES if stage != "ingest")
