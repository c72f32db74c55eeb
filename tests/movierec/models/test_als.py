"""ALS candidates against a plain-Python reading of the model's full ranking."""

import random

import pytest

from movierec.models.als import CF_RAW, als_candidates, fit_als

pytestmark = pytest.mark.spark


def test_als_candidates_are_each_users_first_unrated_movies_in_als_order(spark, settings):
    rng = random.Random(11)
    # heavy and light raters: the heaviest decides how far down ALS's list the batch asks
    rated = {u: rng.sample(range(1, 41), rng.choice([3, 6, 15, 30])) for u in range(1, 31)}
    ratings = spark.createDataFrame(
        [(u, m, rng.randint(1, 10) / 2) for u, ms in rated.items() for m in ms],
        "user_id int, movie_id int, rating double",
    )
    model = fit_als(ratings, settings.replace(als_rank=4, als_iterations=3, als_feedback="rating"))
    n = 6
    n_items = model.itemFactors.count()
    ask = min(n_items, n + min(max(len(ms) for ms in rated.values()), 2 * n))

    full = {
        r["user_id"]: [(x["movie_id"], x["rating"]) for x in r["recommendations"]]
        for r in model.recommendForAllUsers(n_items).collect()
    }
    got = {}
    for r in als_candidates(model, ratings, n).collect():
        got.setdefault(r["user_id"], []).append((r["movie_id"], r[CF_RAW]))

    for user, ranking in full.items():
        expected = [(m, s) for m, s in ranking[:ask] if m not in rated[user]][:n]
        assert len({s for _, s in expected}) == len(expected), "ties would leave the order to chance"
        assert sorted(got[user], key=lambda x: -x[1]) == expected, user
        assert len(expected) < n or len(got[user]) == n

    some = spark.createDataFrame([(3,), (7,)], "user_id int")
    subset = {r["user_id"] for r in als_candidates(model, ratings, n, some).collect()}
    assert subset == {3, 7}
