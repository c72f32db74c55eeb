"""The whole pipeline, once, on generated data: the output contract, idempotent reruns, the
same run in PostgreSQL, and live scoring that agrees with the batch."""

import math
from pathlib import Path

import pyspark
import pytest
import sqlalchemy as sa
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_json, read_table
from movierec.stages.pipeline import run_pipeline
from movierec.store import runs as store

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_python_pyspark_matches_the_jvm(spark):
    assert pyspark.__version__ == spark.version


@pytest.fixture(scope="module")
def run(spark, pipeline_run):
    settings, run_id = pipeline_run
    return settings, run_id, RunPaths(settings.warehouse, run_id)


def test_every_user_gets_k_unrated_movies_ranked_1_to_k(spark, run):
    settings, _, paths = run
    recs = read_table(spark, paths.recommendations)
    ratings = read_table(spark, paths.ratings)
    assert recs.columns == ["user_id", "rank", "movie_id", "score", "cf_score", "cb_score"]
    users = ratings.select("user_id").distinct().count()
    per_user = recs.groupBy("user_id").agg(
        F.count("*").alias("n"),
        F.min("rank").alias("lo"),
        F.max("rank").alias("hi"),
        F.countDistinct("movie_id").alias("movies"),
    )
    assert per_user.count() == users == 150
    k = settings.top_k
    assert per_user.where(f"n != {k} or lo != 1 or hi != {k} or movies != {k}").count() == 0
    assert recs.join(ratings, ["user_id", "movie_id"]).count() == 0, "a recommended movie was already rated"


def test_scores_follow_the_formula_and_the_ranks(spark, run):
    settings, _, paths = run
    recs = read_table(spark, paths.recommendations)
    formula = F.abs(F.col("score") - (settings.cf_weight * F.col("cf_score") + settings.cb_weight * F.col("cb_score")))
    assert recs.where(formula > 1e-9).count() == 0
    assert recs.where("cf_score < 0 or cf_score > 1 or cb_score < 0 or cb_score > 1").count() == 0
    rows = recs.where("user_id = 1").orderBy("rank").collect()
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_the_run_is_published_and_active(run):
    settings, run_id, _ = run
    engine = store.engine_for(settings.db_url)
    with engine.connect() as conn:
        assert store.active_run_id(conn) == run_id
        published = store.get_run(conn, run_id)
        count = conn.execute(sa.text("select count(*) from recommendations where run_id = :r"), {"r": run_id}).scalar()
        users = conn.execute(sa.text("select count(*) from run_users where run_id = :r"), {"r": run_id}).scalar()
    assert published["status"] == "published"
    assert set(published["metrics"]["models"]) == {"hybrid", "als", "content", "popularity"}
    assert count == 150 * settings.top_k and users == 150


def test_the_run_records_its_code_and_the_digests_of_its_input_files(run):
    from movierec.files import sha256_file
    from movierec.spark.package import code_fingerprint

    settings, run_id, _ = run
    with store.engine_for(settings.db_url).connect() as conn:
        params = store.get_run(conn, run_id)["params"]
    assert params["code_version"] == code_fingerprint()
    data = Path(settings.data_dir)
    feedback = params["inputs"].pop("feedback")
    assert params["inputs"] == {
        name: {"bytes": (data / name).stat().st_size, "sha256": sha256_file(data / name)}
        for name in ("ratings.csv", "movies.csv", "tags.csv")
    }
    assert "db_url" not in params
    # the store's feedback it read (none), and up to when: the same cut-off in run_feedback
    assert feedback["rows"] == 0 and feedback["received_until"] < params_started(settings, run_id)
    with store.engine_for(settings.db_url).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT received_until, feedback_rows FROM run_feedback WHERE run_id = :r"), {"r": run_id}
        ).all()
    assert [tuple(row) for row in rows] == [(feedback["received_until"], 0)]


def params_started(settings, run_id: str) -> str:
    with store.engine_for(settings.db_url).connect() as conn:
        return store.get_run(conn, run_id)["started_at"]


def test_rerunning_score_and_publish_changes_nothing(spark, run):
    settings, run_id, paths = run
    before = read_table(spark, paths.recommendations).collect()
    reports = run_pipeline(spark, settings, run_id, ["score", "publish"])
    assert reports["publish"]["status"] == "already active"
    after = read_table(spark, paths.recommendations)
    assertDataFrameEqual(after, spark.createDataFrame(before, after.schema))
    with store.engine_for(settings.db_url).connect() as conn:
        count = conn.execute(sa.text("select count(*) from recommendations")).scalar()
    assert count == 150 * settings.top_k


@pytest.mark.postgres
def test_the_same_run_publishes_into_postgresql(spark, run, postgres_server):
    settings, run_id, _ = run
    url = postgres_server.create_database("pipeline")
    run_pipeline(spark, settings.replace(db_url=url), run_id, ["publish"])
    queries = [
        "select count(*), count(distinct user_id), sum(movie_id), round(sum(score)::numeric, 6) from recommendations",
        "select count(*) from similar_movies",
        "select count(*) from movies",
    ]
    pg, lite = store.engine_for(url), store.engine_for(settings.db_url)
    with pg.connect() as p, lite.connect() as s:
        assert store.active_run_id(p) == run_id
        for q in queries:
            pg_row = tuple(float(x) for x in p.execute(sa.text(q)).first())
            lite_q = q.replace("::numeric", "")
            lite_row = tuple(float(x) for x in s.execute(sa.text(lite_q)).first())
            assert pg_row == pytest.approx(lite_row), q


def test_live_scoring_agrees_with_the_batch(spark, run):
    from movierec.ranking.online import RunModels, UnknownMovie

    settings, run_id, paths = run
    stored = {r["movie_id"]: r for r in read_table(spark, paths.recommendations).where("user_id = 3").collect()}
    models = RunModels.load(spark, settings, run_id)
    live = {r["movie_id"]: r for r in models.score(3, list(stored)[:5])}
    for movie_id, row in live.items():
        for column in ("score", "cf_score", "cb_score"):
            assert row[column] == pytest.approx(stored[movie_id][column], abs=1e-9)
    assert [r["movie_id"] for r in models.recommend(3, 5)] == [
        m for m, _ in sorted(((m, r["rank"]) for m, r in stored.items()), key=lambda x: x[1])
    ][:5]
    new = models.score(3, [999_999], {999_999: ["Comedy"]})
    # ALS never saw it: z_cf = 0, the chance of an average candidate
    assert (
        new[0]["cf_score"] == pytest.approx(1 / (1 + math.exp(-settings.cf_intercept))) and 0 < new[0]["cb_score"] < 1
    )
    with pytest.raises(UnknownMovie):
        models.score(3, [999_999])


def test_evaluation_metrics_are_stored_with_the_run(spark, run):
    _, _, paths = run
    metrics = read_json(spark, paths.metrics)
    assert metrics["protocol"]["holdout_share"] == 0.2
    for model in ("hybrid", "als", "content", "popularity"):
        assert 0 <= metrics["models"][model]["ndcg"] <= 1
    assert metrics["models"]["content"]["rmse"] > 0
