"""The whole pipeline on a real Spark standalone cluster on 127.0.0.1, against local[2].

A master and two workers (1 core each) are started once for this module by
benchmarks/standalone.py's `standalone_cluster`, and always stopped again.

Every stage runs as the DAG runs it: the DAG's own task, through SparkSubmitOperator.execute()
(the real operator and hook, without a scheduler), with `spark_default` =
spark://127.0.0.1:<port>, so each stage is one spark-submit of jobs/<stage>.py with the jobs
zip on --py-files, run by executors on both workers.  The local run to match is the session's
`pipeline_run` (tests/conftest.py: the same generated data, settings, seeds and run id, on
local[2]), so this test pays for the cluster run only.  Both runs must publish the same
recommendations and measure the same metrics.  A probe then shows what --py-files does on the
cluster: executors whose Python has no site-packages (so no editable install of the project)
import `movierec` from the shipped zip.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from dag_helpers import DAG_ID, DAGS_DIR, STAGES, VENV_BIN, airflow_env

from benchmarks.standalone import get_json, standalone_cluster
from movierec.config import env_name

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1500)]

WORKERS = 2

# argv: dags folder, dag id, run id, [[stage, master], ...]; the params are the DAG's defaults
DRIVER = r"""
import copy, json, os, sys
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]
run_id = sys.argv[3]
for stage, master in json.loads(sys.argv[4]):
    os.environ["AIRFLOW_CONN_SPARK_DEFAULT"] = json.dumps({"conn_type": "spark", "host": master})
    task = copy.deepcopy(dag.get_task(stage))
    task.render_template_fields({"run_id": run_id, "params": dag.params.validate()}, jinja_env=dag.get_template_env())
    task.execute(context={})
    print("DONE", stage, master, flush=True)
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


def settings_env(settings, root: Path, jobs_zip: Path) -> dict[str, str]:
    """`settings` as MOVIEREC_* variables, with a warehouse and SQLite store of their own under
    `root`: what the stage scripts need to repeat the run those settings describe."""
    fmt = lambda value: str(value).lower() if isinstance(value, bool) else str(value)
    env = {env_name(f.name): fmt(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    env.update(
        {
            env_name("warehouse"): str(root / "warehouse"),
            env_name("db_url"): f"sqlite:///{root / 'store.db'}",
            env_name("reports_dir"): str(root / "reports"),
            env_name("jobs_zip"): str(jobs_zip),
        }
    )
    return env


def run_stages(root: Path, master: str, settings, run_id: str, jobs_zip: Path) -> dict[str, str]:
    """The seven stages, each the DAG's task on `master`, for `run_id` with `settings` but into
    a warehouse and store of their own under `root`; returns the MOVIEREC_* they ran with."""
    run_env = settings_env(settings, root, jobs_zip)
    env = airflow_env(root / "airflow", **run_env)
    plan = [(stage, master) for stage in STAGES]
    with open(root / "stages.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(DAGS_DIR), DAG_ID, run_id, json.dumps(plan)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
        )
    text = (root / "stages.log").read_text()
    assert done.returncode == 0, text[-6000:]
    assert text.count("DONE ") == len(STAGES)
    return run_env


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


def test_the_whole_pipeline_on_two_workers_matches_the_local_run(spark_cluster, pipeline_run, jobs_zip, tmp_path):
    """The stage scripts on the cluster repeat the session's local[2] run (`pipeline_run`, the
    same data, settings, seeds and run id) and must publish the same lists and metrics."""
    master, ui = spark_cluster
    local, run_id = pipeline_run
    on_cluster = run_stages(tmp_path, master, local, run_id, jobs_zip)

    # every stage ran as an application of the cluster, with an executor on each worker
    apps = {app["name"]: app for app in get_json(f"{ui}/json/").get("completedapps", [])}
    for stage in STAGES:
        assert f"movierec-{stage}" in apps, sorted(apps)
        assert apps[f"movierec-{stage}"]["cores"] == WORKERS, apps[f"movierec-{stage}"]

    cluster_rows, local_rows = published(on_cluster[env_name("db_url")], run_id), published(local.db_url, run_id)
    assert len(cluster_rows) == len(local_rows) > 0
    # the same lists: users, ranks and movies exactly, scores to float noise
    assert [row[:3] for row in cluster_rows] == [row[:3] for row in local_rows]
    for ours, theirs in zip(cluster_rows, local_rows, strict=True):
        assert math.isclose(ours[3], theirs[3], rel_tol=1e-9, abs_tol=1e-12), (ours, theirs)

    cluster_metrics = numbers(metrics(on_cluster[env_name("warehouse")], run_id))
    local_metrics = numbers(metrics(local.warehouse, run_id))
    assert cluster_metrics.keys() == local_metrics.keys()
    differ = {k: (v, local_metrics[k]) for k, v in cluster_metrics.items() if not same(v, local_metrics[k])}
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
