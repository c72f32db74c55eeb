"""Collaborative filtering: Spark MLlib ALS on implicit feedback.

How ratings become implicit feedback: every rating is a sign the user chose the movie,
so preference is 1 for every rated movie; how strongly we believe it grows with the
rating: confidence = 1 + alpha × rating (Hu, Koren & Volinsky).  A 1-star rating still
says "watched it" (the strongest predictor of what a user watches next), only with less
confidence than a 5-star one.
"""
from __future__ import annotations

import logging

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.config import Settings
from jobs.schemas import MOVIE, RATING, USER

log = logging.getLogger(__name__)

CF_RAW = "cf_raw"


def als_estimator(settings: Settings) -> ALS:
    return ALS(
        userCol=USER, itemCol=MOVIE, ratingCol=RATING,
        implicitPrefs=True, rank=settings.als_rank, maxIter=settings.als_iterations,
        regParam=settings.als_reg, alpha=settings.als_alpha, seed=settings.seed,
        coldStartStrategy="nan", nonnegative=False, checkpointInterval=5,
    )


def fit_als(ratings: DataFrame, settings: Settings) -> ALSModel:
    return als_estimator(settings).fit(ratings.select(USER, MOVIE, RATING))


def cf_scores(model: ALSModel, pairs: DataFrame) -> DataFrame:
    """pairs + cf_raw, the ALS preference estimate; null where ALS never saw the user or movie."""
    predicted = model.transform(pairs).withColumnRenamed("prediction", CF_RAW)
    return predicted.withColumn(CF_RAW, F.when(~F.isnan(CF_RAW), F.col(CF_RAW)))


def als_candidates(model: ALSModel, ratings: DataFrame, n: int, users: DataFrame | None = None) -> DataFrame:
    """(user_id, movie_id, cf_raw): each user's best n movies by ALS among those not rated yet.

    recommendForAllUsers does not know what a user rated, so it is asked for more and the
    rated movies are filtered out: n plus the largest number of ratings any user has, but at
    most 3n (its cost grows with what it is asked for: 3000 per user took 2-4x as long as 900
    on ml-latest-small).  A user who rated most of their top 3n gets fewer ALS candidates;
    the content candidates still fill their list.
    """
    n_items = model.itemFactors.count()
    most_rated = ratings.groupBy(USER).count().agg(F.max("count")).first()[0] or 0
    ask = int(min(n_items, n + min(most_rated, 2 * n)))
    recs = model.recommendForAllUsers(ask) if users is None else model.recommendForUserSubset(users, ask)
    # drop rated movies inside each user's array (one row per user), then keep the first n
    rated = ratings.groupBy(USER).agg(F.collect_set(MOVIE).alias("_rated"))
    unrated = recs.join(rated, USER, "left").select(USER, F.slice(F.filter(
        "recommendations", lambda r: ~F.coalesce(F.array_contains(F.col("_rated"), r[MOVIE]), F.lit(False))), 1, n
    ).alias("_recs"))
    return unrated.select(USER, F.explode("_recs").alias("rec")).select(
        USER, F.col("rec." + MOVIE).alias(MOVIE), F.col("rec.rating").alias(CF_RAW))
