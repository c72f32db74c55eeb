"""Publish killed with SIGKILL while it loads a run's rows, on SQLite and on PostgreSQL: the active
run is unchanged and keeps serving (rows and catalogue), and the retry publishes cleanly.

The stage runs as the DAG runs it (tests/processes.py: spark-submit of jobs/publish.py), on a copy
of the session pipeline run's folder, into a store whose active run is a small one loaded here.
It is killed once the store shows it inside the load: on PostgreSQL, a COPY into a later table of
the run in progress (so the recommendations are already in the open transaction); on SQLite, the
run `loading` and the store's write lock held without a break for a quarter of a second, which
only the load does (it holds the lock while it streams the run's tables out of Spark).  The retry is
the publish stage again for the same run id (in this process's session: the kill is what is
tested, and every JVM start costs seconds)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from movierec.spark.paths import RunPaths, local_path
from movierec.spark.warehouse import read_table
from movierec.stages.publish import publish
from movierec.stages.runner import run_stage
from movierec.store import runs as store
from movierec.store.tables import RUN_TABLES
from serving import create_app
from serving import store as reader
from tests.processes import StageProcess, wait_until

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RUN_ID = "publish-kill-1"
SERVING = "serving-run"
SERVING_ROW = (1, 1, 7, 0.9, 0.8, 0.95)
SERVING_MOVIE = (7, "The Serving Run's Movie", 1999, "Drama")
SQLITE_LOAD_HOLD = 0.25  # seconds the write lock must stay held before the kill: longer than any short transaction


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_server").create_database("publish_kill")


def serve_a_small_run(engine) -> None:
    store.begin_run(engine, SERVING, {}, store.utc_now())
    store.load_run(engine, SERVING, {"recommendations": [[SERVING_ROW]], "run_users": [[(1, 20)]]})
    store.activate_run(engine, SERVING, {}, store.utc_now(), movies=[[SERVING_MOVIE]])


def status(engine, run_id: str) -> str | None:
    with engine.connect() as conn:
        run = store.get_run(conn, run_id)
    return run["status"] if run else None


def sqlite_write_locked(database: str) -> bool:
    """Whether a writer holds the SQLite store's write lock right now (a probe that never waits)."""
    conn = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if "locked" in str(err):
            return True
        raise
    else:
        conn.execute("ROLLBACK")
        return False
    finally:
        conn.close()


def copies_in_progress(probe) -> list[str]:
    """The tables a COPY is loading right now (PostgreSQL's progress view)."""
    with probe.connect() as conn:
        return list(conn.execute(sa.text("SELECT relid::regclass::text FROM pg_stat_progress_copy")).scalars())


def inside_the_load(engine, db_url: str):
    """A condition that holds while publish has the run's rows in an open, uncommitted transaction."""
    if engine.dialect.name == "postgresql":
        probe = sa.create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.StaticPool)
        later_tables = set(RUN_TABLES) - {"recommendations"}
        return lambda: status(engine, RUN_ID) == "loading" and later_tables & set(copies_in_progress(probe))
    database = sa.make_url(db_url).database
    held_since: list[float] = []  # when the lock was first seen held, in the current unbroken series of probes

    def loading() -> bool:
        # publish's other write transactions (begin, switch, retention) last milliseconds; only the load
        # holds the lock across Spark jobs (it streams the run's tables from the warehouse)
        if status(engine, RUN_ID) != "loading" or not sqlite_write_locked(database):
            held_since.clear()
            return False
        held_since[:1] = held_since[:1] or [time.monotonic()]
        return time.monotonic() - held_since[0] >= SQLITE_LOAD_HOLD and status(engine, RUN_ID) == "loading"

    return loading


def count(engine, table: str, run_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": run_id}).scalar()


def served(client) -> tuple[str, list[tuple]]:
    answer = client.get("/users/1/recommendations?k=1")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    return body["run_id"], [(item["movie_id"], item["title"]) for item in body["items"]]


def test_publish_killed_mid_load_leaves_the_active_run_serving_and_the_retry_publishes_cleanly(
    spark, pipeline_run, jobs_zip, db_url, tmp_path
):
    reference_settings, reference_id = pipeline_run
    warehouse = tmp_path / "warehouse"
    shutil.copytree(local_path(RunPaths(reference_settings.warehouse, reference_id).root), warehouse / "runs" / RUN_ID)
    settings = reference_settings.replace(
        warehouse=str(warehouse), db_url=db_url, skip_quality_gate=True, driver_memory="1g"
    )
    paths = RunPaths(settings.warehouse, RUN_ID)
    engine = store.engine_for(db_url)
    serve_a_small_run(engine)
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    assert served(client) == (SERVING, [(7, SERVING_MOVIE[1])])

    # 1. kill publish while the run's rows are loading
    with StageProcess("publish", RUN_ID, settings, jobs_zip, tmp_path / "publish-killed.log") as stage:
        wait_until(inside_the_load(engine, db_url), stage, "it was loading the run's rows")
        survivors = stage.kill()
    assert survivors == [], f"processes of the killed stage outlived it: {survivors}"

    # 2. what serves is untouched: the pointer, the rows, the catalogue; none of the run's rows are visible
    with engine.connect() as conn:
        assert store.active_run_id(conn) == SERVING
        assert conn.execute(sa.text("SELECT movie_id, title, year, genres FROM movies")).all() == [SERVING_MOVIE]
    assert status(engine, RUN_ID) == "loading"  # killed before it could say anything: the retry resets it
    for table in RUN_TABLES:
        assert count(engine, table, RUN_ID) == 0, table
    assert served(client) == (SERVING, [(7, SERVING_MOVIE[1])])
    assert reader.get_stored_page(engine, 1, k=10)[0] == SERVING

    # 3. the retry publishes the whole run, once, and the same app serves it without a restart
    report = run_stage("publish", publish, spark, settings, RUN_ID)
    assert report["status"] == "published" and report["previous_run"] == SERVING
    expected = Counter(
        tuple(r)
        for r in read_table(spark, paths.recommendations)
        .select("user_id", "rank", "movie_id", "score", "cf_score", "cb_score")
        .collect()
    )
    with engine.connect() as conn:
        assert store.active_run_id(conn) == RUN_ID
        stored = Counter(
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT user_id, rank, movie_id, score, cf_score, cb_score FROM recommendations WHERE run_id = :r"
                ),
                {"r": RUN_ID},
            )
        )
        catalogue = set(conn.execute(sa.text("SELECT movie_id FROM movies")).scalars())
    assert stored == expected and max(stored.values()) == 1 and sum(stored.values()) == 150 * settings.top_k
    assert report["rows"] == {table: count(engine, table, RUN_ID) for table in report["rows"]}
    assert count(engine, "run_users", RUN_ID) == 150
    assert catalogue == {r[0] for r in read_table(spark, paths.movie_features).select("movie_id").collect()} | {7}
    assert status(engine, SERVING) == "published"  # kept for rollback
    run_id, items = served(client)
    assert run_id == RUN_ID and items and items[0][0] == min(expected)[2]  # user 1's rank-1 movie
    engine.dispose()
