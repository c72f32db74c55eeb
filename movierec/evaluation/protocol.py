"""Offline evaluation on a per-user temporal hold-out.

Every model is fitted on the training part only (the last 20% of each user's ratings by
time are held out), then ranks, for each user, movies that appear in the training part and
that the user has not rated there.  Four recommenders are compared: the hybrid, ALS alone,
the content model alone (content candidates ranked by the forest's predicted rating) and
most-popular.  Tags written after a user's cut-off are left out too: a tag says the user
watched the movie, which would leak the answer.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec import features as FE
from movierec.evaluation import metrics as M
from movierec.ranking import scoring
from movierec.models.als import CF_RAW, als_candidates, fit_als
from movierec.config import Settings
from movierec.models.forest import CB_RAW, cb_scores, fit_rf
from movierec.data.schemas import MOVIE, RANK, RATING, SCORE, TIMESTAMP, USER
from movierec.data.split import temporal_split

log = logging.getLogger(__name__)

HOLDOUT_SHARE = 0.2
K = 10
LIST_LENGTH = 50          # lists kept per model for the report's curves (k = 1..50)
MODEL = "model"        # the column naming the model in the stacked lists


@dataclass
class FittedModels:
    content: PipelineModel
    movie_feats: DataFrame
    profiles: DataFrame
    als: ALSModel
    forest: RandomForestRegressionModel


def fit_models(movies: DataFrame, ratings: DataFrame, tags: DataFrame, settings: Settings) -> FittedModels:
    """Everything the pipeline fits, on the given ratings only."""
    content, movie_feats, _ = FE.build_features(movies, ratings, tags, settings.genre_features, settings.tag_features)
    movie_feats = movie_feats.localCheckpoint()        # materialised, lineage cut: see `evaluate_split`
    profiles = FE.user_profiles(ratings, movie_feats).localCheckpoint()
    als = fit_als(ratings, settings)
    forest = fit_rf(FE.pair_features(ratings, movie_feats, profiles), settings)
    return FittedModels(content, movie_feats, profiles, als, forest)


def tags_before_cutoff(tags: DataFrame, train: DataFrame, test: DataFrame) -> DataFrame:
    """Tags a user wrote no later than their last training rating, and none on a held-out movie."""
    cutoff = train.groupBy(USER).agg(F.max(TIMESTAMP).alias("_cutoff"))
    kept = tags.join(cutoff, USER, "left").where(F.col("_cutoff").isNull() | (F.col(TIMESTAMP) <= F.col("_cutoff")))
    return kept.drop("_cutoff").join(test.select(USER, MOVIE), [USER, MOVIE], "left_anti")


def _ranked(df: DataFrame, by: str, k: int) -> DataFrame:
    return scoring.top_k(df.withColumnRenamed(by, SCORE) if by != SCORE else df, k).select(USER, RANK, MOVIE)


@dataclass
class Candidates:
    """The given users' candidates under the fitted models: ALS's and the content model's
    lists (each materialised: read for the hybrid's candidates and for its own list) and the
    raw scores of their union (materialised)."""
    als_top: DataFrame
    content_top: DataFrame
    raw: DataFrame


def candidate_scores(fitted: FittedModels, user_train: DataFrame, users: DataFrame, settings: Settings,
                     k: int) -> Candidates:
    """Each user's candidates (the batch's rule, movies of the training part only) and raw scores."""
    seen = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0)           # movies of the training part only
    profiles = fitted.profiles.join(users, USER, "left_semi")
    als_top = als_candidates(fitted.als, user_train, max(k, settings.als_candidates), users).localCheckpoint()
    content_top = scoring.content_candidates(profiles, scoring.content_pool(seen, settings.content_pool),
                                             user_train, settings.content_candidates).localCheckpoint()
    pairs = als_top.select(USER, MOVIE).unionByName(content_top).distinct()
    raw = scoring.raw_scores(pairs, fitted.als, fitted.forest, seen, profiles).localCheckpoint()
    return Candidates(als_top, content_top, raw)


def model_lists(fitted: FittedModels, train: DataFrame, users: DataFrame, settings: Settings, k: int) -> dict[str, DataFrame]:
    """Each model's top-k list (user_id, rank, movie_id) for the given users."""
    seen = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0)           # movies of the training part only
    user_train = train.join(users, USER, "left_semi")
    found = candidate_scores(fitted, user_train, users, settings, k)
    hybrid = scoring.blend(found.raw, scoring.user_scales(found.raw), scoring.Blend.from_settings(settings))

    content_raw = found.raw.join(found.content_top, [USER, MOVIE], "left_semi")
    popular = scoring.popular_movies(seen, k + int(user_train.groupBy(USER).count().agg(F.max("count")).first()[0]))
    popular_unrated = users.crossJoin(F.broadcast(popular.select(MOVIE, F.col(SCORE)))).join(
        user_train.select(USER, MOVIE), [USER, MOVIE], "left_anti")
    return {
        "hybrid": _ranked(hybrid, SCORE, k),
        "als": _ranked(found.als_top, CF_RAW, k),
        "content": _ranked(content_raw, CB_RAW, k),
        "popularity": _ranked(popular_unrated, SCORE, k),
    }


def rating_accuracy(fitted: FittedModels, test: DataFrame) -> dict[str, float]:
    """RMSE and MAE of the content model's predicted ratings of the held-out pairs."""
    predicted = cb_scores(fitted.forest, FE.pair_features(test.select(USER, MOVIE, RATING), fitted.movie_feats,
                                                          fitted.profiles)).select(RATING, CB_RAW).persist()
    errors = M.rating_errors(predicted, label_col=RATING, prediction_col=CB_RAW)    # three passes: computed once
    predicted.unpersist()
    return errors


def stack_lists(lists: dict[str, DataFrame]) -> DataFrame:
    """The models' lists as one frame: model, user_id, rank, movie_id."""
    stacked = [recs.select(F.lit(name).alias(MODEL), USER, RANK, MOVIE) for name, recs in lists.items()]
    return functools.reduce(DataFrame.unionByName, stacked)


def evaluate(movies: DataFrame, ratings: DataFrame, tags: DataFrame, settings: Settings) -> tuple[dict, DataFrame]:
    """(metrics, the models' top-50 lists) under the temporal hold-out protocol."""
    train, test = temporal_split(ratings, HOLDOUT_SHARE)
    train, test = train.localCheckpoint(), test.localCheckpoint()
    return evaluate_split(movies, train, test, tags_before_cutoff(tags, train, test).localCheckpoint(), settings)


def evaluate_split(movies: DataFrame, train: DataFrame, test: DataFrame, tags: DataFrame,
                   settings: Settings) -> tuple[dict, DataFrame]:
    """(metrics, top-50 lists) for one given (train, test) pair: models fitted on `train` (and
    `tags`, already cut to what was known then), measured on `test`.  `evaluate` passes the
    temporal hold-out; tuning passes a validation split carved from the training part.

    Intermediate frames used more than once are materialised with `localCheckpoint`, not
    `persist`: a persisted frame keeps its whole plan, every query that reads it repeats that
    plan, and Spark renders each query's plan as text for its listeners.  Built from in-memory
    features rather than Parquet, the hybrid list's plan was 10 MB of text and the metrics
    query's 69 MB: most of this stage's time, and once a driver OutOfMemoryError."""
    fitted = fit_models(movies, train, tags, settings)
    users = test.select(USER).distinct()
    catalogue = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0).count()
    lists = model_lists(fitted, train, users, settings, LIST_LENGTH)
    details = stack_lists(lists).localCheckpoint()

    # every model and both relevance rules in three Spark queries (twelve, one model at a time,
    # took a third of this stage on ml-latest-small)
    names = list(lists)
    liked = M.ranking_metrics_by(details, test, MODEL, names, k=K, relevant_threshold=4.0)
    every = M.ranking_metrics_by(details, test, MODEL, names, k=K, relevant_threshold=None)
    coverage = M.catalogue_coverage_by(details, MODEL, names, catalogue, k=K)
    models = {}
    for name in names:
        models[name] = {**liked[name], "ndcg_all": every[name][M.NDCG], "precision_all": every[name][M.PRECISION],
                        M.COVERAGE: coverage[name]}
        log.info("evaluate %s: NDCG@10 %.4f", name, liked[name][M.NDCG])
    models["content"].update(rating_accuracy(fitted, test))
    metrics = {
        "protocol": {"holdout_share": HOLDOUT_SHARE, "k": K, "relevant": "held-out rating >= 4.0",
                     "train_ratings": train.count(), "test_ratings": test.count(), "catalogue": catalogue},
        "models": models,
    }
    return metrics, details
