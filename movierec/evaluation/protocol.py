"""Offline evaluation on a per-user temporal hold-out.

Every model is fitted on the training part only (the last 20% of each user's ratings by
time are held out), then ranks, for each user, movies that appear in the training part and
that the user has not rated there.  Four recommenders are compared: the hybrid, ALS alone,
the content model alone (content candidates ranked by the forest's predicted rating) and
most-popular.  Tags written after a user's cut-off are left out too: a tag says the user
watched the movie, which would leak the answer.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec import features as FE
from movierec.config import Settings
from movierec.data.schemas import CB_SCORE, CF_SCORE, MOVIE, RANK, RATING, SCORE, TIMESTAMP, USER
from movierec.data.split import capped_sample, temporal_split
from movierec.evaluation import metrics as M
from movierec.models.als import CF_RAW, fit_als
from movierec.models.forest import CB_RAW, TrainingSample, cb_scores, fit_rf, training_pairs
from movierec.ranking import scoring
from movierec.ranking.calibration import LIKED, labelled
from movierec.ranking.candidates import FROM_ALS, FROM_CONTENT, candidates

log = logging.getLogger(__name__)

HOLDOUT_SHARE = 0.2
K = 10
RELEVANT_THRESHOLD = 4.0  # relevant (liked) = held-out rating >= this
LIST_LENGTH = 50  # lists kept per model (the report's metrics at k = 1..50, AT_KS)
MODEL = "model"  # the column naming the model in the stacked lists


@dataclass
class FittedModels:
    content: PipelineModel
    movie_feats: DataFrame
    profiles: DataFrame
    als: ALSModel
    forest: RandomForestRegressionModel
    forest_sample: TrainingSample


def fit_models(movies: DataFrame, ratings: DataFrame, tags: DataFrame, settings: Settings) -> FittedModels:
    """Everything the pipeline fits, on the given ratings only."""
    content, movie_feats, _ = FE.build_features(movies, ratings, tags, settings.genre_features, settings.tag_features)
    movie_feats = movie_feats.localCheckpoint()  # materialised, lineage cut: see `evaluate_split`
    profiles = FE.user_profiles(ratings, movie_feats).localCheckpoint()
    als = fit_als(ratings, settings)
    pairs, sample = training_pairs(ratings, movie_feats, profiles, settings)
    return FittedModels(content, movie_feats, profiles, als, fit_rf(pairs, settings), sample)


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


def candidate_scores(
    fitted: FittedModels, user_train: DataFrame, users: DataFrame, settings: Settings, k: int
) -> Candidates:
    """Each user's candidates (the batch's rule, movies of the training part only) and raw scores."""
    seen = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0)  # movies of the training part only
    profiles = fitted.profiles.join(users, USER, "left_semi")
    pairs = candidates(
        fitted.als,
        user_train,
        seen,
        profiles,
        max(k, settings.als_candidates),
        settings.content_candidates,
        settings.content_pool,
        users,
        fitted.forest,
    ).localCheckpoint()
    als_top = pairs.where(F.col(FROM_ALS)).select(USER, MOVIE, CF_RAW)
    content_top = pairs.where(F.col(FROM_CONTENT)).select(USER, MOVIE)
    raw = pairs.select(USER, MOVIE, *scoring.EVIDENCE.values())
    return Candidates(als_top, content_top, raw)


def model_lists(
    fitted: FittedModels, train: DataFrame, users: DataFrame, settings: Settings, k: int
) -> dict[str, DataFrame]:
    """Each model's top-k list (user_id, rank, movie_id) for the given users."""
    return scored_model_lists(fitted, train, users, settings, k)[0]


def scored_model_lists(
    fitted: FittedModels, train: DataFrame, users: DataFrame, settings: Settings, k: int
) -> tuple[dict[str, DataFrame], DataFrame]:
    """(`model_lists`, the hybrid's scored candidates): the second is every candidate pair of the
    given users with its raw evidence, cf_score, cb_score and score, as the hybrid list ranks them
    (what the calibration table is measured on)."""
    seen = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0)  # movies of the training part only
    user_train = train.join(users, USER, "left_semi")
    found = candidate_scores(fitted, user_train, users, settings, k)
    hybrid = scoring.blend(found.raw, scoring.user_scales(found.raw), scoring.Blend.from_settings(settings))

    content_raw = found.raw.join(found.content_top, [USER, MOVIE], "left_semi")
    most_rated = user_train.groupBy(USER).count().agg(F.max("count")).first()
    popular = scoring.popular_movies(seen, k + int(most_rated[0] if most_rated is not None else 0))
    popular_unrated = users.crossJoin(F.broadcast(popular.select(MOVIE, F.col(SCORE)))).join(
        user_train.select(USER, MOVIE), [USER, MOVIE], "left_anti"
    )
    return {
        "hybrid": _ranked(hybrid, SCORE, k),
        "als": _ranked(found.als_top, CF_RAW, k),
        "content": _ranked(content_raw, CB_RAW, k),
        "popularity": _ranked(popular_unrated, SCORE, k),
    }, hybrid


def rating_accuracy(fitted: FittedModels, test: DataFrame) -> dict[str, float]:
    """RMSE and MAE of the content model's predicted ratings of the held-out pairs."""
    predicted = (
        cb_scores(
            fitted.forest, FE.pair_features(test.select(USER, MOVIE, RATING), fitted.movie_feats, fitted.profiles)
        )
        .select(RATING, CB_RAW)
        .persist()
    )
    errors = M.rating_errors(predicted, label_col=RATING, prediction_col=CB_RAW)  # three passes: computed once
    predicted.unpersist()
    return errors


def stack_lists(lists: dict[str, DataFrame]) -> DataFrame:
    """The models' lists as one frame: model, user_id, rank, movie_id."""
    stacked = [recs.select(F.lit(name).alias(MODEL), USER, RANK, MOVIE) for name, recs in lists.items()]
    return functools.reduce(DataFrame.unionByName, stacked)


def evaluate(movies: DataFrame, ratings: DataFrame, tags: DataFrame, settings: Settings) -> tuple[dict, DataFrame]:
    """(metrics, the models' top-50 lists) under the temporal hold-out protocol."""
    return evaluate_split(movies, *holdout(ratings, tags), settings)


def holdout(ratings: DataFrame, tags: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(train, test, tags known at each user's cut-off) of the temporal hold-out, materialised."""
    train, test = temporal_split(ratings, HOLDOUT_SHARE)
    train, test = train.localCheckpoint(), test.localCheckpoint()
    return train, test, tags_before_cutoff(tags, train, test).localCheckpoint()


def evaluate_split(
    movies: DataFrame, train: DataFrame, test: DataFrame, tags: DataFrame, settings: Settings
) -> tuple[dict, DataFrame]:
    """(metrics, top-50 lists) for one given (train, test) pair: models fitted on `train` (and
    `tags`, already cut to what was known then), measured on `test`.  `evaluate` passes the
    temporal hold-out.  (`measure_split` has the details.)"""
    measured = measure_split(movies, train, test, tags, settings)
    return measured.metrics, measured.lists


@dataclass(frozen=True)
class UserSample:
    """Which held-out users are measured: of the `held_out_users`, each kept with chance
    `sample_fraction` (1.0: all of them), drawn with `seed` because there were more than `max_users`."""

    held_out_users: int
    sample_fraction: float
    max_users: int
    seed: int


def evaluation_users(test: DataFrame, max_users: int, seed: int) -> tuple[DataFrame, UserSample]:
    """(the users to measure, materialised; how they were chosen): every user of the hold-out when
    there are at most `max_users`, else each with chance max_users / users by a seeded hash of the
    user id (`split.capped_sample`), the same users for the same seed.  The models are fitted on
    every training rating either way: the sample only spares the scoring of every user's candidates."""
    users, n_users, fraction = capped_sample(test.select(USER).distinct(), [USER], max_users, seed)
    return users.localCheckpoint(), UserSample(n_users, fraction, max_users, seed)


@dataclass
class Measured:
    """One split's evaluation: the metrics, the stacked top-50 lists (model, user_id, rank,
    movie_id; materialised), the hybrid's scored candidates (lazy, see `scored_model_lists`) and
    the held-out ratings of the users measured (`evaluation_users`)."""

    metrics: dict
    lists: DataFrame
    hybrid_candidates: DataFrame
    test: DataFrame


def measure_split(
    movies: DataFrame, train: DataFrame, test: DataFrame, tags: DataFrame, settings: Settings
) -> Measured:
    """What `evaluate_split` computes, and the hybrid's scored candidates with it.

    Intermediate frames used more than once are materialised with `localCheckpoint`, not
    `persist`: a persisted frame keeps its whole plan, every query that reads it repeats that
    plan, and Spark renders each query's plan as text for its listeners.  Built from in-memory
    features rather than Parquet, the hybrid list's plan was 10 MB of text and the metrics
    query's 69 MB: most of this stage's time, and once a driver OutOfMemoryError."""
    fitted = fit_models(movies, train, tags, settings)
    users, user_sample = evaluation_users(test, settings.eval_max_users, settings.seed)
    if user_sample.sample_fraction < 1:
        test = test.join(users, USER, "left_semi").localCheckpoint()
        log.info("evaluate: %d of %d held-out users, a seeded sample", users.count(), user_sample.held_out_users)
    catalogue = fitted.movie_feats.where(F.col(FE.N_RATINGS) > 0).count()
    lists, hybrid = scored_model_lists(fitted, train, users, settings, LIST_LENGTH)
    details = stack_lists(lists).localCheckpoint()

    # every model and both relevance rules in three Spark queries (twelve, one model at a time,
    # took a third of this stage on ml-latest-small)
    names = list(lists)
    liked = M.ranking_metrics_by(details, test, MODEL, names, k=K, relevant_threshold=RELEVANT_THRESHOLD)
    every = M.ranking_metrics_by(details, test, MODEL, names, k=K, relevant_threshold=None)
    coverage = M.catalogue_coverage_by(details, MODEL, names, catalogue, k=K)
    hybrid_interval = M.ndcg_interval(details, test, MODEL, "hybrid", K, RELEVANT_THRESHOLD)
    models = {}
    for name in names:
        models[name] = {
            **liked[name],
            "ndcg_all": every[name][M.NDCG],
            "precision_all": every[name][M.PRECISION],
            M.COVERAGE: coverage[name],
        }
        log.info("evaluate %s: NDCG@10 %.4f", name, liked[name][M.NDCG])
    models["content"].update(rating_accuracy(fitted, test))
    metrics = {
        "protocol": {
            "holdout_share": HOLDOUT_SHARE,
            "k": K,
            "relevant": f"held-out rating >= {RELEVANT_THRESHOLD}",
            "train_ratings": train.count(),
            "test_ratings": test.count(),
            "catalogue": catalogue,
            "forest_training_sample": dataclasses.asdict(fitted.forest_sample),
            "evaluated_users": dataclasses.asdict(user_sample),
            "hybrid_ndcg_ci95": hybrid_interval,
        },
        "models": models,
    }
    return Measured(metrics, details, hybrid, test)


# ---------------------------------------------------------------- the tables the report draws
#
# Small tables the evaluate stage writes beside the metrics (`<run>/evaluate/tables/<name>`),
# computed with the metrics' own implementation (`movierec.evaluation.metrics`) on the same
# lists and hold-out, so the report reads and draws them and computes no metric itself.

AT_K = "at_k"  # every model's metrics at several list lengths
BY_ACTIVITY = "by_activity"  # every model's metrics at K per bucket of users' training ratings
CALIBRATION = "calibration"  # predicted chance against the observed share of liked held-out movies
AT_KS = (1, 2, 3, 5, 10, 15, 20, 30, 40, 50)  # at most LIST_LENGTH
ACTIVITY_EDGES = (0, 20, 50, 100, 200, 500, 1000)  # lower bounds of the buckets; the last is open
# calibrated chances sit around 0.01-0.05 (README "Candidates and scoring"): fine bins there
CALIBRATION_EDGES = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
CALIBRATED = (SCORE, CF_SCORE, CB_SCORE)  # the blend first, then its two components
BUCKET, LABEL, LOWER, UPPER = "bucket", "label", "lower", "upper"
_RANKING = "ndcg double, precision double, recall double, map double, hit_rate double, users bigint"
TABLE_SCHEMAS = {
    AT_K: f"model string, k int, {_RANKING}",
    BY_ACTIVITY: f"model string, bucket int, label string, lower int, upper int, {_RANKING}",
    CALIBRATION: "component string, bin int, lower double, upper double, pairs bigint, predicted double, "
    "observed double, brier double",
}


@dataclass
class Evaluation:
    """What the evaluate stage writes: the metrics, the stacked top-50 lists, and the report's
    tables ({name in TABLE_SCHEMAS: rows as dicts in that schema's column order})."""

    metrics: dict
    lists: DataFrame
    tables: dict[str, list[dict]]


def evaluate_run(movies: DataFrame, ratings: DataFrame, tags: DataFrame, settings: Settings) -> Evaluation:
    """`evaluate` (the same metrics, figure for figure) and the report's tables of the same hold-out."""
    train, test, known_tags = holdout(ratings, tags)
    measured = measure_split(movies, train, test, known_tags, settings)
    return Evaluation(measured.metrics, measured.lists, report_tables(measured, train, measured.test))


def report_tables(measured: Measured, train: DataFrame, test: DataFrame) -> dict[str, list[dict]]:
    """The tables of TABLE_SCHEMAS for one measured split (four Spark queries in all)."""
    names = list(measured.metrics["models"])
    at_k = M.ranking_metrics_at(measured.lists, test, MODEL, names, AT_KS, RELEVANT_THRESHOLD)
    by_activity = activity_table(measured.lists, train, test, names)
    liked = labelled(measured.hybrid_candidates, test, RELEVANT_THRESHOLD)
    calibration = M.calibration_table(liked, CALIBRATED, CALIBRATION_EDGES, LIKED)
    return {AT_K: at_k, BY_ACTIVITY: by_activity, CALIBRATION: calibration}


def bucket_label(lower: int, upper: int | None) -> str:
    """'20–49' for the counts 20 <= n < 50; '1000+' for an open bucket."""
    return f"{lower}+" if upper is None else f"{lower}–{upper - 1}"


def activity_buckets(train: DataFrame, edges: tuple[int, ...] = ACTIVITY_EDGES) -> DataFrame:
    """(user_id, bucket): each user's bucket of training ratings, bucket i holding the users with
    edges[i] <= ratings < edges[i + 1] (the last one open)."""
    counts = train.groupBy(USER).agg(F.count(F.lit(1)).alias("_n"))
    return counts.select(USER, M.bin_index(F.col("_n"), (*edges, float("inf"))).alias(BUCKET))


def activity_table(
    lists: DataFrame,
    train: DataFrame,
    test: DataFrame,
    names: list[str],
    edges: tuple[int, ...] = ACTIVITY_EDGES,
    k: int = K,
) -> list[dict]:
    """Each model's ranking metrics at k (relevant: liked) per activity bucket with evaluated users,
    models in `names` order, buckets ascending (rows of TABLE_SCHEMAS[BY_ACTIVITY])."""
    grouped = M.ranking_metrics_by_group(
        lists, test, MODEL, activity_buckets(train, edges), [BUCKET], k, RELEVANT_THRESHOLD
    )
    bounds = [(lower, upper) for lower, upper in zip(edges, [*edges[1:], None])]
    rows = []
    for name in names:
        for row in (r for r in grouped if r[MODEL] == name):
            lower, upper = bounds[row[BUCKET]]
            rows.append(
                {
                    MODEL: name,
                    BUCKET: row[BUCKET],
                    LABEL: bucket_label(lower, upper),
                    LOWER: lower,
                    UPPER: upper,
                    **{m: row[m] for m in (M.NDCG, M.PRECISION, M.RECALL, M.MAP, M.HIT_RATE, M.USERS)},
                }
            )
    return rows
