"""The whole DAG under Airflow's own `dag.test()`, on a real Spark standalone cluster on 127.0.0.1.

A master and two workers (1 core each) are started once for this module by
benchmarks/standalone.py's `standalone_cluster`, and always stopped again.  Airflow runs in a
subprocess with its own AIRFLOW_HOME, a SQLite metadata database and `spark_default` =
spark://127.0.0.1:<port>, configured through the environment as a deployment would be, so each
stage is one spark-submit of jobs/<stage>.py with the jobs zip on --py-files, run by executors
on both workers.

The first run gets the settings of the session's `pipeline_run` (tests/conftest.py: the same
generated data, models and seeds, on local[2]) as MOVIEREC_*, with a warehouse and store of its
own, and must publish the same lists and measure the same metrics.  Its top_k comes from the
trigger's params, over a different MOVIEREC_TOP_K, so equal lists also show that params reach
the stages.  A second run whose data directory does not exist must fail at ingest, run nothing
after it, and leave the first run serving.  A probe then shows what --py-files does on the
cluster: executors whose Python has no site-packages (so no editable install of the project)
import `movierec` from the shipped zip.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from dag_helpers import DAG_ID, DAGS_DIR, VENV_BIN, airflow_env

from benchmarks.standalone import get_json, standalone_cluster
from movierec.config import to_env
from movierec.stages.pipeline import STAGES

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1800)]

WORKERS = 2

# argv: dags folder, dag id, [run conf, ...]: one dag.test() per conf, in turn
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

PROBE = r"""
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("movierec-pyfiles-probe").getOrCreate()

def where(_):
    import sys
    import movierec.config
    return (movierec.config.__file__, sys.flags.no_site)

print("PROBE", spark.sparkContext.parallelize([0], 1).map(where).collect()[0], spark.sparkContext.master, flush=True)
spark.stop()
"""


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and two workers (1 core, 1.5 GB each) on 127.0.0.1, for this
    module; yields (master URL, master UI URL); all are stopped afterwards, also on failure."""
    try:
        with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), WORKERS, "1536m") as cluster:
            yield cluster
    except RuntimeError as err:
        pytest.fail(str(err))


def in_own_session(command: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    """Run `command` in a session of its own, output to `log`; on a time-out the kill reaches
    everything under it (the spark-submits and their JVMs too), and the test fails."""
    with open(log, "w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{command[:3]} did not finish in {timeout:.0f} s:\n" + log.read_text()[-6000:])


def run_dag_test(env: dict[str, str], confs: list[dict], log: Path) -> list[dict]:
    """One `dag.test(run_conf=conf)` per conf, in one Airflow process: each run's id, state and task states."""
    migrate = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    code = in_own_session([sys.executable, "-c", DRIVER, str(DAGS_DIR), DAG_ID, json.dumps(confs)], env, log, 1400)
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert code == 0 and lines, f"dag.test driver failed (exit {code}):\n{text[-6000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def task_output(log: Path, task_id: str) -> str:
    """What the last attempt of `task_id` printed (spark-submit's output included), for failure messages."""
    text = log.read_text(errors="replace")
    start = text.rfind(f"[DAG TEST] running task <TaskInstance: {DAG_ID}.{task_id} ")
    end = text.find("[DAG TEST] running task", start + 1)
    part = text[start : end if end > 0 else None] if start >= 0 else text
    # drop Spark's own INFO lines (the hook echoes them with their yy/MM/dd timestamp), keep the rest
    lines = [line for line in part.splitlines() if not re.search(r"\] \d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ", line)]
    return "\n".join(lines)[-8000:]


def users_in(data_dir: str) -> set[int]:
    with open(Path(data_dir) / "ratings.csv", newline="") as f:
        return {int(row["userId"]) for row in csv.DictReader(f)}


def active_run(db_url: str) -> tuple[str, dict[str, str]]:
    """The store's active run id, and every run's status."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            active = conn.execute(sa.text("SELECT run_id FROM active_run WHERE id = 1")).scalar_one()
            status = dict(conn.execute(sa.text("SELECT run_id, status FROM runs")).all())
    finally:
        engine.dispose()
    return active, status


def published(db_url: str, run_id: str) -> list[tuple]:
    """The store's recommendations of `run_id`, in (user, rank) order; `run_id` must be active."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT run_id FROM active_run WHERE id = 1")).scalar_one() == run_id
            rows = conn.execute(
                sa.text("SELECT user_id, rank, movie_id, score FROM recommendations WHERE run_id = :r"),
                {"r": run_id},
            ).all()
    finally:
        engine.dispose()
    return sorted(tuple(row) for row in rows)


def metrics(warehouse: str, run_id: str) -> dict:
    """The evaluate stage's metrics document of `run_id` (a one-line JSON text file)."""
    (part,) = (Path(warehouse) / "runs" / run_id / "evaluate" / "metrics").glob("part-*")
    return json.loads(part.read_text())


def numbers(doc, prefix: str = "") -> dict[str, object]:
    """A nested JSON document as {dotted path: leaf}."""
    if isinstance(doc, dict):
        return {k: v for key, value in doc.items() for k, v in numbers(value, f"{prefix}{key}.").items()}
    if isinstance(doc, list):
        return {k: v for i, value in enumerate(doc) for k, v in numbers(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): doc}


def same(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 relative: the same sums added in another order on another JVM."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def test_the_dag_on_two_workers_publishes_the_local_runs_lists_then_a_failed_run_leaves_it_serving(
    spark_cluster, pipeline_run, jobs_zip, tmp_path
):
    master, ui = spark_cluster
    local, local_run_id = pipeline_run
    own = local.replace(
        warehouse=str(tmp_path / "warehouse"),
        db_url=f"sqlite:///{tmp_path / 'store.db'}",
        reports_dir=str(tmp_path / "reports"),
        jobs_zip=str(jobs_zip),
        dag_retries=0,
    )
    # top_k from the environment differs from the local run's: only the trigger's params make them equal
    run_env = to_env(own) | to_env(own.replace(top_k=local.top_k + 3), ["top_k"])
    env = airflow_env(tmp_path / "airflow", spark_master=master, **run_env)
    missing = tmp_path / "no-such-data"
    log = tmp_path / "dag_test.log"
    good, bad = run_dag_test(env, [{"top_k": local.top_k, "skip_quality_gate": True}, {"data_dir": str(missing)}], log)

    failed = [t for t, state in good["tasks"].items() if state == "failed"]
    assert good["state"] == "success", f"{good}\n" + "\n".join(task_output(log, t) for t in failed)
    assert good["tasks"] == {stage: "success" for stage in STAGES}
    assert bad["state"] == "failed", bad
    assert bad["tasks"]["ingest"] == "failed"
    assert {bad["tasks"][s] for s in STAGES if s != "ingest"} == {"upstream_failed"}

    # every stage ran as an application of the cluster, with an executor on each worker
    apps = {app["name"]: app for app in get_json(f"{ui}/json/").get("completedapps", [])}
    for stage in STAGES:
        assert f"movierec-{stage}" in apps, sorted(apps)
        assert apps[f"movierec-{stage}"]["cores"] == WORKERS, apps[f"movierec-{stage}"]

    # the first run is the active one; the failed run published nothing and wrote nothing past ingest
    active, status = active_run(own.db_url)
    assert active == good["run_id"] and status[active] == "published"
    assert sum(s == "published" for s in status.values()) == 1, status
    bad_runs = [run for run in status if run != active]
    assert all(status[run] != "published" for run in bad_runs)
    warehouse_runs = {p.name for p in (Path(own.warehouse) / "runs").iterdir()}
    assert active in warehouse_runs
    for run in warehouse_runs - {active}:
        assert not any((Path(own.warehouse) / "runs" / run / stage).exists() for stage in STAGES if stage != "ingest")

    cluster_rows, local_rows = published(own.db_url, active), published(local.db_url, local_run_id)
    assert {row[0] for row in cluster_rows} == users_in(local.data_dir), "every user has recommendations"
    assert len(cluster_rows) == len(local_rows) == local.top_k * len(users_in(local.data_dir))
    # the same lists: users, ranks and movies exactly, scores to float noise
    assert [row[:3] for row in cluster_rows] == [row[:3] for row in local_rows]
    for ours, theirs in zip(cluster_rows, local_rows, strict=True):
        assert math.isclose(ours[3], theirs[3], rel_tol=1e-9, abs_tol=1e-12), (ours, theirs)

    # the same metrics, every leaf but the run's own id
    cluster_metrics = numbers(metrics(own.warehouse, active))
    local_metrics = numbers(metrics(local.warehouse, local_run_id))
    assert cluster_metrics.keys() == local_metrics.keys()
    differ = {
        k: (v, local_metrics[k])
        for k, v in cluster_metrics.items()
        if not same(v, local_metrics[k]) and (v, local_metrics[k]) != (active, local_run_id)
    }
    assert not differ, differ


def test_executors_without_site_packages_import_movierec_from_the_jobs_zip(spark_cluster, jobs_zip, tmp_path):
    master, _ = spark_cluster
    no_site_python = tmp_path / "python-no-site"
    no_site_python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    no_site_python.chmod(0o755)
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    import pyspark

    env_probe = airflow_env(
        tmp_path / "airflow",
        PYSPARK_PYTHON=str(no_site_python),
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_HOME=str(Path(pyspark.__file__).parent),
    )
    answer = subprocess.run(
        [
            str(VENV_BIN / "spark-submit"),
            "--master",
            master,
            "--py-files",
            str(jobs_zip),
            "--conf",
            "spark.executor.memory=512m",
            "--conf",
            "spark.ui.enabled=false",
            str(probe),
        ],
        env=env_probe,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    lines = [line for line in answer.stdout.splitlines() if line.startswith("PROBE ")]
    assert answer.returncode == 0 and lines, answer.stdout[-3000:] + answer.stderr[-3000:]
    assert "movierec.zip/movierec/config.py" in lines[0], lines[0]
    assert lines[0].rstrip().endswith(f", 1) {master}"), "the executor's Python ran without site-packages"
