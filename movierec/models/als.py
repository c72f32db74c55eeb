"""Collaborative filtering: Spark MLlib ALS on implicit feedback.

How ratings become implicit feedback (`settings.als_feedback`).  Spark's implicit ALS reads
a value v per rated pair as preference p = 1 if v > 0 else 0 and confidence
c = 1 + alpha × |v| (Hu, Koren & Volinsky); v = 0 is the same as not rated.  The modes:

- ``rating``: v = rating.  Every rating is a sign the user chose the movie (the strongest
  predictor of what a user watches next); a 5-star one counts more than a 1-star one.
- ``binary``: v = 1.  Only "watched it" counts, not how much it was liked.
- ``centred``: v = rating − the user's mean rating.  Movies rated above the user's own
  average are positive, those below are negative evidence (preference 0 with confidence).
- ``midpoint``: v = rating − 2.75, the middle of the 0.5..5 scale: 3 stars and up are
  positive, 2.5 and below negative, whoever gave them.

The choice was measured on a validation split (benchmarks/quality.md).
"""

from __future__ import annotations

import logging

import numpy as np
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec.config import Settings
from movierec.data.schemas import MOVIE, RATING, USER

log = logging.getLogger(__name__)

CF_RAW = "cf_raw"


def als_estimator(settings: Settings) -> ALS:
    return ALS(
        userCol=USER,
        itemCol=MOVIE,
        ratingCol=RATING,
        implicitPrefs=True,
        rank=settings.als_rank,
        maxIter=settings.als_iterations,
        regParam=settings.als_reg,
        alpha=settings.als_alpha,
        seed=settings.seed,
        coldStartStrategy="nan",
        nonnegative=False,
        checkpointInterval=5,
        numUserBlocks=settings.als_blocks,
        numItemBlocks=settings.als_blocks,
    )


RATING_MIDPOINT = 2.75


def implicit_feedback(ratings: DataFrame, mode: str) -> DataFrame:
    """(user_id, movie_id, rating) with `rating` replaced by the value ALS reads (module docstring)."""
    rated = ratings.select(USER, MOVIE, RATING)
    if mode == "rating":
        return rated
    if mode == "binary":
        return rated.withColumn(RATING, F.lit(1.0))
    if mode == "centred":
        return rated.withColumn(RATING, F.col(RATING) - F.avg(RATING).over(Window.partitionBy(USER)))
    if mode == "midpoint":
        return rated.withColumn(RATING, F.col(RATING) - F.lit(RATING_MIDPOINT))
    raise ValueError(f"unknown ALS feedback mode {mode!r}; modes: rating, binary, centred, midpoint")


def feedback_values(ratings: np.ndarray, mode: str) -> np.ndarray:
    """implicit_feedback of one user's ratings on the driver: the values ALS reads, as float32
    (ALS casts its rating column to float).  The centred mean is the user's own, as the
    window in implicit_feedback takes it; the sum in float64, as Spark's avg."""
    ratings = np.asarray(ratings, dtype=np.float64)
    if mode == "rating":
        values = ratings
    elif mode == "binary":
        values = np.ones_like(ratings)
    elif mode == "centred":
        values = ratings - (ratings.sum() / len(ratings) if len(ratings) else 0.0)
    elif mode == "midpoint":
        values = ratings - RATING_MIDPOINT
    else:
        raise ValueError(f"unknown ALS feedback mode {mode!r}; modes: rating, binary, centred, midpoint")
    return values.astype(np.float32)


def gramian(item_factors: np.ndarray) -> np.ndarray:
    """YᵀY over every item factor, in double: the part of each user's normal equation that
    implicit ALS shares between users (Spark's computeYtY)."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def solve_user_factor(
    item_factors: np.ndarray, values: np.ndarray, gram: np.ndarray, reg: float, alpha: float
) -> np.ndarray:
    """One user's factor as Spark's implicit ALS solves it from fixed item factors.

    `item_factors` holds the rows of the movies the user rated, `values` their feedback
    values (`feedback_values`), `gram` is `gramian` of all item factors.  Spark's
    computeFactors: each pair adds c1·y·yᵀ to YᵀY (c1 = alpha·|v|) and, for v > 0, (1 + c1)·y
    to the right-hand side (preference 1 with confidence 1 + c1; v <= 0: preference 0); the
    regularisation is regParam times the number of positive values (ALS-WR); Cholesky in
    double, the factor stored as float.  ALS's last half-iteration solves the users from the
    final item factors, so for a user whose ratings are all in the run this gives the stored
    factor (tests/movierec/models/test_als_fold_in.py holds it to Spark's)."""
    y = np.asarray(item_factors, dtype=np.float64)
    v = np.asarray(values, dtype=np.float32).astype(np.float64)
    c1 = alpha * np.abs(v)
    positive = v > 0
    lhs = gram + (y * c1[:, None]).T @ y + reg * int(positive.sum()) * np.eye(gram.shape[0])
    rhs = ((1.0 + c1) * positive) @ y
    return np.linalg.solve(lhs, rhs).astype(np.float32)


def fit_als(ratings: DataFrame, settings: Settings) -> ALSModel:
    return als_estimator(settings).fit(implicit_feedback(ratings, settings.als_feedback))


def cf_scores(model: ALSModel, pairs: DataFrame) -> DataFrame:
    """pairs + cf_raw, the ALS preference estimate; null where ALS never saw the user or movie."""
    predicted = model.transform(pairs).withColumnRenamed("prediction", CF_RAW)
    return predicted.withColumn(CF_RAW, F.when(~F.isnan(CF_RAW), F.col(CF_RAW)))


def collect_factors(factors: DataFrame) -> dict[int, np.ndarray]:
    """An ALS factor table (id, features) as id -> float32 vector on the driver (float32: the
    bits ALS stores, so als_predictions gives transform's numbers)."""
    return {row["id"]: np.asarray(row["features"], dtype=np.float32) for row in factors.collect()}


# movies per step of a block of users' predictions: a tile of the block's sums stays in the
# core's cache while every factor is added to it (benchmarks/als_predictions.py)
MOVIES_PER_TILE = 4096


def als_predictions(users: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """ALSModel.transform's prediction of users' pairs with some movies, as float32, from the
    movies' factors factor-major (`columns[f]`: every movie's factor f).  `users`: one factor
    (then one prediction per movie) or a block of them, users × rank (then users × movies).

    Spark computes each in single precision, one product added at a time in factor order
    (ALSModel's `predict` UDF); the same order and rounding here give the same bits, which
    tests/movierec/ranking/test_online.py checks against ALSModel.transform.  A block is summed
    a tile of movies at a time (each number's own sum in the same order, so the same bits): each
    tile of factors is read once for the whole block instead of once per user.  The candidates
    of the batch and of the live path are drawn from these numbers (movierec.ranking.candidates)."""
    block = np.asarray(users, dtype=np.float32)
    if block.ndim == 1:
        total = np.zeros(columns.shape[1], dtype=np.float32)
        for f in range(columns.shape[0]):
            total += columns[f] * block[f]
        return total
    totals = np.zeros((len(block), columns.shape[1]), dtype=np.float32)
    products = np.empty((len(block), min(MOVIES_PER_TILE, columns.shape[1])), dtype=np.float32)
    for start in range(0, columns.shape[1], MOVIES_PER_TILE):
        tile = totals[:, start : start + MOVIES_PER_TILE]
        product = products[:, : tile.shape[1]]
        for f in range(columns.shape[0]):
            np.multiply(block[:, f : f + 1], columns[f, start : start + MOVIES_PER_TILE], out=product)
            tile += product
    return totals
