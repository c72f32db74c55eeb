"""Candidates, the hybrid score, and top-K: the one implementation the batch and the live
fallback share.

The scale problem: ALS gives an implicit preference estimate (around 0..1, spread differs
per user), the random forest a predicted rating (0.5..5, narrow spread).  Blending them raw,
as the seed did, lets whichever has the wider spread decide alone.  So each component is
first standardised per user, against that user's own candidate scores:

    z_cf = (cf_raw - mean_u(cf_raw)) / std_u(cf_raw)        (likewise z_cb)
    cf_score = logistic(z_cf),  cb_score = logistic(z_cb)   (both on 0..1, 0.5 = the user's average candidate)
    score = cf_weight × cf_score + cb_weight × cb_score

The per-user means and deviations are computed once in the batch (`user_scales`) and stored
with the run, so the live fallback puts any new pair on exactly the batch's scale.  A movie
ALS never saw (no cf_raw) gets z_cf = 0: no evidence either way, the content model decides.
"""
from __future__ import annotations

from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.collaborative import CF_RAW, als_candidates, cf_scores
from jobs.content import CB_RAW, cb_scores
from jobs.features import GENRE_EXPOSURE, GENRE_MAP, GENRE_TASTE, MEAN_RATING, N_RATINGS, map_dot, pair_features
from jobs.schemas import CB_SCORE, CF_SCORE, MOVIE, RANK, SCORE, USER

CF_MEAN, CF_STD, CB_MEAN, CB_STD = "cf_mean", "cf_std", "cb_mean", "cb_std"
MIN_STD = 1e-6
CONTENT_AFFINITY = "content_affinity"


def raw_scores(pairs: DataFrame, als: ALSModel, forest: RandomForestRegressionModel,
               movie_feats: DataFrame, profiles: DataFrame) -> DataFrame:
    """(user_id, movie_id) pairs → user_id, movie_id, cf_raw (null if ALS cannot score it), cb_raw."""
    with_cf = cf_scores(als, pairs.select(USER, MOVIE))
    return cb_scores(forest, pair_features(with_cf, movie_feats, profiles)).select(USER, MOVIE, CF_RAW, CB_RAW)


def user_scales(raw: DataFrame) -> DataFrame:
    """Per user: mean and standard deviation of each raw component over the user's candidates."""
    return raw.groupBy(USER).agg(
        F.avg(CF_RAW).alias(CF_MEAN), F.stddev_pop(CF_RAW).alias(CF_STD),
        F.avg(CB_RAW).alias(CB_MEAN), F.stddev_pop(CB_RAW).alias(CB_STD),
    ).fillna({CF_MEAN: 0.0, CF_STD: 1.0, CB_MEAN: 0.0, CB_STD: 1.0})


def _unit_score(raw: str, mean: str, std: str):
    z = (F.col(raw) - F.col(mean)) / F.greatest(F.col(std), F.lit(MIN_STD))
    return 1.0 / (1.0 + F.exp(-F.coalesce(z, F.lit(0.0))))


def blend(raw: DataFrame, scales: DataFrame, cf_weight: float, cb_weight: float) -> DataFrame:
    """raw scores + cf_score, cb_score (each 0..1 on the user's scale) and the hybrid score."""
    scaled = raw.join(scales, USER).select(
        *raw.columns,
        _unit_score(CF_RAW, CF_MEAN, CF_STD).alias(CF_SCORE),
        _unit_score(CB_RAW, CB_MEAN, CB_STD).alias(CB_SCORE),
    )
    return scaled.withColumn(SCORE, F.lit(cf_weight) * F.col(CF_SCORE) + F.lit(cb_weight) * F.col(CB_SCORE))


def top_k(scored: DataFrame, k: int, by: str = SCORE) -> DataFrame:
    """The best k rows per user by `by` (ties: lower movie id first), numbered rank 1..k."""
    window = Window.partitionBy(USER).orderBy(F.col(by).desc(), F.col(MOVIE).asc())
    return scored.withColumn(RANK, F.row_number().over(window)).where(F.col(RANK) <= k)


def content_pool(movie_feats: DataFrame, size: int) -> DataFrame:
    """The movies content candidates are drawn from: the most rated, plus every unrated (new) one."""
    window = Window.orderBy(F.col(N_RATINGS).desc(), F.col(MEAN_RATING).desc(), F.col(MOVIE).asc())
    ranked = movie_feats.withColumn("_pop_rank", F.row_number().over(window))
    return ranked.where((F.col("_pop_rank") <= size) | (F.col(N_RATINGS) == 0)).drop("_pop_rank")


def content_candidates(profiles: DataFrame, pool: DataFrame, ratings: DataFrame, n: int) -> DataFrame:
    """(user_id, movie_id): each user's n unrated pool movies closest to their genre profile.

    Genres only: a user's tag profile can hold hundreds of buckets, and matching it against
    every pool movie cost more than all the other scoring; the forest weighs tags later.
    """
    # Many movies share one genre vector (about 400 distinct among 2000 pool movies): the
    # affinity is computed once per user and distinct vector, then handed to its movies.
    kind = F.map_entries(GENRE_MAP).alias("_kind")
    kinds = pool.select(kind, GENRE_MAP).dropDuplicates(["_kind"])
    affinity = map_dot(GENRE_MAP, GENRE_EXPOSURE) + map_dot(GENRE_MAP, GENRE_TASTE)
    per_kind = profiles.select(USER, GENRE_TASTE, GENRE_EXPOSURE).crossJoin(F.broadcast(kinds)).select(
        USER, "_kind", affinity.alias(CONTENT_AFFINITY))
    scored = per_kind.join(F.broadcast(pool.select(MOVIE, kind, N_RATINGS)), "_kind").select(
        USER, MOVIE, CONTENT_AFFINITY, N_RATINGS)
    unrated = scored.join(ratings.select(USER, MOVIE), [USER, MOVIE], "left_anti")
    window = Window.partitionBy(USER).orderBy(F.col(CONTENT_AFFINITY).desc(), F.col(N_RATINGS).desc(), F.col(MOVIE))
    return unrated.withColumn("_n", F.row_number().over(window)).where(F.col("_n") <= n).select(USER, MOVIE)


def candidates(als: ALSModel, ratings: DataFrame, movie_feats: DataFrame, profiles: DataFrame,
               als_n: int, content_n: int, pool_size: int, users: DataFrame | None = None) -> DataFrame:
    """Each user's candidate movies (every user's, or those in `users`): ALS top-n ∪ content
    top-n, none of them already rated."""
    from_als = als_candidates(als, ratings, als_n, users).select(USER, MOVIE)
    from_content = content_candidates(profiles, content_pool(movie_feats, pool_size), ratings, content_n)
    return from_als.unionByName(from_content).distinct()


def popular_movies(movie_feats: DataFrame, n: int) -> DataFrame:
    """rank, movie_id, score: the n most rated movies (ties: higher mean rating), for cold starts."""
    window = Window.orderBy(F.col(N_RATINGS).desc(), F.col(MEAN_RATING).desc(), F.col(MOVIE).asc())
    return (movie_feats.where(F.col(N_RATINGS) > 0)
            .select(MOVIE, F.col(N_RATINGS).cast("double").alias(SCORE), N_RATINGS, MEAN_RATING)
            .withColumn(RANK, F.row_number().over(window)).where(F.col(RANK) <= n)
            .select(RANK, MOVIE, SCORE))
