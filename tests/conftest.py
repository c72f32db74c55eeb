"""Shared fixtures: one local SparkSession per test process, small generated data sets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)

REAL_DATA = Path(os.environ.get("MOVIEREC_REAL_DATA", Path(__file__).resolve().parents[2] / "shared/data/ml-latest-small"))


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """Settings for tests: small Spark, a throwaway warehouse and SQLite store, fast models."""
    from jobs.config import from_env

    root = tmp_path_factory.mktemp("movierec")
    return from_env(
        {},
        warehouse=str(root / "warehouse"),
        db_url=f"sqlite:///{root / 'store.db'}",
        spark_master="local[2]",
        shuffle_partitions=4,
        driver_memory="2g",
        als_rank=8,
        als_iterations=5,
        rf_trees=10,
        rf_depth=5,
        top_k=10,
        als_candidates=30,
        content_candidates=20,
    )


@pytest.fixture(scope="session")
def spark(settings):
    """The one SparkSession of this test process."""
    from jobs.session import build_session

    session = build_session("tests", settings)
    yield session
    session.stop()
