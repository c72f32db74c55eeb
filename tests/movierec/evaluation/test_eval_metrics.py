"""Metrics against hand-computed values on tiny cases, and against Spark's own evaluators."""

from __future__ import annotations

import random
import statistics
from math import log2, sqrt

import pytest
from pyspark.ml.evaluation import RankingEvaluator
from pyspark.testing import assertDataFrameEqual

from movierec.evaluation.metrics import (
    EmptyEvaluation,
    catalogue_coverage,
    catalogue_coverage_by,
    metrics_table,
    ndcg_interval,
    ranking_metrics,
    ranking_metrics_by,
    rating_errors,
    user_ranking_metrics,
)

pytestmark = pytest.mark.spark

REC_COLUMNS = "user_id int, rank int, movie_id int"
TEST_COLUMNS = "user_id int, movie_id int, rating double"

# recommendations, as lists in rank order
LISTS = {
    1: [10, 11, 12, 13, 14],
    2: [20, 21, 22],
    3: [30, 10, 31],
    4: [40, 41, 42],
}
# held-out ratings
HELD_OUT = [
    (1, 10, 5.0),
    (1, 12, 4.0),
    (1, 15, 4.5),
    (1, 11, 3.0),  # relevant at 4.0: {10, 12, 15}
    (2, 22, 4.0),
    (2, 23, 2.0),  # relevant at 4.0: {22}
    (3, 33, 5.0),  # relevant at 4.0: {33}, never recommended
    (4, 40, 3.0),  # nothing relevant at 4.0: skipped
]

# 1/log2(p+1) for positions 1, 2, 3
D1, D2, D3 = 1.0, 1 / log2(3), 0.5


def _recs(spark, lists):
    rows = [(user, rank, movie) for user, movies in lists.items() for rank, movie in enumerate(movies, start=1)]
    return spark.createDataFrame(rows, REC_COLUMNS)


@pytest.fixture()
def recs(spark):
    return _recs(spark, LISTS)


@pytest.fixture()
def test_ratings(spark):
    return spark.createDataFrame(HELD_OUT, TEST_COLUMNS)


def test_per_user_values_at_3(spark, recs, test_ratings):
    per_user = user_ranking_metrics(recs, test_ratings, k=3, relevant_threshold=4.0)

    expected = spark.createDataFrame(
        [
            # user 1: top-3 10 11 12, R = {10, 12, 15}: hits at positions 1 and 3
            #   DCG = D1 + D3 = 1.5, IDCG over min(3,3)=3 = D1 + D2 + D3
            #   precision 2/3, recall 2/3, AP = (1/1 + 2/3) / 3 = 5/9
            (1, 3, 2, 1.5 / (D1 + D2 + D3), 2 / 3, 2 / 3, 5 / 9),
            # user 2: top-3 20 21 22, R = {22}: hit at position 3
            #   DCG = D3 = 0.5, IDCG over min(1,3)=1 = D1 = 1 -> 0.5
            #   precision 1/3, recall 1/1, AP = (1/3) / 1
            (2, 1, 1, 0.5, 1 / 3, 1.0, 1 / 3),
            # user 3: R = {33}, not recommended: all zero
            (3, 1, 0, 0.0, 0.0, 0.0, 0.0),
            # user 4: no held-out rating >= 4: absent
        ],
        "user_id int, n_relevant bigint, hits int, ndcg double, precision double, recall double, "
        "average_precision double",
    )
    assertDataFrameEqual(per_user, expected)


def test_the_ndcg_interval_is_the_normal_one_of_the_per_user_values(spark, recs, test_ratings):
    stacked = recs.selectExpr("'a' AS model", "*").unionByName(recs.selectExpr("'b' AS model", "*").limit(0))
    per_user = [1.5 / (D1 + D2 + D3), 0.5, 0.0]  # users 1, 2, 3 at k = 3 (the test above)
    expected = 1.96 * statistics.stdev(per_user) / sqrt(3)
    assert ndcg_interval(stacked, test_ratings, "model", "a", k=3) == pytest.approx(expected)  # = 0.5644
    # a list with no rows scores 0 for every user: no spread
    assert ndcg_interval(stacked, test_ratings, "model", "b", k=3) == 0.0
    # one evaluated user: no interval
    assert ndcg_interval(stacked, test_ratings.where("user_id = 1"), "model", "a", k=3) == 0.0


def test_ranking_metrics_at_3(recs, test_ratings):
    result = ranking_metrics(recs, test_ratings, k=3, relevant_threshold=4.0)

    # means over users 1, 2, 3 of the per-user values above
    assert result == {
        "ndcg": pytest.approx((1.5 / (1 + 1 / log2(3) + 0.5) + 0.5 + 0) / 3),  # = 0.40131
        "precision": pytest.approx((2 / 3 + 1 / 3 + 0) / 3),  # = 1/3
        "recall": pytest.approx((2 / 3 + 1 + 0) / 3),  # = 5/9
        "map": pytest.approx((5 / 9 + 1 / 3 + 0) / 3),  # = 8/27
        "hit_rate": pytest.approx(2 / 3),  # users 1 and 2 hit, user 3 does not
        "users": 3,  # user 4 skipped
    }
    assert result["ndcg"] == pytest.approx(0.401306, abs=1e-6)


def test_k_larger_than_the_lists(recs, test_ratings):
    result = ranking_metrics(recs, test_ratings, k=5, relevant_threshold=4.0)

    # user 1: top-5 10..14, hits still at 1 and 3 (15 never recommended); IDCG over min(3,5)=3
    #   ndcg 1.5/(1+1/log2 3+0.5), precision 2/5, recall 2/3, AP (1 + 2/3)/min(3,5) = 5/9
    # user 2: list of 3 < k: hit at 3, ndcg 0.5, precision 1/5 (divided by k, not by 3), recall 1, AP 1/3
    # user 3: zeros
    assert result == {
        "ndcg": pytest.approx((1.5 / (1 + 1 / log2(3) + 0.5) + 0.5 + 0) / 3),
        "precision": pytest.approx((2 / 5 + 1 / 5 + 0) / 3),  # = 0.2
        "recall": pytest.approx((2 / 3 + 1 + 0) / 3),
        "map": pytest.approx((5 / 9 + 1 / 3 + 0) / 3),
        "hit_rate": pytest.approx(2 / 3),
        "users": 3,
    }


def test_k_1(recs, test_ratings):
    result = ranking_metrics(recs, test_ratings, k=1, relevant_threshold=4.0)

    # top-1: user 1 -> 10 (hit), user 2 -> 20 (miss), user 3 -> 30 (miss)
    # user 1: ndcg 1/1, precision 1/1, recall 1/3, AP 1/min(3,1) = 1
    assert result == {
        "ndcg": pytest.approx(1 / 3),
        "precision": pytest.approx(1 / 3),
        "recall": pytest.approx((1 / 3) / 3),  # = 1/9
        "map": pytest.approx(1 / 3),
        "hit_rate": pytest.approx(1 / 3),
        "users": 3,
    }


def test_no_threshold_makes_every_held_out_movie_relevant(recs, test_ratings):
    result = ranking_metrics(recs, test_ratings, k=3, relevant_threshold=None)

    # user 1: R = {10, 11, 12, 15}, top-3 10 11 12 all hit; IDCG over min(4,3)=3 = DCG -> ndcg 1
    #   precision 3/3, recall 3/4, AP (1/1 + 2/2 + 3/3)/3 = 1
    # user 2: R = {22, 23}, hit at 3: ndcg 0.5/(1 + 1/log2 3), precision 1/3, recall 1/2,
    #   AP (1/3)/min(2,3) = 1/6
    # user 3: R = {33}: zeros
    # user 4: R = {40}, hit at 1: ndcg 1, precision 1/3, recall 1, AP 1/1
    assert result == {
        "ndcg": pytest.approx((1 + 0.5 / (1 + 1 / log2(3)) + 0 + 1) / 4),
        "precision": pytest.approx((1 + 1 / 3 + 0 + 1 / 3) / 4),  # = 5/12
        "recall": pytest.approx((3 / 4 + 1 / 2 + 0 + 1) / 4),  # = 0.5625
        "map": pytest.approx((1 + 1 / 6 + 0 + 1) / 4),  # = 13/24
        "hit_rate": pytest.approx(3 / 4),
        "users": 4,
    }


def test_user_with_relevant_items_but_no_recommendations_scores_zero(spark):
    recs = _recs(spark, {2: [20, 21, 22]})
    held_out = spark.createDataFrame([(2, 22, 4.0), (5, 50, 4.5)], TEST_COLUMNS)

    result = ranking_metrics(recs, held_out, k=3)

    # user 2 as before (ndcg 0.5, precision 1/3, recall 1, AP 1/3); user 5 has no list: zeros
    assert result == {
        "ndcg": pytest.approx(0.25),
        "precision": pytest.approx(1 / 6),
        "recall": pytest.approx(0.5),
        "map": pytest.approx(1 / 6),
        "hit_rate": pytest.approx(0.5),
        "users": 2,
    }


def test_order_comes_from_rank_even_with_gaps(spark):
    # ranks 9, 2, 5 given out of order: the list is 31 (rank 2), 32 (rank 5), 33 (rank 9)
    recs = spark.createDataFrame([(3, 9, 33), (3, 2, 31), (3, 5, 32)], REC_COLUMNS)
    held_out = spark.createDataFrame([(3, 33, 5.0)], TEST_COLUMNS)

    result = ranking_metrics(recs, held_out, k=3)

    # the hit is at position 3: ndcg (1/log2 4)/1 = 0.5, AP (1/3)/1
    assert result["ndcg"] == pytest.approx(0.5)
    assert result["map"] == pytest.approx(1 / 3)


def test_no_evaluable_user_is_an_error(recs, spark):
    held_out = spark.createDataFrame([(4, 40, 3.0)], TEST_COLUMNS)

    with pytest.raises(EmptyEvaluation):
        ranking_metrics(recs, held_out, k=3, relevant_threshold=4.0)


def test_k_must_be_positive(recs, test_ratings):
    with pytest.raises(ValueError, match="k must be at least 1"):
        ranking_metrics(recs, test_ratings, k=0)


# Spark's RankingEvaluator takes, per user, the predicted ids in order and the relevant ids.
# Its input below is written out by hand (first case) or built in plain Python (second case),
# never by movierec.evaluation.metrics.
SPARK_METRICS = {
    "ndcg": "ndcgAtK",
    "precision": "precisionAtK",
    "recall": "recallAtK",
    "map": "meanAveragePrecisionAtK",
}


def _spark_ranking(spark, pairs, k):
    frame = spark.createDataFrame(pairs, "prediction array<double>, label array<double>")
    evaluator = RankingEvaluator(k=k)
    return {ours: evaluator.evaluate(frame, {evaluator.metricName: theirs}) for ours, theirs in SPARK_METRICS.items()}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_agrees_with_spark_ranking_evaluator(spark, recs, test_ratings, k):
    # the evaluated users (1, 2, 3) with their lists and relevant sets at threshold 4.0;
    # user 4 is left out because Spark would score its empty label set as 0 instead of skipping it
    pairs = [
        ([10.0, 11.0, 12.0, 13.0, 14.0], [10.0, 12.0, 15.0]),
        ([20.0, 21.0, 22.0], [22.0]),
        ([30.0, 10.0, 31.0], [33.0]),
    ]
    ours = ranking_metrics(recs, test_ratings, k=k, relevant_threshold=4.0)
    theirs = _spark_ranking(spark, pairs, k)

    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_agrees_with_spark_on_random_lists(spark):
    rng = random.Random(7)
    lists, held_out, pairs = {}, [], []
    for user in range(1, 9):
        movies = rng.sample(range(100), 12)
        lists[user] = movies[:6]
        # held-out movies: some from the list, some not, ratings on the half-star scale
        chosen = rng.sample(movies, rng.randint(1, 8))
        ratings = [rng.choice([1.0, 2.5, 3.5, 4.0, 4.5, 5.0]) for _ in chosen]
        held_out += [(user, m, r) for m, r in zip(chosen, ratings)]
        relevant = [float(m) for m, r in zip(chosen, ratings) if r >= 3.5]
        if relevant:
            pairs.append(([float(m) for m in movies[:6]], relevant))
    recs = _recs(spark, lists)
    held = spark.createDataFrame(held_out, TEST_COLUMNS)

    for k in (2, 4, 8):
        ours = ranking_metrics(recs, held, k=k, relevant_threshold=3.5)
        theirs = _spark_ranking(spark, pairs, k)
        assert ours["users"] == len(pairs)
        for name, value in theirs.items():
            assert ours[name] == pytest.approx(value, abs=1e-12), (k, name)


def test_catalogue_coverage(recs):
    # top-3 lists: {10,11,12} {20,21,22} {30,10,31} {40,41,42}: 11 distinct (10 twice) of 20
    assert catalogue_coverage(recs, catalogue_size=20, k=3) == pytest.approx(11 / 20)
    # top-5 adds 13 and 14 from user 1's longer list: 13 of 20
    assert catalogue_coverage(recs, catalogue_size=20, k=5) == pytest.approx(13 / 20)
    # top-1: 10, 20, 30, 40
    assert catalogue_coverage(recs, catalogue_size=20, k=1) == pytest.approx(4 / 20)


def _stacked(spark, lists_by_name):
    rows = [
        (name, user, rank, movie)
        for name, lists in lists_by_name.items()
        for user, movies in lists.items()
        for rank, movie in enumerate(movies, start=1)
    ]
    return spark.createDataFrame(rows, "model string, " + REC_COLUMNS)


OTHER_LISTS = {1: [15, 10], 2: [23, 22, 20], 3: [33]}


@pytest.mark.parametrize("threshold", [4.0, None])
def test_stacked_lists_score_as_each_list_alone(spark, recs, test_ratings, threshold):
    stacked = _stacked(spark, {"a": LISTS, "b": OTHER_LISTS})

    together = ranking_metrics_by(stacked, test_ratings, "model", ["a", "b", "none"], k=3, relevant_threshold=threshold)

    assert together["a"] == ranking_metrics(recs, test_ratings, k=3, relevant_threshold=threshold)
    assert together["b"] == ranking_metrics(_recs(spark, OTHER_LISTS), test_ratings, k=3, relevant_threshold=threshold)
    assert together["a"] != together["b"]
    # a list with no rows is scored on the same users, all zero
    evaluated = together["a"]["users"]
    assert together["none"] == {
        "ndcg": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "map": 0.0,
        "hit_rate": 0.0,
        "users": evaluated,
    }


def test_stacked_coverage_is_each_list_alone(spark, recs):
    stacked = _stacked(spark, {"a": LISTS, "b": OTHER_LISTS})

    coverage = catalogue_coverage_by(stacked, "model", ["a", "b", "none"], catalogue_size=20, k=3)
    # b's top-3 lists: {15, 10} {23, 22, 20} {33}: 6 distinct

    assert coverage == {"a": pytest.approx(11 / 20), "b": pytest.approx(6 / 20), "none": 0.0}
    assert coverage["a"] == catalogue_coverage(recs, catalogue_size=20, k=3)


def test_rating_errors(spark):
    predictions = spark.createDataFrame(
        [(4.0, 3.5), (3.0, 4.0), (5.0, 5.0), (2.0, 3.0)], "rating double, prediction double"
    )

    # errors 0.5, -1, 0, -1
    # MAE  = (0.5 + 1 + 0 + 1) / 4 = 0.625
    # RMSE = sqrt((0.25 + 1 + 0 + 1) / 4) = sqrt(0.5625) = 0.75
    assert rating_errors(predictions) == {"rmse": pytest.approx(0.75), "mae": pytest.approx(0.625)}


def test_rating_errors_other_columns_and_empty(spark):
    predictions = spark.createDataFrame([(1.0, 3.0)], "label double, cb_score double")
    # one error of 2: RMSE = MAE = 2
    assert rating_errors(predictions, label_col="label", prediction_col="cb_score") == {
        "rmse": pytest.approx(2.0),
        "mae": pytest.approx(2.0),
    }
    with pytest.raises(EmptyEvaluation):
        rating_errors(predictions.limit(0), label_col="label", prediction_col="cb_score")


def test_metrics_table():
    results = {
        "hybrid": {"ndcg": 0.31234, "precision": 0.1, "users": 3, "coverage": 0.55},
        "popularity": {"users": 12, "ndcg": 0.05, "precision": 0.02, "rmse": None},
    }

    # columns in the project's order (ndcg, precision, coverage, users), then unknown keys
    # (none here; "rmse" is known and comes before users); a missing value is "-"
    assert metrics_table(results) == "\n".join(
        [
            "model         ndcg  precision  coverage  rmse  users",
            "----------  ------  ---------  --------  ----  -----",
            "hybrid      0.3123     0.1000    0.5500     -      3",
            "popularity  0.0500     0.0200         -     -     12",
        ]
    )


def test_metrics_table_unknown_metric_goes_last_and_empty_is_an_error():
    assert metrics_table({"als": {"seconds": 12.5, "map": 0.25}}) == "\n".join(
        [
            "model     map  seconds",
            "-----  ------  -------",
            "als    0.2500  12.5000",
        ]
    )
    with pytest.raises(ValueError):
        metrics_table({})
