"""The driver-side fold-in (movierec.models.als.solve_user_factor) against Spark's own ALS: for a
user whose ratings all went into the fit, re-solving from the final item factors gives the
factor Spark stored (ALS solves the users last, from those item factors)."""

import random

import numpy as np
import pytest

from movierec.models.als import feedback_values, fit_als, gramian, solve_user_factor

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def ratings(spark):
    rng = random.Random(5)
    rated = {u: rng.sample(range(1, 61), rng.choice([2, 5, 12, 30])) for u in range(1, 41)}
    return [(u, m, rng.randint(1, 10) / 2) for u, ms in rated.items() for m in ms]


@pytest.mark.parametrize(
    ("mode", "alpha", "reg"), [("centred", 4.0, 0.1), ("rating", 1.0, 0.05), ("midpoint", 2.0, 0.3)]
)
def test_the_solved_factor_is_the_one_spark_stored(spark, settings, ratings, mode, alpha, reg):
    frame = spark.createDataFrame(ratings, "user_id int, movie_id int, rating double")
    model = fit_als(
        frame, settings.replace(als_rank=6, als_iterations=4, als_feedback=mode, als_alpha=alpha, als_reg=reg)
    )
    items = {r["id"]: np.asarray(r["features"], dtype=np.float32) for r in model.itemFactors.collect()}
    users = {r["id"]: np.asarray(r["features"], dtype=np.float32) for r in model.userFactors.collect()}
    gram = gramian(np.stack(list(items.values())))
    by_user: dict[int, list[tuple[int, float]]] = {}
    for u, m, r in ratings:
        by_user.setdefault(u, []).append((m, r))
    negative_seen = False
    for user, rows in by_user.items():
        values = feedback_values(np.array([r for _, r in rows]), mode)
        negative_seen |= bool((values <= 0).any())
        solved = solve_user_factor(np.stack([items[m] for m, _ in rows]), values, gram, reg, alpha)
        assert solved.dtype == np.float32
        np.testing.assert_allclose(solved, users[user], rtol=1e-4, atol=1e-5 * float(np.abs(users[user]).max()))
    if mode != "rating":
        assert negative_seen, "the preference-0 branch (v <= 0) was not exercised"


def test_feedback_values_are_implicit_feedbacks():
    ratings = np.array([5.0, 3.0, 1.0, 4.5])
    assert feedback_values(ratings, "rating").tolist() == [5.0, 3.0, 1.0, 4.5]
    assert feedback_values(ratings, "binary").tolist() == [1.0] * 4
    assert feedback_values(ratings, "centred").tolist() == [1.625, -0.375, -2.375, 1.125]
    assert feedback_values(ratings, "midpoint").tolist() == [2.25, 0.25, -1.75, 1.75]
    with pytest.raises(ValueError, match="unknown ALS feedback mode"):
        feedback_values(ratings, "stars")
