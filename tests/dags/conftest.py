"""Fixtures for the DAG, compose and Airflow tests.

Airflow reads its configuration once, at import: point it at a throwaway AIRFLOW_HOME
before anything imports it, so no test reads or writes ~/airflow or a developer's own
Airflow home.  Tests that run Airflow for real (dag.test, airflow standalone) do it in
subprocesses with their own environment (see `airflow_env`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest
from dag_helpers import DAG_ID, DAGS_DIR

if "airflow" not in sys.modules:
    _home = tempfile.mkdtemp(prefix="movierec-airflow-home-")
    atexit.register(shutil.rmtree, _home, True)
    os.environ["AIRFLOW_HOME"] = _home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
# the DAG's own deployment settings: the structure tests check their defaults
for _name in ("MOVIEREC_DAG_SCHEDULE", "MOVIEREC_DAG_RETRIES", "MOVIEREC_JOBS_ZIP", "MOVIEREC_JOBS_DIR"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def dagbag():
    """The project's DAG folder, parsed by Airflow's own DagBag (no metadata database needed)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="session")
def dag(dagbag):
    assert not dagbag.import_errors, dagbag.import_errors
    return dagbag.dags[DAG_ID]
