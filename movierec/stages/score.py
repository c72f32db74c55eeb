"""Stage `score`: candidates for every user, the hybrid score of every user×candidate pair,
the top-K per user; plus the cold-start list and similar movies for serving.

    spark-submit jobs/score.py --run-id ID [--top-k 100 --cf-weight 0.7 --cb-weight 0.3]
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from movierec.config import Settings
from movierec.data.schemas import CB_SCORE, CF_SCORE, MOVIE, RANK, SCORE, USER
from movierec.features import N_RATINGS
from movierec.models.similar import nearest_neighbours
from movierec.ranking import scoring
from movierec.ranking.candidates import candidates
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import load_model, read_table, write_json, write_table
from movierec.stages.runner import stage_main

log = logging.getLogger(__name__)

# a movie needs this many ratings before its ALS factors are trusted as someone's neighbour
MIN_RATINGS_FOR_SIMILAR = 5


def recommend(als, forest, ratings, movie_feats, profiles, settings: Settings):
    """(recommendations with ranks 1..K, per-user scales) for every user in `ratings`."""
    s = settings
    pairs = candidates(
        als, ratings, movie_feats, profiles, s.als_candidates, s.content_candidates, s.content_pool, forest=forest
    )
    raw = pairs.select(USER, MOVIE, *scoring.EVIDENCE.values()).persist()
    scales = scoring.user_scales(raw).persist()
    scored = scoring.blend(raw, scales, scoring.Blend.from_settings(settings))
    recs = scoring.top_k(scored, settings.top_k).select(USER, RANK, MOVIE, SCORE, CF_SCORE, CB_SCORE)
    return recs, scales


def similar_movies(spark: SparkSession, als: ALSModel, movie_feats, k: int):
    factors: pd.DataFrame = als.itemFactors.join(
        movie_feats.select(F.col(MOVIE).alias("id"), N_RATINGS), "id"
    ).toPandas()
    if factors.empty:
        return spark.createDataFrame([], "movie_id int, rank int, similar_movie_id int, score double")
    table = nearest_neighbours(
        factors["id"].to_numpy(),
        np.vstack(factors["features"].to_numpy()),
        k,
        eligible=(factors[N_RATINGS] >= MIN_RATINGS_FOR_SIMILAR).to_numpy(),
    )
    return spark.createDataFrame(table.astype({MOVIE: "int32", RANK: "int32", "similar_movie_id": "int32"}))


def score(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    ratings = read_table(spark, paths.ratings)
    movie_feats = read_table(spark, paths.movie_features)
    profiles = read_table(spark, paths.user_profiles)
    als = load_model(ALSModel, spark, paths.als_model)
    forest = load_model(RandomForestRegressionModel, spark, paths.rf_model)

    recs, scales = recommend(als, forest, ratings, movie_feats, profiles, settings)
    write_table(scales, paths.user_scales)
    write_table(recs, paths.recommendations)
    write_table(scoring.popular_movies(movie_feats, settings.popular_n), paths.popular)
    write_table(similar_movies(spark, als, movie_feats, settings.similar_k), paths.similar, require_rows=False)

    recs = read_table(spark, paths.recommendations)
    per_user = recs.groupBy(USER).count()
    stats = per_user.agg(
        F.count("*").alias("users"), F.min("count").alias("min_k"), F.max("count").alias("max_k")
    ).first()
    users = ratings.select(USER).distinct().count()
    if stats["users"] < users or stats["min_k"] < settings.top_k:
        log.warning(
            "score: %d of %d users have recommendations; fewest per user %s (top_k %d)",
            stats["users"],
            users,
            stats["min_k"],
            settings.top_k,
        )
    report = {
        "users": users,
        "users_with_recommendations": stats["users"],
        "min_per_user": stats["min_k"],
        "max_per_user": stats["max_k"],
        "top_k": settings.top_k,
        "weights": {"cf": settings.cf_weight, "cb": settings.cb_weight},
    }
    write_json(spark, paths.score_report, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return stage_main("score", score, argv)
