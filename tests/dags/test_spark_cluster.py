"""The DAG's tasks against a real Spark standalone cluster on 127.0.0.1.

A master and one worker are started from the pip-installed pyspark (`spark-class
org.apache.spark.deploy.master.Master` / `...worker.Worker`; the pip package ships
bin/spark-class but not the sbin/start-*.sh scripts) and always stopped again.

The DAG's own tasks run through SparkSubmitOperator.execute() (the real operator and hook,
without a scheduler): ingest and featurize with `spark_default` = local[2], then train_als
with `spark_default` = spark://127.0.0.1:<port>, changing nothing but the connection.  A
probe then shows what --py-files does on the cluster: executors whose Python has no
site-packages (so no editable install of the project) import `jobs` from the shipped zip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dag_helpers import DAG_ID, DAGS_DIR, VENV_BIN, airflow_env, free_port, small_settings_env

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(900)]

RUN_ID = "cluster__2026-11-29T02:00:00+00:00"

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


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started (and the executors it forked), by its own group id."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


@pytest.fixture
def spark_cluster(tmp_path):
    """A Spark standalone master and one worker (1 core, 1.5 GB) on 127.0.0.1; yields
    (master URL, master UI URL); both are stopped afterwards, also when the test fails."""
    spark_class = str(VENV_BIN / "spark-class")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
    }
    port, ui, worker_ui = free_port(), free_port(), free_port()
    procs = []
    try:
        with open(tmp_path / "master.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        spark_class,
                        "org.apache.spark.deploy.master.Master",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--webui-port",
                        str(ui),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        with open(tmp_path / "worker.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        spark_class,
                        "org.apache.spark.deploy.worker.Worker",
                        f"spark://127.0.0.1:{port}",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1536m",
                        "--webui-port",
                        str(worker_ui),
                        "--work-dir",
                        str(tmp_path / "work"),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 180
        while True:
            try:
                if get_json(f"http://127.0.0.1:{ui}/json/").get("aliveworkers", 0) >= 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "".join((tmp_path / f).read_text()[-2000:] for f in ("master.log", "worker.log"))
                pytest.fail(f"Spark master/worker did not come up:\n{logs}")
            time.sleep(1)
        yield f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}"
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_train_als_runs_on_a_standalone_cluster_with_the_jobs_zip(spark_cluster, small_data, jobs_zip, tmp_path):
    master, ui = spark_cluster
    settings_env = small_settings_env(tmp_path, small_data, jobs_zip)
    env = airflow_env(tmp_path / "airflow", **settings_env)
    plan = [("ingest", "local[2]"), ("featurize", "local[2]"), ("train_als", master)]
    with open(tmp_path / "stages.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(DAGS_DIR), DAG_ID, RUN_ID, json.dumps(plan)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=800,
        )
    text = (tmp_path / "stages.log").read_text()
    assert done.returncode == 0, text[-6000:]
    assert text.count("DONE ") == 3

    # the ALS stage ran as an application of the cluster, and wrote its model to the warehouse
    apps = get_json(f"{ui}/json/")
    finished = {app["name"]: app for app in apps.get("completedapps", [])}
    assert "movierec-train_als" in finished, apps
    assert finished["movierec-train_als"]["cores"] >= 1
    model = Path(settings_env["MOVIEREC_WAREHOUSE"]) / "runs" / RUN_ID / "train_als" / "model"
    assert (model / "metadata").is_dir() and (model / "userFactors").is_dir() and (model / "itemFactors").is_dir()

    # --py-files on the cluster: an executor Python without site-packages finds `movierec` in the zip
    no_site_python = tmp_path / "python-no-site"
    no_site_python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    no_site_python.chmod(0o755)
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    import pyspark

    env_probe = {
        **env,
        "PYSPARK_PYTHON": str(no_site_python),
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
    }
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
    assert "1)" in lines[0] or ", 1)" in lines[0], "the executor's Python ran without site-packages"
    assert master in lines[0]
