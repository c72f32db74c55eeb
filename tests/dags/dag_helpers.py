"""Helpers shared by the DAG, compose and Airflow tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.processes import SMALL_PIPELINE

PROJECT = Path(__file__).resolve().parents[2]
DAGS_DIR = PROJECT / "dags"
DAG_FILE = DAGS_DIR / "movie_recommender.py"
DAG_ID = "movie_recommender"
VENV_BIN = Path(sys.executable).parent


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment with the venv's bin (spark-submit, airflow) first on PATH
    and Spark kept on loopback; no MOVIEREC_* or AIRFLOW* leaks in from the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MOVIEREC_", "AIRFLOW", "SPARK_HOME", "PYSPARK_", "PYTHONPATH"))
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def small_settings_env(root: Path, data_dir: Path, jobs_zip: Path) -> dict[str, str]:
    """MOVIEREC_* for a pipeline run on tiny data: small models, a warehouse and a SQLite
    store under `root`."""
    return {
        "MOVIEREC_DATA_DIR": str(data_dir),
        "MOVIEREC_WAREHOUSE": str(root / "warehouse"),
        "MOVIEREC_DB_URL": f"sqlite:///{root / 'store.db'}",
        "MOVIEREC_JOBS_ZIP": str(jobs_zip),
        **{f"MOVIEREC_{name.upper()}": str(value) for name, value in SMALL_PIPELINE.items()},
    }


def airflow_env(home: Path, spark_master: str = "local[2]", **extra: str) -> dict[str, str]:
    """Environment for an Airflow of its own: AIRFLOW_HOME and a SQLite metadata database
    under `home`, the project's dags/ folder, no examples, and `spark_default` defined."""
    home.mkdir(parents=True, exist_ok=True)
    return base_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW_CONN_SPARK_DEFAULT=json.dumps({"conn_type": "spark", "host": spark_master}),
        **extra,
    )
