"""Shared fixtures: one local SparkSession per test process, small generated data sets."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import SMALL_PIPELINE, as_flags, child_env

# py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after
# pytest closed its log streams ("Logging error ... I/O operation on closed file")
logging.getLogger("py4j").setLevel(logging.WARNING)

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)

REAL_DATA = Path(
    os.environ.get("MOVIEREC_REAL_DATA", Path(__file__).resolve().parents[2] / "shared/data/ml-latest-small")
)


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """Settings for tests: small Spark, a throwaway warehouse and SQLite store, fast models."""
    from movierec.config import from_env

    root = tmp_path_factory.mktemp("movierec")
    return from_env(
        {},
        warehouse=str(root / "warehouse"),
        db_url=f"sqlite:///{root / 'store.db'}",
        spark_master="local[2]",
        shuffle_partitions=4,
        driver_memory="4g",
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
    from movierec.spark.session import build_session

    session = build_session("tests", settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def jobs_zip(tmp_path_factory) -> Path:
    """The movierec library zipped for --py-files, as `make jobs-zip` does it."""
    from movierec.spark.package import build_zip

    return build_zip(tmp_path_factory.mktemp("dist") / "movierec.zip")


# --- PostgreSQL (tests/postgres.py) ------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (see tests/postgres.py), stopped at the end.

    `postgres_server.create_database(name)` gives a fresh database's SQLAlchemy URL.
    Skipped only when the PostgreSQL binaries are missing.
    """
    from tests.postgres import PostgresServer, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql or set MOVIEREC_PG_BIN")
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """`postgresql+psycopg://...` of an empty database `movierec` on the session's server."""
    return postgres_server.create_database("movierec")


# --- data sets (movierec/data/synth.py) ------------------------------------------------------------
SMALL_DATA = dict(users=150, movies=400, ratings=8000, seed=7, tags=300)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """A synthetic MovieLens directory (ratings.csv, movies.csv, tags.csv, links.csv) made once
    per session: 150 users, 400 movies, 8000 ratings, 300 tags, seed 7.  Treat it as read-only."""
    from movierec.data.synth import synthesize

    out = tmp_path_factory.mktemp("small_data")
    synthesize(out, **SMALL_DATA)
    return out


@pytest.fixture
def make_dataset(tmp_path):
    """Write a tiny MovieLens directory from rows given inline; returns its path.

    `make_dataset(ratings, movies=None, tags=None)`: rows are sequences written as they are
    (so bad values can be written on purpose): ratings (userId, movieId, rating, timestamp),
    movies (movieId, title, genres), tags (userId, movieId, tag, timestamp).  Without
    `movies`, every rated movie id gets "Movie <id> (2000)" with genre Drama; without `tags`
    there is no tags.csv.
    """
    import csv
    import itertools

    counter = itertools.count(1)

    def make(ratings, movies=None, tags=None) -> Path:
        out = tmp_path / f"dataset{next(counter)}"
        out.mkdir()
        if movies is None:
            ids = sorted({str(row[1]) for row in ratings}, key=lambda text: (len(text), text))
            movies = [(movie_id, f"Movie {movie_id} (2000)", "Drama") for movie_id in ids]
        files = [
            ("ratings.csv", ["userId", "movieId", "rating", "timestamp"], ratings),
            ("movies.csv", ["movieId", "title", "genres"], movies),
        ]
        if tags is not None:
            files.append(("tags.csv", ["userId", "movieId", "tag", "timestamp"], tags))
        for name, header, rows in files:
            with open(out / name, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)
        return out

    return make


# --- one full pipeline run (movierec/stages/pipeline.py) --------------------------------------------
PIPELINE_RUN_ID = "test-run-1"


@pytest.fixture(scope="session")
def pipeline_run(spark, settings, small_data, tmp_path_factory):
    """The whole pipeline, run once per session on `small_data` and published to its own
    SQLite store; returns (settings, run_id).  Treat both as read-only."""
    from movierec.stages.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    # The gate is skipped here: on data this small the popularity baseline is strong (the
    # generator's popularity is Zipf-like) and the gate's own paths are tested in test_quality.py.
    run_settings = settings.replace(
        data_dir=str(small_data),
        warehouse=str(root / "warehouse"),
        db_url=f"sqlite:///{root / 'store.db'}",
        skip_quality_gate=True,
    )
    run_pipeline(spark, run_settings, PIPELINE_RUN_ID)
    return run_settings, PIPELINE_RUN_ID


# --- one `movierec pipeline` as a real process, into PostgreSQL -------------------------------------
CLI_RUN_ID = "cli-run-1"
CLI_PASSWORD = "Planted-pw_7f3a9c"
# small models, as tests/dags/dag_helpers.small_settings_env, given as the command's flags
CLI_SMALL_FLAGS = ("--spark-master", "local[2]", *as_flags(SMALL_PIPELINE))


@dataclass(frozen=True)
class CliRun:
    root: Path  # the process's working directory; the warehouse is root / "warehouse"
    db_url: str  # with the password
    password: str
    run_id: str
    done: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def cli_pipeline(postgres_server, small_data, tmp_path_factory) -> CliRun:
    """`movierec pipeline` once per session as a real process, every setting a flag, into a
    PostgreSQL database whose URL carries CLI_PASSWORD (the throwaway server trusts local users,
    so any password works and the run really uses that URL); the quality gate is skipped (tiny
    data).  tests/movierec/test_cli.py checks what it prints and stores, tests/test_no_secrets.py
    that the password is nowhere.  Treat it as read-only."""
    import sqlalchemy as sa

    root = tmp_path_factory.mktemp("cli-pipeline")
    url = sa.make_url(postgres_server.create_database("cli_pipeline")).set(password=CLI_PASSWORD)
    db_url = url.render_as_string(hide_password=False)
    env = child_env()
    done = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "pipeline", "--run-id", CLI_RUN_ID, "--data-dir", str(small_data),
         "--warehouse", str(root / "warehouse"), "--db-url", db_url, "--skip-quality-gate", *CLI_SMALL_FLAGS],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, f"movierec pipeline exited {done.returncode}:\n{done.stderr[-4000:]}"
    return CliRun(root, db_url, CLI_PASSWORD, CLI_RUN_ID, done)
