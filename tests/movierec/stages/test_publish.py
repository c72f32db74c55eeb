"""The publish stage on the session's pipeline run (a copy of its run folder, and a fresh SQLite
store per test): what a refusal by the quality gate leaves behind, and that retries for the
same run id end with exactly the run's rows.  test_pipeline.py covers the first publish and
the retry of an already active run; test_quality.py the gate's rule.

The expected rows are the stage's inputs, read from the warehouse Parquet: publishing is a
copy, so the copy must equal its source row for row."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import sqlalchemy as sa

from movierec.spark.paths import RunPaths, local_path
from movierec.spark.warehouse import read_json, read_table
from movierec.stages.publish import RunRejected, publish
from movierec.stages.runner import run_stage
from movierec.store import runs as store
from serving import store as reader

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SERVING = "serving-run"
SERVING_ROW = (1, 1, 7, 0.9, 0.8, 0.95)
PER_RUN = ("recommendations", "run_users", "popular_movies", "similar_movies")


@pytest.fixture
def run(pipeline_run, tmp_path):
    """(settings, run id, paths): the pipeline run's folder copied into a warehouse of this test
    (publish writes its report there), and a store of this test; the quality gate is on."""
    settings, run_id = pipeline_run
    warehouse = tmp_path / "warehouse"
    shutil.copytree(local_path(RunPaths(settings.warehouse, run_id).root), warehouse / "runs" / run_id)
    own = settings.replace(
        warehouse=str(warehouse), db_url=f"sqlite:///{tmp_path / 'store.db'}", skip_quality_gate=False
    )
    return own, run_id, RunPaths(own.warehouse, run_id)


def serve_an_excellent_run(engine) -> None:
    """An active run whose NDCG@10 the test run cannot come near: the gate must refuse."""
    store.begin_run(engine, SERVING, {}, store.utc_now())
    store.load_run(engine, SERVING, {"recommendations": [[SERVING_ROW]], "run_users": [[(1, 20)]]})
    store.activate_run(
        engine, SERVING, {"models": {"hybrid": {"ndcg": 0.99}, "popularity": {"ndcg": 0.0}}}, store.utc_now()
    )


def stored(engine, table: str, columns: str, run_id: str) -> set[tuple]:
    with engine.connect() as conn:
        return {
            tuple(r) for r in conn.execute(sa.text(f"SELECT {columns} FROM {table} WHERE run_id = :r"), {"r": run_id})
        }


def expected_rows(spark, paths) -> dict[str, set[tuple]]:
    """What the store must hold for the run, from the warehouse (ratings counted in Python)."""

    def rows(path, *columns):
        return {tuple(r) for r in read_table(spark, path).select(*columns).collect()}

    per_user = Counter(r["user_id"] for r in read_table(spark, paths.ratings).select("user_id").collect())
    return {
        "recommendations": rows(paths.recommendations, "user_id", "rank", "movie_id", "score", "cf_score", "cb_score"),
        "run_users": set(per_user.items()),
        "popular_movies": rows(paths.popular, "rank", "movie_id", "score"),
        "similar_movies": rows(paths.similar, "movie_id", "rank", "similar_movie_id", "score"),
    }


COLUMNS = {
    "recommendations": "user_id, rank, movie_id, score, cf_score, cb_score",
    "run_users": "user_id, ratings_count",
    "popular_movies": "rank, movie_id, score",
    "similar_movies": "movie_id, rank, similar_movie_id, score",
}


def assert_the_store_holds_exactly_the_run(engine, spark, paths) -> None:
    expected = expected_rows(spark, paths)
    assert len(expected["recommendations"]) == 150 * 10 and len(expected["run_users"]) == 150  # small_data, top_k
    for table, columns in COLUMNS.items():
        assert stored(engine, table, columns, paths.run_id) == expected[table], table
    with engine.connect() as conn:
        counted = conn.execute(
            sa.text("SELECT count(*) FROM recommendations WHERE run_id = :r"), {"r": paths.run_id}
        ).scalar()
    assert counted == 1500  # no duplicates hiding behind the set


def test_a_refused_run_leaves_the_active_run_serving_and_none_of_its_rows(spark, run):
    settings, run_id, paths = run
    engine = store.engine_for(settings.db_url)
    serve_an_excellent_run(engine)

    with pytest.raises(RunRejected, match=rf"run {run_id} rejected: .*; run {SERVING} keeps serving"):
        run_stage("publish", publish, spark, settings, run_id)

    with engine.connect() as conn:
        assert store.active_run_id(conn) == SERVING
        refused = store.get_run(conn, run_id)
        movies = conn.execute(sa.text("SELECT count(*) FROM movies")).scalar()
    assert refused["status"] == "rejected" and "hybrid NDCG@10" in refused["message"]
    assert refused["metrics"] == read_json(spark, paths.metrics)  # kept, to say why
    for table in PER_RUN:
        assert stored(engine, table, "*", run_id) == set(), table
    assert movies == 0  # refused before the catalogue was touched
    # readers still get the serving run, unchanged
    served, rows, _ = reader.get_stored_page(engine, 1, k=10)
    assert served == SERVING
    assert [(r["rank"], r["movie_id"], r["score"]) for r in rows] == [(1, 7, 0.9)]
    report = read_json(spark, paths.publish_report)
    assert report == {"status": "rejected", "reason": refused["message"]}

    # the retry with the gate overridden publishes the whole run, and only once
    report = run_stage("publish", publish, spark, settings.replace(skip_quality_gate=True), run_id)
    assert report["status"] == "published" and report["gate_overridden"] is True
    assert report["previous_run"] == SERVING
    assert report["rows"]["recommendations"] == 1500 and report["rows"]["run_users"] == 150
    assert_the_store_holds_exactly_the_run(engine, spark, paths)
    with engine.connect() as conn:
        assert store.active_run_id(conn) == run_id
        assert store.get_run(conn, SERVING)["status"] == "published"  # kept for rollback
    assert read_json(spark, paths.publish_report)["status"] == "published"
    engine.dispose()


def test_a_retry_after_an_attempt_that_died_midway_leaves_exactly_the_run(spark, run):
    settings, run_id, paths = run
    settings = settings.replace(skip_quality_gate=True)
    engine = store.engine_for(settings.db_url)
    # an earlier attempt loaded some rows and died before activating the run
    store.begin_run(engine, run_id, {}, store.utc_now())
    store.load_run(
        engine,
        run_id,
        {
            "recommendations": [[(1, 1, 999_999, 0.5, 0.5, 0.5), (1, 99, 1, 0.1, 0.1, 0.1)]],
            "run_users": [[(1, 1), (424242, 3)]],
        },
    )

    report = run_stage("publish", publish, spark, settings, run_id)
    assert report["status"] == "published" and report["previous_run"] is None
    assert_the_store_holds_exactly_the_run(engine, spark, paths)
    with engine.connect() as conn:
        assert store.active_run_id(conn) == run_id
        catalogue = {r[0] for r in conn.execute(sa.text("SELECT movie_id FROM movies"))}
    assert catalogue == {r["movie_id"] for r in read_table(spark, paths.movie_features).select("movie_id").collect()}

    # and a retry once it is active changes nothing
    assert run_stage("publish", publish, spark, settings, run_id)["status"] == "already active"
    assert_the_store_holds_exactly_the_run(engine, spark, paths)
    engine.dispose()
