"""The evaluation protocol on tiny hand-made data: the hold-out, and only the hold-out, is what
the metrics score; models see only the training part; tags written after a user's cut-off
are dropped.  The most-popular model is deterministic, so its lists and metrics are worked
out by hand below."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from movierec.data.split import seeded_sample
from movierec.evaluation import metrics as M
from movierec.evaluation.protocol import evaluate, tags_before_cutoff

pytestmark = pytest.mark.spark

RATINGS = "user_id int, movie_id int, rating double, timestamp long"
TAGS = "user_id int, movie_id int, tag string, timestamp long"

# Six users, five ratings each at times 1..5: the last (time 5) is held out (floor(0.2 * 5) = 1).
TRAIN = {
    1: [(1, 5.0), (2, 4.0), (3, 3.0), (4, 2.0)],
    2: [(1, 4.0), (2, 5.0), (3, 2.0), (5, 3.0)],
    3: [(1, 3.0), (2, 4.0), (4, 5.0), (6, 1.0)],
    4: [(1, 5.0), (3, 4.0), (5, 2.0), (7, 3.0)],
    5: [(2, 3.0), (3, 5.0), (6, 4.0), (8, 2.0)],
    6: [(4, 4.0), (5, 3.0), (7, 5.0), (8, 1.0)],
}
# Movie 9 is rated only in the hold-out, by three users: counting held-out ratings it would
# be a popular movie; in the training part nobody has seen it.
TEST = {1: (9, 5.0), 2: (9, 4.0), 3: (5, 4.5), 4: (2, 2.0), 5: (1, 5.0), 6: (9, 3.0)}
GENRES = {
    1: "Drama",
    2: "Comedy",
    3: "Drama|Comedy",
    4: "Action",
    5: "Action|Drama",
    6: "Comedy",
    7: "Action",
    8: "Drama",
    9: "Comedy",
}

# Ratings per movie in the training part: movies 1, 2, 3: 4; movies 4, 5: 3; movies 6, 7, 8: 2.
# Most rated first: each user's list is that order minus the movies they rated in training,
# written here as groups of equal counts (the order inside a group is the tie rule's).
POPULAR_GROUPS = {
    1: [{5}, {6, 7, 8}],
    2: [{4}, {6, 7, 8}],
    3: [{3}, {5}, {7, 8}],
    4: [{2}, {4}, {6, 8}],
    5: [{1}, {4, 5}, {7}],
    6: [{1, 2, 3}, {6}],
}
# Relevant (held-out rating >= 4): users 1, 2 (movie 9: in no list), 3 (movie 5: 2nd), 5 (movie 1: 1st).
# Every held-out movie relevant: also user 4 (movie 2: 1st) and user 6 (movie 9).
AT_2 = 1 / math.log2(3)


@pytest.fixture(scope="module")
def inputs(spark, settings):
    """(movies, ratings, tags, tiny settings) of the hand-made data."""
    movies = spark.createDataFrame(
        [(m, f"Movie {m} (20{m:02d})", g.split("|")) for m, g in GENRES.items()],
        "movie_id int, title string, genres array<string>",
    )
    rows = [(u, m, r, t) for u, rated in TRAIN.items() for t, (m, r) in enumerate(rated, start=1)]
    rows += [(u, m, r, 5) for u, (m, r) in TEST.items()]
    ratings = spark.createDataFrame(rows, RATINGS)
    tags = spark.createDataFrame([(1, 1, "classic", 2), (1, 9, "loved", 6), (3, 6, "dull", 4)], TAGS)
    tiny = settings.replace(
        als_rank=2,
        als_iterations=2,
        rf_trees=3,
        rf_depth=3,
        als_candidates=10,
        content_candidates=5,
        content_pool=20,
        genre_features=8,
        tag_features=8,
    )
    return movies, ratings, tags, tiny


def evaluated_with(spark, inputs, **overrides):
    """(metrics, {(model, user, rank): movie}) of `evaluate` on the hand-made data."""
    movies, ratings, tags, tiny = inputs
    # thirty ratings: one shuffle partition is plenty (a quarter less time than the session's 4)
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        metrics, details = evaluate(movies, ratings, tags, tiny.replace(**overrides))
        return metrics, {(r["model"], r["user_id"], r["rank"]): r["movie_id"] for r in details.collect()}
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)


@pytest.fixture(scope="module")
def evaluated(spark, inputs):
    return evaluated_with(spark, inputs)


def test_the_hold_out_is_each_users_latest_ratings(evaluated):
    metrics, _ = evaluated
    protocol = metrics["protocol"]
    assert (protocol["holdout_share"], protocol["k"]) == (0.2, 10)
    assert (protocol["train_ratings"], protocol["test_ratings"]) == (24, 6)
    assert protocol["catalogue"] == 8  # movies rated in the training part: 1..8
    # far fewer pairs than rf_max_pairs: the forest learnt from all of them, and the metrics say so
    assert protocol["forest_training_sample"] == {
        "rated_pairs": 24,
        "sample_fraction": 1.0,
        "max_pairs": 250_000,
        "seed": 42,
    }
    # as few held-out users as eval_max_users allows: all of them measured
    assert protocol["evaluated_users"] == {"held_out_users": 6, "sample_fraction": 1.0, "max_users": 10_000, "seed": 42}
    assert protocol["hybrid_ndcg_ci95"] > 0


def test_lists_hold_no_training_movie_of_the_user_and_nothing_unseen_in_training(evaluated):
    _, details = evaluated
    assert {model for model, _, _ in details} == {"hybrid", "als", "content", "popularity"}
    for (model, user, _rank), movie in details.items():
        assert movie not in dict(TRAIN[user]), (model, user, movie)
        assert movie != 9, (model, user)  # seen only in the hold-out


def test_the_popularity_lists_are_the_training_parts(evaluated):
    _, details = evaluated
    for user, groups in POPULAR_GROUPS.items():
        ranked = [details[("popularity", user, rank)] for rank in range(1, 5)]
        chunks, start = [], 0
        for group in groups:
            chunks.append(set(ranked[start : start + len(group)]))
            start += len(group)
        assert chunks == groups, (user, ranked)
    assert not any(("popularity", u, 5) in details for u in TRAIN)


def test_popularity_metrics_come_from_the_hold_out_only(evaluated):
    metrics, _ = evaluated
    popularity = metrics["models"]["popularity"]
    assert popularity["users"] == 4
    assert popularity["ndcg"] == pytest.approx((AT_2 + 1) / 4)
    assert popularity["precision"] == pytest.approx(2 * 0.1 / 4)
    assert popularity["recall"] == pytest.approx(2 / 4)
    assert popularity["map"] == pytest.approx((1 / 2 + 1) / 4)
    assert popularity["hit_rate"] == pytest.approx(0.5)
    assert popularity["coverage"] == pytest.approx(1.0)  # the lists cover movies 1..8
    assert popularity["ndcg_all"] == pytest.approx((AT_2 + 1 + 1) / 6)
    assert popularity["precision_all"] == pytest.approx(3 * 0.1 / 6)


def test_every_model_is_scored_on_the_same_users(evaluated):
    metrics, _ = evaluated
    for name, values in metrics["models"].items():
        assert values["users"] == 4, name
        assert 0 <= values["ndcg"] <= 1 and 0 <= values["precision"] <= 0.1, name
    assert metrics["models"]["content"]["rmse"] > 0


def test_tags_after_the_cutoff_or_on_a_held_out_movie_are_dropped(spark):
    train = spark.createDataFrame([(1, 1, 4.0, 10), (1, 2, 3.0, 20), (2, 1, 5.0, 5)], RATINGS)
    test = spark.createDataFrame([(1, 3, 4.0, 30), (2, 4, 2.0, 40)], RATINGS)
    tags = spark.createDataFrame(
        [
            (1, 1, "a", 15),  # before user 1's cut-off (20): kept
            (1, 2, "b", 20),  # at the cut-off: kept
            (1, 1, "c", 21),  # after it: dropped
            (1, 3, "d", 5),  # early, but on a held-out movie: dropped
            (2, 1, "e", 5),  # user 2's cut-off is 5: kept
            (2, 2, "f", 6),  # after it: dropped
            (2, 4, "g", 1),  # on user 2's held-out movie: dropped
            (3, 1, "h", 999),  # user 3 has no ratings, so nothing to leak: kept
        ],
        TAGS,
    )
    kept = tags_before_cutoff(tags, train, test)
    assert sorted(kept.columns) == sorted(tags.columns)
    assert sorted(tuple(r) for r in kept.select(*tags.columns).collect()) == [
        (1, 1, "a", 15),
        (1, 2, "b", 20),
        (2, 1, "e", 5),
        (3, 1, "h", 999),
    ]
    assert kept.where(F.col("tag") == "d").count() == 0


def test_a_sampled_evaluation_is_the_full_one_on_the_sampled_users(spark, inputs, evaluated):
    full_metrics, full_lists = evaluated
    metrics, lists = evaluated_with(spark, inputs, eval_max_users=3)
    sample = metrics["protocol"]["evaluated_users"]
    assert sample == {"held_out_users": 6, "sample_fraction": 0.5, "max_users": 3, "seed": 42}

    users = sorted({user for _, user, _ in lists})
    drawn = seeded_sample(spark.createDataFrame([(u,) for u in TEST], "user_id int"), ["user_id"], 0.5, 42)
    assert users == sorted(r.user_id for r in drawn.collect())
    assert 0 < len(users) < len(TEST)  # a real sample: some users in, some out
    # each sampled user's lists are exactly the full evaluation's (the models see every training rating)
    assert lists == {key: movie for key, movie in full_lists.items() if key[1] in users}

    # and the metrics are the full lists' metrics over the sampled users' hold-out only
    stacked = spark.createDataFrame(
        [(m, u, r, movie) for (m, u, r), movie in lists.items()], "model string, user_id int, rank int, movie_id int"
    )
    held_out = spark.createDataFrame(
        [(u, m, r) for u, (m, r) in TEST.items() if u in users], "user_id int, movie_id int, rating double"
    )
    expected = M.ranking_metrics_by(
        stacked, held_out, "model", list(full_metrics["models"]), k=10, relevant_threshold=4.0
    )
    for name, values in expected.items():
        assert metrics["models"][name]["ndcg"] == pytest.approx(values["ndcg"]), name
        assert metrics["models"][name]["users"] == values["users"] < full_metrics["models"][name]["users"]
