"""Calibration: a logistic regression of liked on each component's z-score, on held-out ratings."""

import math
import random

import pytest

from movierec.ranking import calibration

pytestmark = pytest.mark.spark


def test_labelled_marks_liked_candidates_and_keeps_only_users_with_a_held_out_part(spark):
    z = spark.createDataFrame(
        [(1, 10, 1.0, 0.0), (1, 11, -1.0, 0.5), (2, 10, 0.0, 0.0)],
        "user_id int, movie_id int, z_cf double, z_cb double",
    )  # any columns pass through
    held_out = spark.createDataFrame(
        [(1, 10, 4.0), (1, 12, 5.0), (1, 11, 3.5)], "user_id int, movie_id int, rating double"
    )
    got = {(r["user_id"], r["movie_id"]): r["liked"] for r in calibration.labelled(z, held_out, 4.0).collect()}
    assert got == {(1, 10): 1.0, (1, 11): 0.0}  # 11 rated below 4; user 2 has no held-out part


Z_SCHEMA = "user_id int, movie_id int, z_cf double, z_cb double, z_popularity double, z_quality double, z_taste double"


def test_calibrate_recovers_the_slopes_and_intercepts_that_generated_the_labels(spark):
    rng = random.Random(3)
    rows, held_out = [], []
    for i in range(8000):
        z_cf, z_cb, z_pop, z_quality, z_taste = (rng.gauss(0, 1) for _ in range(5))
        rows.append((i // 50, i, z_cf, z_cb, z_pop, z_quality, z_taste))
        # liked depends on z_cf and, on the content side, on z_pop only
        if rng.random() < 1 / (1 + math.exp(-(1.5 * z_cf + 1.0 * z_pop - 2.0))):
            held_out.append((i // 50, i, 4.5))
    z = spark.createDataFrame(rows, Z_SCHEMA)
    got = calibration.calibrate(z, spark.createDataFrame(held_out, "user_id int, movie_id int, rating double"))
    assert list(got) == list(calibration.CALIBRATION)
    # ALS side: liked ~ z_cf alone, with z_pop's part folded into a flatter slope and the intercept
    assert 0.9 < got["cf_slope"] < 1.5 and got["cf_intercept"] < -1.0
    # content side: popularity carries the signal it was given, the others none
    assert 0.6 < got["cb_popularity_slope"] < 1.2
    assert max(abs(got[n]) for n in ("cb_slope", "cb_quality_slope", "cb_taste_slope")) < 0.1


def test_calibrate_refuses_held_out_data_with_nothing_liked(spark):
    z = spark.createDataFrame([(1, 10, 1.0, 0.0, 0.0, 0.0, 0.0)], Z_SCHEMA)
    held_out = spark.createDataFrame([(1, 10, 2.0)], "user_id int, movie_id int, rating double")
    with pytest.raises(ValueError, match="nothing to calibrate"):
        calibration.calibrate(z, held_out)
