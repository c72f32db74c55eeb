"""Temporal hold-out: exact membership on a hand-made set, ties in timestamp included; the random
per-user hold-out: its sizes, its reproducibility and its independence from row order."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from movierec.data.schemas import RATINGS
from movierec.data.split import random_split, temporal_split, validation_split

pytestmark = pytest.mark.spark

# (user_id, movie_id, rating, timestamp), deliberately not in time order
ROWS = [
    # user 1: 5 ratings -> floor(0.2*5) = 1 held out.  Order by (ts, movie):
    #   14@50, 10@100, 11@200, 12@300, 13@300 -> 12 and 13 tie at 300, higher id 13 is latest
    (1, 12, 4.0, 300),
    (1, 10, 3.0, 100),
    (1, 14, 2.0, 50),
    (1, 13, 5.0, 300),
    (1, 11, 1.0, 200),
    # user 2: 10 ratings -> floor(0.2*10) = 2 held out.  Order by (ts, movie):
    #   20@1 21@2 22@3 23@4 24@5 26@6 28@7 | 25@1000 27@1000 29@1000
    #   the three-way tie straddles the cut: 27 and 29 are held out, 25 stays in train
    (2, 29, 3.5, 1000),
    (2, 20, 4.0, 1),
    (2, 25, 4.5, 1000),
    (2, 21, 3.0, 2),
    (2, 22, 2.5, 3),
    (2, 27, 5.0, 1000),
    (2, 23, 4.0, 4),
    (2, 24, 1.5, 5),
    (2, 26, 3.0, 6),
    (2, 28, 4.0, 7),
    # user 3: 3 ratings -> floor(0.6) = 0, raised to at least 1: the latest, 32@30
    (3, 31, 4.0, 20),
    (3, 32, 3.0, 30),
    (3, 30, 5.0, 10),
    # user 4: a single rating -> stays in train, nothing held out
    (4, 40, 4.0, 500),
    # user 5: 2 ratings in the same second -> 1 held out, the higher movie id (51)
    (5, 51, 2.0, 7),
    (5, 50, 3.0, 7),
]

TEST_KEYS = {(1, 13), (2, 27), (2, 29), (3, 32), (5, 51)}


def _subset(spark, keys):
    return spark.createDataFrame([r for r in ROWS if (r[0], r[1]) in keys], RATINGS)


@pytest.fixture()
def ratings(spark):
    return spark.createDataFrame(ROWS, RATINGS)


def test_temporal_split_exact_membership(spark, ratings):
    train, test = temporal_split(ratings, holdout_share=0.2)

    train_keys = {(r[0], r[1]) for r in ROWS} - TEST_KEYS
    assertDataFrameEqual(test, _subset(spark, TEST_KEYS))
    assertDataFrameEqual(train, _subset(spark, train_keys))
    # columns and types pass through unchanged
    assert train.schema == RATINGS and test.schema == RATINGS


def test_single_rating_user_stays_in_train(ratings):
    train, test = temporal_split(ratings)

    assert [tuple(r) for r in train.filter("user_id = 4").collect()] == [(4, 40, 4.0, 500)]
    assert test.filter("user_id = 4").count() == 0


def test_larger_share(spark, ratings):
    # share 0.5: user 1 floor(2.5)=2 -> 12@300, 13@300
    #            user 2 floor(5.0)=5 -> the last five of 20 21 22 23 24 | 26 28 25 27 29
    #            user 3 floor(1.5)=1 -> 32;  user 4 single -> none;  user 5 floor(1.0)=1 -> 51
    _, test = temporal_split(ratings, holdout_share=0.5)

    expected = {(1, 12), (1, 13), (2, 26), (2, 28), (2, 25), (2, 27), (2, 29), (3, 32), (5, 51)}
    assertDataFrameEqual(test, _subset(spark, expected))


def test_floor_is_not_fooled_by_floating_point(spark):
    # 0.29 * 100 is 28.999999999999996 in floating point; the rule says floor(29.0) = 29
    rows = [(7, m, 3.0, m) for m in range(1, 101)]
    _, test = temporal_split(spark.createDataFrame(rows, RATINGS), holdout_share=0.29)

    # the 29 latest are movies 72..100 (timestamp = movie id)
    assert sorted(r.movie_id for r in test.collect()) == list(range(72, 101))


def test_validation_is_carved_from_train_only(spark, ratings):
    train, test = temporal_split(ratings)
    fit, validation = validation_split(train, share=0.2)

    # train after the test split, ordered by (ts, movie):
    #   user 1: 14 10 11 12 (4 rows) -> floor(0.8)=0 -> 1: movie 12
    #   user 2: 20 21 22 23 24 26 28 25 (8 rows) -> floor(1.6)=1: movie 25 (25@1000 is latest)
    #   user 3: 30 31 (2 rows) -> 1: movie 31
    #   user 4: 40 alone -> stays in fit
    #   user 5: 50 alone (51 went to test) -> stays in fit
    validation_keys = {(1, 12), (2, 25), (3, 31)}
    fit_keys = {(r[0], r[1]) for r in ROWS} - TEST_KEYS - validation_keys
    assertDataFrameEqual(validation, _subset(spark, validation_keys))
    assertDataFrameEqual(fit, _subset(spark, fit_keys))


@pytest.mark.parametrize("share", [0, 1, -0.1, 1.5])
def test_share_must_be_strictly_between_0_and_1(ratings, share):
    with pytest.raises(ValueError, match="between 0 and 1"):
        temporal_split(ratings, holdout_share=share)


def _keys(df) -> set[tuple[int, int]]:
    return {(r.user_id, r.movie_id) for r in df.select("user_id", "movie_id").collect()}


def test_random_split_sizes_and_partition(spark, ratings):
    train, test = random_split(ratings, holdout_share=0.25, seed=42)

    # per user max(1, floor(0.25 n)), a single rating kept in train:
    # user 1 (5 rows) 1, user 2 (10) 2, user 3 (3) 1, user 4 (1) 0, user 5 (2) 1
    held = {}
    for user, _ in _keys(test):
        held[user] = held.get(user, 0) + 1
    assert held == {1: 1, 2: 2, 3: 1, 5: 1}
    assert _keys(train) | _keys(test) == {(r[0], r[1]) for r in ROWS}
    assert not _keys(train) & _keys(test)
    assert train.schema == RATINGS and test.schema == RATINGS


def test_random_split_is_reproducible_and_seeded(spark):
    rows = [(7, m, 3.0, m) for m in range(1, 101)] + [(8, m, 4.0, 1) for m in range(1, 41)]
    forward = spark.createDataFrame(rows, RATINGS)
    shuffled = spark.createDataFrame(list(reversed(rows)), RATINGS).repartition(3)

    _, test = random_split(forward, 0.25, seed=1)
    _, again = random_split(shuffled, 0.25, seed=1)
    _, other = random_split(forward, 0.25, seed=2)

    assert _keys(test) == _keys(again)  # same seed: same split, whatever the row order
    assert _keys(test) != _keys(other)  # another seed draws another split
    assert sorted(u for u, _ in _keys(test)).count(7) == 25 and len(_keys(test)) == 25 + 10
    # not the latest rows (that is the temporal split): user 7's held-out movies are spread out
    held = sorted(m for u, m in _keys(test) if u == 7)
    assert held != list(range(76, 101)) and held[0] < 50
