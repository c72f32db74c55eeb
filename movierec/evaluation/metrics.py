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
divides by min(|R|, k)); `tests/movierec/evaluation/test_eval_metrics.py` checks that they
agree.  The one difference is who is averaged over: Spark averages over every row it is given and scores a
row with an empty label set as 0, while here such users are skipped.  These metrics are
computed here, in one aggregation, rather than with four evaluator passes, because the
project also needs hit rate, the per-user values and the user count from the same join.
Spark has no hit rate or catalogue coverage.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.sql import Column, DataFrame, Window
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
# the list-length column of `ranking_metrics_at`
K = "k"


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


def _user_means() -> list:
    """The means over evaluated users of `user_ranking_metrics`' columns, and their count: the
    one aggregation behind every mean metric here (one list, several, several k, groups of users)."""
    return [
        F.avg(NDCG).alias(NDCG),
        F.avg(PRECISION).alias(PRECISION),
        F.avg(RECALL).alias(RECALL),
        F.avg(AVERAGE_PRECISION).alias(MAP),
        F.avg((F.col(HITS) > 0).cast("double")).alias(HIT_RATE),
        F.count(F.lit(1)).alias(USERS),
    ]


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
    rows = {row[by]: row for row in per_user.groupBy(by).agg(*_user_means()).collect()}
    n_users = max((row[USERS] for row in rows.values()), default=0)
    if n_users == 0:
        n_users = relevant_items(test, relevant_threshold).select(USER).distinct().count()
    if n_users == 0:
        raise EmptyEvaluation(f"no user has a held-out movie rated >= {relevant_threshold}: nothing to rank against")
    results = {}
    for name in lists:
        row = rows.get(name)
        result = {metric: float(row[metric]) if row else 0.0 for metric in (NDCG, PRECISION, RECALL, MAP, HIT_RATE)}
        result[USERS] = int(row[USERS]) if row else n_users
        log.info("ranking metrics %s @%d: %s", name, k, result)
        results[name] = result
    return results


def ndcg_interval(
    recommendations: DataFrame,
    test: DataFrame,
    by: str,
    name: str,
    k: int = 10,
    relevant_threshold: float | None = 4.0,
) -> float:
    """Half-width of the 95% confidence interval of list `name`'s NDCG@k (as `ranking_metrics_by`
    computes it): 1.96 × the per-user values' sample standard deviation / √users, the normal
    approximation of a mean over users; 0.0 below two evaluated users."""
    one = recommendations.where(F.col(by) == F.lit(name))
    per_user = user_ranking_metrics(one, test, k, relevant_threshold)
    row = per_user.agg(F.stddev_samp(NDCG).alias("_sd"), F.count(F.lit(1)).alias("_n")).first()
    if row is None or row["_n"] < 2 or row["_sd"] is None:
        return 0.0
    return 1.96 * float(row["_sd"]) / math.sqrt(int(row["_n"]))


def ranking_metrics_at(
    recommendations: DataFrame,
    test: DataFrame,
    by: str,
    lists: list[str],
    ks: Sequence[int],
    relevant_threshold: float | None = 4.0,
) -> list[dict[str, Any]]:
    """`ranking_metrics_by` at every k of `ks`, in one Spark query (the per-user values of each k
    by `user_ranking_metrics`, stacked, then averaged as everywhere here).

    Returns one dict per (list name, k), names in `lists` order, k ascending:
    {by: name, "k": k, "ndcg", "precision", "recall", "map", "hit_rate", "users"}; at each k
    the same values `ranking_metrics_by(..., k=k)` gives.  A list with no rows scores 0.
    Raises ValueError for no k or a k below 1, `EmptyEvaluation` as `ranking_metrics_by`.
    """
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("ks must not be empty")
    for k in ks:
        _check_k(k)
    per_k = [
        user_ranking_metrics(recommendations, test, k, relevant_threshold, by=(by,)).withColumn(K, F.lit(k)) for k in ks
    ]
    per_user = functools.reduce(DataFrame.unionByName, per_k)
    rows = {(row[by], row[K]): row for row in per_user.groupBy(by, K).agg(*_user_means()).collect()}
    n_users = _evaluated_users(rows.values(), test, relevant_threshold)
    return [{by: name, K: k, **_means_of(rows.get((name, k)), n_users)} for name in lists for k in ks]


def ranking_metrics_by_group(
    recommendations: DataFrame,
    test: DataFrame,
    by: str,
    groups: DataFrame,
    group_columns: Sequence[str],
    k: int = 10,
    relevant_threshold: float | None = 4.0,
) -> list[dict[str, Any]]:
    """`ranking_metrics_by` within groups of users, in one Spark query: `groups` holds
    (user_id, *group_columns), one row per user (e.g. the user's activity bucket).

    Returns one dict per (list name, group) that has evaluated users, sorted by name then group:
    {by: name, *group_columns, "ndcg", "precision", "recall", "map", "hit_rate", "users"}.
    Evaluated users missing from `groups` are left out, so with every user in a group the
    users-weighted mean of a group metric is the list's `ranking_metrics_by` value.
    """
    per_user = user_ranking_metrics(recommendations, test, k, relevant_threshold, by=(by,))
    grouped = per_user.join(groups.select(USER, *group_columns), USER).groupBy(by, *group_columns)
    rows = grouped.agg(*_user_means()).collect()
    results = [{by: row[by], **{c: row[c] for c in group_columns}, **_means_of(row, row[USERS])} for row in rows]
    return sorted(results, key=lambda r: (str(r[by]), *(r[c] for c in group_columns)))


def _evaluated_users(rows: Iterable[Any], test: DataFrame, relevant_threshold: float | None) -> int:
    """The number of evaluated users (as `ranking_metrics_by` finds it); `EmptyEvaluation` if none."""
    n_users = max((row[USERS] for row in rows), default=0)
    if n_users == 0:
        n_users = relevant_items(test, relevant_threshold).select(USER).distinct().count()
    if n_users == 0:
        raise EmptyEvaluation(f"no user has a held-out movie rated >= {relevant_threshold}: nothing to rank against")
    return n_users


def _means_of(row: Any, n_users: int) -> dict[str, float | int]:
    """A row of `_user_means` as plain values; no row (a list without any) scores 0 on every user."""
    result: dict[str, float | int] = {
        metric: float(row[metric]) if row else 0.0 for metric in (NDCG, PRECISION, RECALL, MAP, HIT_RATE)
    }
    result[USERS] = int(row[USERS]) if row else int(n_users)
    return result


def bin_index(value: Column, edges: Sequence[float]) -> Column:
    """The bin of `value` among the bins edges[0..1), [1..2), ..., [n-2..n-1]: 0 .. len(edges) - 2.

    A bin holds lower <= x < upper; values below edges[1] go to the first bin and values at
    or above edges[-2] to the last one (so the last bin is closed at edges[-1] and anything
    outside the edges lands in an end bin).  Exact at the edges (comparisons, no arithmetic);
    null for a null value."""
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be at least two increasing values, got {list(edges)!r}")
    inner = [F.when(value >= F.lit(float(edge)), 1).otherwise(0) for edge in edges[1:-1]]
    index = functools.reduce(lambda a, b: a + b, inner, F.lit(0))
    return F.when(value.isNull(), F.lit(None)).otherwise(index).cast("int")


# columns of `calibration_table`
COMPONENT = "component"
BIN = "bin"
LOWER = "lower"
UPPER = "upper"
PAIRS = "pairs"
PREDICTED = "predicted"
OBSERVED = "observed"
BRIER = "brier"


def calibration_table(
    labelled: DataFrame, columns: Sequence[str], edges: Sequence[float], label: str = "liked"
) -> list[dict[str, Any]]:
    """How well predicted chances match what happened, binned by the prediction, in one Spark query.

    labelled: one row per scored pair with a prediction column for each of `columns` (chances,
        e.g. cf_score, cb_score, score) and `label` (1.0 if it happened, e.g. the user liked
        the held-out movie, else 0.0), as `movierec.ranking.calibration.labelled` gives them.
    Each column's predictions are binned by `bin_index(edges)`.  Returns, per column in order,
    one dict per non-empty bin (ascending), then the column's total (bin, lower and upper None):
    {component, bin, lower, upper, pairs, predicted (mean prediction), observed (mean label),
    brier (mean squared difference)}.  Null predictions are left out.
    """
    n_bins = len(edges) - 1
    exploded = F.explode(
        F.array(*(F.struct(F.lit(c).alias(COMPONENT), F.col(c).cast("double").alias("_p")) for c in columns))
    )
    pairs = (
        labelled.select(exploded.alias("_x"), F.col(label).cast("double").alias("_y"))
        .select("_x.*", "_y")
        .where(F.col("_p").isNotNull())
        .withColumn(BIN, bin_index(F.col("_p"), edges))
    )
    found = (
        pairs.rollup(COMPONENT, BIN)
        .agg(
            F.count(F.lit(1)).alias(PAIRS),
            F.avg("_p").alias(PREDICTED),
            F.avg("_y").alias(OBSERVED),
            F.avg((F.col("_p") - F.col("_y")) ** 2).alias(BRIER),
        )
        .where(F.col(COMPONENT).isNotNull())
        .collect()
    )
    by_key = {(row[COMPONENT], row[BIN]): row for row in found}
    results = []
    for column in columns:
        for number in [*range(n_bins), None]:
            row = by_key.get((column, number))
            if row is None:
                continue
            lower, upper = (None, None) if number is None else (float(edges[number]), float(edges[number + 1]))
            results.append(
                {
                    COMPONENT: column,
                    BIN: number,
                    LOWER: lower,
                    UPPER: upper,
                    PAIRS: int(row[PAIRS]),
                    PREDICTED: float(row[PREDICTED]),
                    OBSERVED: float(row[OBSERVED]),
                    BRIER: float(row[BRIER]),
                }
            )
    return results


def catalogue_coverage(recommendations: DataFrame, catalogue_size: int, k: int = 10) -> float:
    """Distinct movies appearing in any user's top-k list, divided by the catalogue size."""
    return catalogue_coverage_by(_one_list(recommendations), LIST, [""], catalogue_size, k)[""]


def catalogue_coverage_by(
    recommendations: DataFrame, by: str, lists: list[str], catalogue_size: int, k: int = 10
) -> dict[str, float]:
    """`catalogue_coverage` of several stacked lists (column `by` names the list) in one query."""
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be at least 1, got {catalogue_size!r}")
    counts: dict[str, int] = dict(top_k(recommendations, k, (by,)).groupBy(by).agg(F.countDistinct(MOVIE)).collect())
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
