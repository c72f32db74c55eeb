"""The hybrid formula, per-user scaling, top-K and the content pool on hand-made rows."""

import math
import random

import pytest
from pyspark.testing import assertDataFrameEqual

from movierec.ranking import scoring

pytestmark = pytest.mark.spark

LOW, HIGH = 1 / (1 + math.e), 1 / (1 + math.exp(-1))  # logistic(-1) = 0.268941…, logistic(1) = 0.731058…


def test_user_scales_are_mean_and_population_std(spark):
    raw = spark.createDataFrame(
        [(1, 10, 1.0, 2.0), (1, 11, 3.0, 4.0), (2, 10, 5.0, 1.0)],
        "user_id int, movie_id int, cf_raw double, cb_raw double",
    )
    scales = {r["user_id"]: r.asDict() for r in scoring.user_scales(raw).collect()}
    assert scales[1]["cf_mean"] == 2.0 and scales[1]["cf_std"] == 1.0  # (1+3)/2, sqrt(((1-2)²+(3-2)²)/2)
    assert scales[1]["cb_mean"] == 3.0 and scales[1]["cb_std"] == 1.0
    assert scales[2]["cf_std"] == 0.0  # one candidate: no spread


def logistic(x):
    return 1 / (1 + math.exp(-x))


PLAIN = scoring.Blend.plain(0.7, 0.3)


def test_blend_puts_both_components_on_the_users_scale(spark):
    raw = spark.createDataFrame(
        [(1, 10, 1.0, 2.0), (1, 11, 3.0, 4.0), (1, 12, None, 3.0)],
        "user_id int, movie_id int, cf_raw double, cb_raw double",
    )
    scales = spark.createDataFrame(
        [(1, 2.0, 1.0, 3.0, 1.0)], "user_id int, cf_mean double, cf_std double, cb_mean double, cb_std double"
    )
    got = {r["movie_id"]: r for r in scoring.blend(raw, scales, PLAIN).collect()}
    # movie 10: z_cf = (1-2)/1 = -1, z_cb = (2-3)/1 = -1 → both logistic(-1)
    assert got[10]["cf_score"] == pytest.approx(LOW) and got[10]["cb_score"] == pytest.approx(LOW)
    assert got[10]["score"] == pytest.approx(0.7 * LOW + 0.3 * LOW)
    assert got[11]["score"] == pytest.approx(0.7 * HIGH + 0.3 * HIGH)
    # movie 12: ALS never saw it → z_cf = 0, logistic(0) = 0.5; cb z = 0 → 0.5
    assert got[12]["cf_score"] == 0.5 and got[12]["cb_score"] == 0.5
    assert got[12]["score"] == pytest.approx(0.5)


def test_blend_applies_each_components_calibration(spark):
    raw = spark.createDataFrame(
        [(1, 10, 1.0, 2.0), (1, 12, None, 5.0)], "user_id int, movie_id int, cf_raw double, cb_raw double"
    )
    scales = spark.createDataFrame(
        [(1, 2.0, 1.0, 3.0, 0.5)], "user_id int, cf_mean double, cf_std double, cb_mean double, cb_std double"
    )
    params = scoring.Blend(0.6, 0.4, cf_slopes={"cf": 2.0}, cf_intercept=-1.0, cb_slopes={"cb": 0.5}, cb_intercept=-3.0)
    got = {r["movie_id"]: r for r in scoring.blend(raw, scales, params).collect()}
    # movie 10: z_cf = -1 → logistic(2·(-1) - 1); z_cb = (2-3)/0.5 = -2 → logistic(0.5·(-2) - 3)
    assert got[10]["cf_score"] == pytest.approx(logistic(-3.0))
    assert got[10]["cb_score"] == pytest.approx(logistic(-4.0))
    assert got[10]["score"] == pytest.approx(0.6 * logistic(-3.0) + 0.4 * logistic(-4.0))
    # movie 12: no ALS score → the chance of an average candidate, logistic(intercept); z_cb = 4
    assert got[12]["cf_score"] == pytest.approx(logistic(-1.0))
    assert got[12]["cb_score"] == pytest.approx(logistic(-1.0))


def test_a_flat_calibration_leaves_the_order_to_the_steep_component(spark):
    # the content model prefers 11 strongly, ALS prefers 10 mildly; with the content model
    # calibrated flat (it predicts little), ALS's order stands even at equal weights
    raw = spark.createDataFrame(
        [(1, 10, 2.5, 1.0), (1, 11, 1.5, 5.0)], "user_id int, movie_id int, cf_raw double, cb_raw double"
    )
    scales = spark.createDataFrame(
        [(1, 2.0, 0.5, 3.0, 1.0)], "user_id int, cf_mean double, cf_std double, cb_mean double, cb_std double"
    )
    best = lambda params: scoring.top_k(scoring.blend(raw, scales, params), 1).first()["movie_id"]
    assert best(scoring.Blend(0.5, 0.5, {"cf": 1.0}, -2.0, {"cb": 1.0}, -2.0)) == 11
    assert best(scoring.Blend(0.5, 0.5, {"cf": 1.0}, -2.0, {"cb": 0.1}, -2.0)) == 10


def test_content_evidence_beyond_the_forest_enters_the_content_score(spark):
    raw = spark.createDataFrame(
        [(1, 10, 1.0, 3.0, 1.0, 3.0, 0.2), (1, 11, 1.0, 3.0, 3.0, 4.0, 0.4)],
        "user_id int, movie_id int, cf_raw double, cb_raw double, f_movie_popularity double, "
        "f_movie_mean double, f_genre_taste double",
    )
    scales = scoring.user_scales(raw)
    row = scales.first()
    assert (row["popularity_mean"], row["popularity_std"], row["quality_mean"], row["taste_std"]) == pytest.approx(
        (2.0, 1.0, 3.5, 0.1)
    )
    params = scoring.Blend(
        0.7, 0.3, {"cf": 1.0}, -1.0, {"cb": 0.5, "popularity": 2.0, "quality": -1.0, "taste": 0.0}, -3.0
    )
    got = {r["movie_id"]: r for r in scoring.blend(raw, scales, params).collect()}
    # movie 11: z_cb = 0 (no spread), z_popularity = +1, z_quality = +1, taste has slope 0
    assert got[11]["cb_score"] == pytest.approx(logistic(2.0 * 1 - 1.0 * 1 - 3.0))
    assert got[10]["cb_score"] == pytest.approx(logistic(2.0 * -1 - 1.0 * -1 - 3.0))
    assert got[10]["cf_score"] == got[11]["cf_score"] == pytest.approx(logistic(-1.0))


def test_evidence_a_runs_scales_lack_counts_as_average(spark):
    # a run scored before popularity was evidence: its stored scales have no popularity columns
    raw = spark.createDataFrame(
        [(1, 10, 1.0, 3.0, 1.0)], "user_id int, movie_id int, cf_raw double, cb_raw double, f_movie_popularity double"
    )
    scales = spark.createDataFrame(
        [(1, 2.0, 1.0, 3.0, 1.0)], "user_id int, cf_mean double, cf_std double, cb_mean double, cb_std double"
    )
    params = scoring.Blend(0.7, 0.3, {"cf": 1.0}, 0.0, {"cb": 1.0, "popularity": 5.0}, -1.0)
    row = scoring.blend(raw, scales, params).first()
    assert row["cb_score"] == pytest.approx(logistic(-1.0))  # z_cb = 0, z_popularity taken as 0
    scale = scoring.Scale
    live = scoring.blend_values(
        {"cf": 1.0, "cb": 3.0, "popularity": 1.0}, {"cf": scale(2.0, 1.0), "cb": scale(3.0, 1.0)}, params
    )
    assert live["cb_score"] == pytest.approx(row["cb_score"]) and live["score"] == pytest.approx(row["score"])


def test_blend_arrays_is_blend_values_for_every_pair():
    """The live path's vectorised blend against the per-pair one: missing evidence, a flat
    spread (std below MIN_STD), overflowing logits and evidence the scales lack included."""
    import numpy as np

    rng = random.Random(7)
    names = list(scoring.EVIDENCE)
    pairs = [{name: (None if rng.random() < 0.2 else rng.uniform(-50, 50)) for name in names} for _ in range(500)]
    scale = scoring.Scale
    scales = {"cf": scale(0.5, 0.02), "cb": scale(3.2, 1e-9), "popularity": scale(1.0, 2.0), "taste": scale(0.1, 0.3)}
    params = scoring.Blend(0.7, 0.3, {"cf": 40.0}, -4.0, {"cb": 1.5, "popularity": 0.3, "quality": 2.0}, -2.0)
    arrays = {name: np.array([np.nan if p[name] is None else p[name] for p in pairs]) for name in names}
    got = scoring.blend_arrays(arrays, scales, params)
    for i, pair in enumerate(pairs):
        want = scoring.blend_values(pair, scales, params)
        for column in ("score", "cf_score", "cb_score"):
            assert got[column][i] == pytest.approx(want[column], rel=1e-12, abs=1e-300), (i, column)
    assert {float(x) for x in got["cf_score"]} >= {0.0}  # some logits overflow to a chance of 0


def test_settings_give_every_piece_of_evidence_a_slope():
    from movierec.config import Settings

    params = scoring.Blend.from_settings(Settings())
    assert list(params.cf_slopes) == list(scoring.CF_EVIDENCE) and list(params.cb_slopes) == list(scoring.CB_EVIDENCE)


def test_weights_change_the_order(spark):
    raw = spark.createDataFrame(
        [(1, 10, 3.0, 2.0), (1, 11, 1.0, 4.0)], "user_id int, movie_id int, cf_raw double, cb_raw double"
    )
    scales = spark.createDataFrame(
        [(1, 2.0, 1.0, 3.0, 1.0)], "user_id int, cf_mean double, cf_std double, cb_mean double, cb_std double"
    )
    best = lambda w_cf, w_cb: scoring.top_k(scoring.blend(raw, scales, scoring.Blend.plain(w_cf, w_cb)), 1).first()[
        "movie_id"
    ]
    assert best(0.7, 0.3) == 10  # ALS prefers 10
    assert best(0.3, 0.7) == 11  # the content model prefers 11


def test_top_k_ranks_from_one_and_breaks_ties_by_movie_id(spark):
    scored = spark.createDataFrame(
        [(1, 30, 0.5), (1, 20, 0.5), (1, 10, 0.9), (1, 40, 0.1), (2, 10, 0.3)],
        "user_id int, movie_id int, score double",
    )
    expected = spark.createDataFrame(
        [(1, 10, 0.9, 1), (1, 20, 0.5, 2), (1, 30, 0.5, 3), (2, 10, 0.3, 1)],
        "user_id int, movie_id int, score double, rank int",
    )
    assertDataFrameEqual(scoring.top_k(scored, 3), expected)


def test_content_pool_takes_the_most_rated_and_every_new_movie(spark):
    feats = spark.createDataFrame(
        [(1, 50, 4.0), (2, 10, 3.0), (3, 30, 3.5), (4, 0, 3.5), (5, 1, 5.0)],
        "movie_id int, n_ratings long, mean_rating double",
    )
    assert sorted(r["movie_id"] for r in scoring.content_pool(feats, 2).collect()) == [1, 3, 4]


def test_popular_movies_by_count_then_mean(spark):
    feats = spark.createDataFrame(
        [(1, 10, 3.0), (2, 10, 4.0), (3, 50, 2.0), (4, 0, 3.5)], "movie_id int, n_ratings long, mean_rating double"
    )
    assert [(r["rank"], r["movie_id"]) for r in scoring.popular_movies(feats, 3).collect()] == [(1, 3), (2, 2), (3, 1)]
