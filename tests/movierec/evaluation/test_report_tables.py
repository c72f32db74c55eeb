"""The evaluation's tables for the report, against hand-computed values on tiny frames:
metrics at several k, metrics by group of users (activity buckets), calibration bins."""

from __future__ import annotations

from math import log2

import pytest

from movierec.evaluation.metrics import (
    EmptyEvaluation,
    bin_index,
    calibration_table,
    ranking_metrics_at,
    ranking_metrics_by,
    ranking_metrics_by_group,
)
from movierec.evaluation.protocol import activity_buckets, activity_table, bucket_label

pytestmark = pytest.mark.spark

LIST_COLUMNS = "model string, user_id int, rank int, movie_id int"
TEST_COLUMNS = "user_id int, movie_id int, rating double"
LISTS = {
    "a": {1: [10, 11, 12], 2: [20, 21, 22]},  # user 1 hits at 1 and 3, user 2 at 3
    "b": {1: [12, 10, 11]},  # user 1 hits at 1 and 2; no list for user 2
}
HELD_OUT = [
    (1, 10, 5.0),
    (1, 12, 4.0),
    (1, 11, 3.0),  # user 1: R = {10, 12}
    (2, 22, 4.0),
    (2, 23, 4.5),
    (2, 20, 2.5),  # user 2: R = {22, 23}; 23 never recommended
    (3, 30, 2.0),  # user 3: nothing liked, not evaluated
]
D2 = 1 / log2(3)  # the discount at position 2; position 1: 1, position 3: 1/2
METRICS = ("ndcg", "precision", "recall", "map", "hit_rate", "users")


@pytest.fixture()
def lists(spark):
    rows = [
        (model, user, rank, movie)
        for model, users in LISTS.items()
        for user, movies in users.items()
        for rank, movie in enumerate(movies, start=1)
    ]
    return spark.createDataFrame(rows, LIST_COLUMNS)


@pytest.fixture()
def held_out(spark):
    return spark.createDataFrame(HELD_OUT, TEST_COLUMNS)


def _values(row):
    return tuple(row[m] for m in METRICS)


def test_metrics_at_several_k_by_hand(lists, held_out):
    got = ranking_metrics_at(lists, held_out, "model", ["a", "b", "c"], ks=[3, 1])
    assert [(r["model"], r["k"]) for r in got] == [("a", 1), ("a", 3), ("b", 1), ("b", 3), ("c", 1), ("c", 3)]
    by = {(r["model"], r["k"]): _values(r) for r in got}
    #               ndcg, precision, recall, map, hit rate, users (1 and 2)
    # a, k=1: user 1 [10] hit: 1, 1, 1/2, AP 1/min(2,1) = 1; user 2 [20]: 0
    assert by[("a", 1)] == pytest.approx((0.5, 0.5, 0.25, 0.5, 0.5, 2))
    # a, k=3: user 1 hits at 1, 3: DCG 1.5, IDCG (m = 2) 1 + D2, P 2/3, R 1, AP (1 + 2/3)/2 = 5/6;
    #         user 2 hit at 3: DCG 0.5, P 1/3, R 1/2, AP (1/3)/2 = 1/6
    assert by[("a", 3)] == pytest.approx(((1.5 + 0.5) / (1 + D2) / 2, 0.5, 0.75, 0.5, 1.0, 2))
    # b, k=1: user 1 [12] hit: 1, 1, 1/2, 1; user 2 has no list: 0
    assert by[("b", 1)] == pytest.approx((0.5, 0.5, 0.25, 0.5, 0.5, 2))
    # b, k=3: user 1 hits at 1, 2: DCG = IDCG, P 2/3, R 1, AP (1 + 1)/2 = 1; user 2: 0
    assert by[("b", 3)] == pytest.approx((0.5, 1 / 3, 0.5, 0.5, 0.5, 2))
    # c has no rows at all: zeros, over the same 2 users
    assert by[("c", 1)] == by[("c", 3)] == (0.0, 0.0, 0.0, 0.0, 0.0, 2)


def test_metrics_at_k_are_the_metrics_at_that_k(lists, held_out):
    got = ranking_metrics_at(lists, held_out, "model", ["a", "b"], ks=[2, 3], relevant_threshold=None)
    for k in (2, 3):
        alone = ranking_metrics_by(lists, held_out, "model", ["a", "b"], k=k, relevant_threshold=None)
        for row in (r for r in got if r["k"] == k):
            assert _values(row) == pytest.approx(_values(alone[row["model"]]), abs=1e-15)


def test_metrics_at_k_rejects_bad_ks_and_nothing_to_evaluate(spark, lists, held_out):
    with pytest.raises(ValueError, match="ks"):
        ranking_metrics_at(lists, held_out, "model", ["a"], ks=[])
    with pytest.raises(ValueError, match="k must be at least 1"):
        ranking_metrics_at(lists, held_out, "model", ["a"], ks=[0, 3])
    with pytest.raises(EmptyEvaluation):
        ranking_metrics_at(lists, spark.createDataFrame([(1, 10, 2.0)], TEST_COLUMNS), "model", ["a"], ks=[1])


def test_metrics_by_group_of_users_by_hand(spark, lists, held_out):
    groups = spark.createDataFrame([(1, 0), (2, 1), (3, 1)], "user_id int, bucket int")
    got = ranking_metrics_by_group(lists, held_out, "model", groups, ["bucket"], k=3)
    assert [(r["model"], r["bucket"]) for r in got] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    by = {(r["model"], r["bucket"]): _values(r) for r in got}
    # bucket 0 is user 1 alone, bucket 1 user 2 alone (user 3 is not evaluated): the per-user values at 3
    assert by[("a", 0)] == pytest.approx((1.5 / (1 + D2), 2 / 3, 1.0, 5 / 6, 1.0, 1))
    assert by[("a", 1)] == pytest.approx((0.5 / (1 + D2), 1 / 3, 0.5, 1 / 6, 1.0, 1))
    assert by[("b", 0)] == pytest.approx((1.0, 2 / 3, 1.0, 1.0, 1.0, 1))
    assert by[("b", 1)] == (0.0, 0.0, 0.0, 0.0, 0.0, 1)  # no list for user 2: evaluated, all zero


def test_activity_buckets_and_their_table(spark, lists, held_out):
    train = spark.createDataFrame(
        [(1, 100, 3.0)] + [(2, 200 + i, 3.0) for i in range(3)] + [(4, 400 + i, 3.0) for i in range(7)], TEST_COLUMNS
    )
    # edges 0, 2, 4: user 1 (1 rating) -> bucket 0, user 2 (3) -> 1, user 4 (7) -> 2 (open)
    buckets = {r["user_id"]: r["bucket"] for r in activity_buckets(train, (0, 2, 4)).collect()}
    assert buckets == {1: 0, 2: 1, 4: 2}
    assert [bucket_label(0, 2), bucket_label(2, 4), bucket_label(4, None)] == ["0–1", "2–3", "4+"]

    rows = activity_table(lists, train, held_out, ["b", "a"], edges=(0, 2, 4), k=3)
    assert [(r["model"], r["bucket"], r["label"], r["lower"], r["upper"], r["users"]) for r in rows] == [
        ("b", 0, "0–1", 0, 2, 1),
        ("b", 1, "2–3", 2, 4, 1),
        ("a", 0, "0–1", 0, 2, 1),
        ("a", 1, "2–3", 2, 4, 1),
    ]
    assert rows[2]["ndcg"] == pytest.approx(1.5 / (1 + D2))  # model a, user 1 at k = 3, as above


def test_bin_index_at_and_outside_the_edges(spark):
    values = [(-1.0,), (0.0,), (0.99,), (1.0,), (2.5,), (3.0,), (10.0,), (None,)]
    frame = spark.createDataFrame(values, "x double")
    got = [r["b"] for r in frame.select(bin_index(frame["x"], (0, 1, 2, 3)).alias("b")).collect()]
    # bins [0, 1), [1, 2), [2, 3]; below the first edge -> 0, at or above the last -> 2, null stays null
    assert got == [0, 0, 0, 1, 2, 2, 2, None]
    for bad in ((1,), (0, 0, 1), (2, 1)):
        with pytest.raises(ValueError, match="edges"):
            bin_index(frame["x"], bad)


def test_calibration_bins_by_hand(spark):
    labelled = spark.createDataFrame(
        [(0.05, 0.2, 1.0), (0.08, 0.6, 0.0), (0.10, 0.05, 0.0), (0.30, None, 1.0), (0.70, 1.0, 1.0)],
        "score double, cf_score double, liked double",
    )
    got = calibration_table(labelled, ["score", "cf_score"], (0.0, 0.1, 0.5, 1.0))
    rows = [
        (r["component"], r["bin"], r["lower"], r["upper"], r["pairs"], r["predicted"], r["observed"], r["brier"])
        for r in got
    ]
    expected = [
        # score: [0, 0.1) holds 0.05 (liked) and 0.08; [0.1, 0.5) 0.10 (at the edge) and 0.30 (liked); [0.5, 1] 0.70
        ("score", 0, 0.0, 0.1, 2, 0.065, 0.5, ((0.05 - 1) ** 2 + 0.08**2) / 2),
        ("score", 1, 0.1, 0.5, 2, 0.2, 0.5, (0.1**2 + 0.7**2) / 2),
        ("score", 2, 0.5, 1.0, 1, 0.7, 1.0, 0.3**2),
        ("score", None, None, None, 5, 1.23 / 5, 0.6, (0.9025 + 0.0064 + 0.01 + 0.49 + 0.09) / 5),
        # cf_score: the null is left out; 1.0 is in the last bin (closed)
        ("cf_score", 0, 0.0, 0.1, 1, 0.05, 0.0, 0.05**2),
        ("cf_score", 1, 0.1, 0.5, 1, 0.2, 1.0, 0.8**2),
        ("cf_score", 2, 0.5, 1.0, 2, 0.8, 0.5, 0.6**2 / 2),
        ("cf_score", None, None, None, 4, 1.85 / 4, 0.5, (0.05**2 + 0.8**2 + 0.6**2) / 4),
    ]
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        assert row[:5] == want[:5]
        assert row[5:] == pytest.approx(want[5:], abs=1e-12), want


def test_calibration_leaves_out_empty_bins(spark):
    labelled = spark.createDataFrame([(0.01, 0.0), (0.02, 1.0)], "score double, liked double")
    got = calibration_table(labelled, ["score"], (0.0, 0.1, 0.5, 1.0))
    assert [(r["bin"], r["pairs"]) for r in got] == [(0, 2), (None, 2)]
