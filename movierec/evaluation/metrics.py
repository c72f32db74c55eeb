"""Evaluation metrics: pure functions over Spark DataFrames, returning plain Python values.

Input contracts
---------------
recommendations: (user_id, rank, movie_id), one row per recommended movie, rank 1 = best
    (the `score` stage's output, `schemas.RECOMMENDATIONS`; other columns are ignored).
    Only the order of ranks matters: a user's rows are numbered 1, 2, ... by (rank, movie_id),
    so a list with gaps in its ranks (e.g. after filtering) is read as the list it is.
    A movie appears at most once per user (the model contract suite checks this).
test: (user_id, movie_id, rating), the held-out ratings (`movierec.data.split.temporal_split`);
    `rating` is needed only when a relevance threshold is given.

Ranking metrics (the definitions the project reports)
-----------------------------------------------------
For a user, R = the set of held-out movies rated >= `relevant_threshold` (every held-out
movie when the threshold is None), the top-k list = their first k recommendations, a hit =
a movie of the top-k list that is in R, and m = min(|R|, k).

- NDCG@k: binary gain, log2 discount: DCG = sum over hits at position p of 1 / log2(p + 1);
  IDCG = sum over p = 1..m of 1 / log2(p + 1); NDCG = DCG / IDCG.
- precision@k = hits / k (also when the list is shorter than k).
- recall@k = hits / |R|.
- MAP@k: AP = (sum over hits at position p of (hits at positions <= p) / p) / m.
- hit rate: share of users with at least one hit.
- users: the number of users evaluated = users with |R| >= 1.  Users with no relevant
  held-out movie are skipped (no ranking can be judged on them); users with relevant
  held-out movies but no recommendations are evaluated and score 0 on everything.

Comparison with Spark's `pyspark.ml.evaluation.RankingEvaluator` (mllib RankingMetrics):
ndcgAtK, precisionAtK, recallAtK and meanAveragePrecisionAtK use the same four formulas
(Spark's binary NDCG uses the natural log, but the base cancels in DCG / IDCG; its MAP@k also
divides by min(|R|, k)); `tests/movierec/test_metrics.py` checks that they agree.  The one
difference is who is averaged over: Spark averages over every row it is given and scores a
row with an empty label set as 0, while here such users are skipped.  These metrics are
computed here, in one aggregation, rather than with four evaluator passes, because the
project also needs hit rate, the per-user values and the user count from the same join.
Spark has no hit rate or catalogue coverage.
"""
from __future__ import annotations

import logging
from typing import Mapping

from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec.data.schemas import MOVIE, RANK, RATING, USER
from movierec.text import format_table

log = logging.getLogger(__name__)

# keys of the dictionaries returned here (and of the metrics JSON of a run)
NDCG = "ndcg"
PRECISION = "precision"
RECALL = "recall"
MAP = "map"
HIT_RATE = "hit_rate"
USERS = "users"
COVERAGE = "coverage"
RMSE = "rmse"
MAE = "mae"
# the column order of `metrics_table`; keys not listed here follow, in first-seen order
METRIC_ORDER = (NDCG, PRECISION, RECALL, MAP, HIT_RATE, COVERAGE, RMSE, MAE, USERS)

# per-user columns of `user_ranking_metrics`
POSITION = "position"
N_RELEVANT = "n_relevant"
HITS = "hits"
AVERAGE_PRECISION = "average_precision"
# the list-name column of a single list in the stacked (`*_by`) functions
LIST = "_list"


class EmptyEvaluation(ValueError):
    """Nothing to evaluate: no user with a relevant held-out movie, or no predictions."""


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")


def top_k(recommendations: DataFrame, k: int, by: tuple[str, ...] = ()) -> DataFrame:
    """(*by, user_id, movie_id, position): each user's first k recommendations, positions 1..k
    (per value of the `by` columns, e.g. per model, when several lists are stacked)."""
    _check_k(k)
    order = Window.partitionBy(*by, USER).orderBy(F.col(RANK).asc(), F.col(MOVIE).asc())
    return (
        recommendations.select(*by, USER, RANK, MOVIE)
        .withColumn(POSITION, F.row_number().over(order))
        .filter(F.col(POSITION) <= k)
        .select(*by, USER, MOVIE, POSITION)
    )


def relevant_items(test: DataFrame, relevant_threshold: float | None = 4.0) -> DataFrame:
    """(user_id, movie_id): held-out movies rated >= threshold (all of them if threshold is None)."""
    if relevant_threshold is not None:
        test = test.filter(F.col(RATING) >= F.lit(float(relevant_threshold)))
    return test.select(USER, MOVIE).distinct()


def user_ranking_metrics(
    recommendations: DataFrame,
    test: DataFrame,
    k: int = 10,
    relevant_threshold: float | None = 4.0,
    by: tuple[str, ...] = (),
) -> DataFrame:
    """One row per evaluated user: user_id, n_relevant, hits, ndcg, precision, recall, average_precision.

    Definitions in the module docstring.  Users without a relevant held-out movie are absent.
    With `by` columns (several lists stacked, e.g. one per model), one row per (*by, user):
    every evaluated user is scored against each list value found in `recommendations`.
    """
    _check_k(k)
    relevant = relevant_items(test, relevant_threshold)
    per_user_relevant = relevant.groupBy(USER).agg(F.count(F.lit(1)).alias(N_RELEVANT))
    if by:
        per_user_relevant = per_user_relevant.crossJoin(F.broadcast(recommendations.select(*by).distinct()))

    hits = top_k(recommendations, k, by).join(relevant, [USER, MOVIE])
    hit_number = F.row_number().over(Window.partitionBy(*by, USER).orderBy(POSITION))
    hit_stats = (
        hits.withColumn("_hit_number", hit_number)
        .groupBy(*by, USER)
        .agg(
            F.count(F.lit(1)).alias(HITS),
            F.sum(F.lit(1.0) / F.log2(F.col(POSITION) + 1)).alias("_dcg"),
            F.sum(F.col("_hit_number") / F.col(POSITION)).alias("_precision_sum"),
        )
    )

    ideal_hits = F.least(F.col(N_RELEVANT), F.lit(k))
    ideal_dcg = F.aggregate(
        F.sequence(F.lit(1), ideal_hits), F.lit(0.0), lambda acc, p: acc + F.lit(1.0) / F.log2(p + 1)
    )
    return (
        per_user_relevant.join(hit_stats, [*by, USER], "left")
        .na.fill({HITS: 0, "_dcg": 0.0, "_precision_sum": 0.0})
        .select(
            *by,
            USER,
            N_RELEVANT,
            F.col(HITS).cast("int").alias(HITS),
            (F.col("_dcg") / ideal_dcg).alias(NDCG),
            (F.col(HITS) / F.lit(float(k))).alias(PRECISION),
            (F.col(HITS) / F.col(N_RELEVANT)).alias(RECALL),
            (F.col("_precision_sum") / ideal_hits).alias(AVERAGE_PRECISION),
        )
    )


def _one_list(recommendations: DataFrame) -> DataFrame:
    """A single list in the stacked shape of the `*_by` functions (list name "")."""
    return recommendations.select(F.lit("").alias(LIST), USER, RANK, MOVIE)


def ranking_metrics(
    recommendations: DataFrame,
    test: DataFrame,
    k: int = 10,
    relevant_threshold: float | None = 4.0,
) -> dict[str, float | int]:
    """Mean NDCG@k, precision@k, recall@k, MAP@k and hit rate over evaluated users, and their count.

    Returns {"ndcg", "precision", "recall", "map", "hit_rate", "users"}; raises
    `EmptyEvaluation` when no user has a relevant held-out movie.
    """
    return ranking_metrics_by(_one_list(recommendations), test, LIST, [""], k, relevant_threshold)[""]


def ranking_metrics_by(
    recommendations: DataFrame,
    test: DataFrame,
    by: str,
    lists: list[str],
    k: int = 10,
    relevant_threshold: float | None = 4.0,
) -> dict[str, dict[str, float | int]]:
    """`ranking_metrics` of several stacked lists in one Spark query: recommendations holds a
    column `by` naming each row's list (e.g. the model); returns {list name: metrics} for each
    name in `lists`.  A list with no rows at all scores 0 on every user."""
    per_user = user_ranking_metrics(recommendations, test, k, relevant_threshold, by=(by,))
    rows = {row[by]: row for row in per_user.groupBy(by).agg(
        F.avg(NDCG).alias(NDCG),
        F.avg(PRECISION).alias(PRECISION),
        F.avg(RECALL).alias(RECALL),
        F.avg(AVERAGE_PRECISION).alias(MAP),
        F.avg((F.col(HITS) > 0).cast("double")).alias(HIT_RATE),
        F.count(F.lit(1)).alias(USERS),
    ).collect()}
    n_users = max((row[USERS] for row in rows.values()), default=0)
    if n_users == 0:
        n_users = relevant_items(test, relevant_threshold).select(USER).distinct().count()
    if n_users == 0:
        raise EmptyEvaluation(
            f"no user has a held-out movie rated >= {relevant_threshold}: nothing to rank against"
        )
    results = {}
    for name in lists:
        row = rows.get(name)
        result = {metric: float(row[metric]) if row else 0.0 for metric in (NDCG, PRECISION, RECALL, MAP, HIT_RATE)}
        result[USERS] = int(row[USERS]) if row else n_users
        log.info("ranking metrics %s @%d: %s", name, k, result)
        results[name] = result
    return results


def catalogue_coverage(recommendations: DataFrame, catalogue_size: int, k: int = 10) -> float:
    """Distinct movies appearing in any user's top-k list, divided by the catalogue size."""
    return catalogue_coverage_by(_one_list(recommendations), LIST, [""], catalogue_size, k)[""]


def catalogue_coverage_by(recommendations: DataFrame, by: str, lists: list[str], catalogue_size: int,
                          k: int = 10) -> dict[str, float]:
    """`catalogue_coverage` of several stacked lists (column `by` names the list) in one query."""
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be at least 1, got {catalogue_size!r}")
    counts = dict(top_k(recommendations, k, (by,)).groupBy(by).agg(F.countDistinct(MOVIE)).collect())
    return {name: counts.get(name, 0) / catalogue_size for name in lists}


def rating_errors(
    predictions: DataFrame, label_col: str = RATING, prediction_col: str = "prediction"
) -> dict[str, float]:
    """{"rmse", "mae"} of `prediction_col` against `label_col`, by Spark's RegressionEvaluator.

    Raises `EmptyEvaluation` on an empty DataFrame (Spark would answer NaN).
    """
    if predictions.isEmpty():
        raise EmptyEvaluation("no predictions to compare with ratings")
    evaluator = RegressionEvaluator(labelCol=label_col, predictionCol=prediction_col)
    return {
        RMSE: float(evaluator.evaluate(predictions, {evaluator.metricName: "rmse"})),
        MAE: float(evaluator.evaluate(predictions, {evaluator.metricName: "mae"})),
    }


def format_value(value: object, missing: str = "-") -> str:
    """A metric as the tables show it: floats to 4 places, a missing one as `missing`."""
    if value is None:
        return missing
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.4f}"
    return str(value)


def metrics_table(results: Mapping[str, Mapping[str, object]]) -> str:
    """A plain-text table: one row per model (in the given order), one column per metric.

    Columns follow `METRIC_ORDER`, then any other keys in first-seen order; floats are shown
    with 4 decimals, integers as they are, a metric a model lacks as "-".
    """
    if not results:
        raise ValueError("no results to tabulate")
    seen: list[str] = []
    for metrics in results.values():
        seen.extend(key for key in metrics if key not in seen)
    columns = [key for key in METRIC_ORDER if key in seen] + [key for key in seen if key not in METRIC_ORDER]

    header = ["model", *columns]
    body = [[model, *(format_value(metrics.get(c)) for c in columns)] for model, metrics in results.items()]
    return format_table(header, body, right=range(1, len(header)))
