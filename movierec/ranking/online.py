"""Scoring a few pairs at request time, for the live fallback in serving/.

`RunModels` loads one run's saved models and features once and keeps them cached; its
`score` and `recommend` go through the same functions as the batch (`movierec.ranking.scoring`), and put
every pair on the batch's per-user scale (the run's stored `user_scales`), so a live score
and a precomputed one can be compared directly.

`score` is the request-time path (POST /recommend, 20 pairs or so), and building Spark
plans for it cost about a second however small the data (PySpark's per-operation round
trips, planning, four jobs).  So it runs on the driver, over copies of the run's tables
taken at load, and every step is held to the batch's Spark code by tests/movierec/test_online.py:

- cf_raw: ALS's own prediction, the single-precision dot product in factor order
  (`als_prediction`), bit for bit what ALSModel.transform gives;
- the content model's features: `pair_feature_values`, `movierec.features.pair_features` for
  one user (the same sums in the same order; log1p(user_n) taken by Spark at load);
- cb_raw: the run's own forest, `RandomForestRegressionModel.predict` on each feature vector;
- the blend: `blend_values`, `movierec.ranking.scoring.blend` for one pair: its z-scores (with the
  run's `MIN_STD`), then the same `scoring.calibrated_chance` and `scoring.hybrid_score`
  the batch builds its columns from, with the run's `scoring.Blend`.

A movie the run never saw still gets its content features from the run's content pipeline
in Spark (one small job), then goes the same way.
"""
from __future__ import annotations

import logging
import math
from typing import Iterable

import numpy as np

from pyspark.ml import PipelineModel
from pyspark.ml.linalg import Vectors
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec import features as FE
from movierec.ranking import scoring
from movierec.models.als import CF_RAW
from movierec.models.forest import CB_RAW
from movierec.config import Settings
from movierec.spark.paths import RunPaths
from movierec.data.schemas import CB_SCORE, CF_SCORE, GENRES, MOVIE, RANK, SCORE, TITLE, USER, YEAR
from movierec.spark.warehouse import read_json, read_table

log = logging.getLogger(__name__)


class UnknownMovie(KeyError):
    """A movie the run does not know, asked for without genres to score it by."""


class UnknownUser(KeyError):
    """A user the run has no ratings for: a cold start, not something to score."""


class RunModels:
    """One run's models and features, loaded once, for scoring pairs on demand."""

    def __init__(self, spark: SparkSession, settings: Settings, run_id: str):
        self.spark, self.settings, self.run_id = spark, settings, run_id
        paths = RunPaths(settings.warehouse, run_id)
        self.als = ALSModel.load(paths.als_model)
        # ALS's transform joins with these factor tables: keep them in memory, not on disk
        self.als.userFactors.persist()
        self.als.itemFactors.persist()
        self.forest = RandomForestRegressionModel.load(paths.rf_model)
        self.content = PipelineModel.load(paths.content_pipeline)
        self.movie_feats = read_table(spark, paths.movie_features).persist()
        self.profiles = read_table(spark, paths.user_profiles).persist()
        self.scales = read_table(spark, paths.user_scales).persist()
        self.ratings = read_table(spark, paths.ratings).select(USER, MOVIE).persist()
        self.global_mean = float(read_json(spark, paths.stage("featurize") + "/report")["global_mean_rating"])
        known = self.movie_feats.select(MOVIE, GENRES).collect()
        self.movie_ids = {row[MOVIE] for row in known}
        self.genres = {g for row in known for g in row[GENRES]}
        self.user_ids = {row[USER] for row in self.scales.select(USER).collect()}
        # driver-side copies for `score`: a request then needs no Spark job
        self.user_factors = _factors(self.als.userFactors)
        self.item_factors = _factors(self.als.itemFactors)
        self.movie_values = {row[MOVIE]: _movie_values(row) for row in _movie_value_rows(self.movie_feats).collect()}
        self.profile_values = {row[USER]: _profile_values(row) for row in _profile_value_rows(self.profiles).collect()}
        self.scale_values = {row[USER]: _scale_values(row) for row in self.scales.collect()}
        log.info("live models of run %s loaded: %d movies, %d users", run_id, len(self.movie_ids), len(self.user_ids))

    @classmethod
    def load(cls, spark: SparkSession, settings: Settings, run_id: str) -> "RunModels":
        return cls(spark, settings, run_id)

    def _user(self, user_id: int) -> tuple[DataFrame, DataFrame]:
        if user_id not in self.user_ids:
            raise UnknownUser(f"run {self.run_id} has no ratings of user {user_id}")
        return self.profiles.where(F.col(USER) == user_id), self.scales.where(F.col(USER) == user_id)

    def _new_movie_features(self, genres: dict[int, list[str]]) -> DataFrame:
        """Features of movies the run never saw, from the genres given (no tags, no ratings yet)."""
        rows = [(movie_id, "", list(g), []) for movie_id, g in genres.items()]
        movies = self.spark.createDataFrame(rows, f"{MOVIE} int, {TITLE} string, {GENRES} array<string>, "
                                                  f"{FE.TAG_TOKENS} array<string>")
        empty_stats = self.spark.createDataFrame([], f"{MOVIE} int, {FE.N_RATINGS} long, {FE.MEAN_RATING} double, "
                                                     f"{FE.POPULARITY} double")
        return FE.movie_features(movies.drop(FE.TAG_TOKENS), FE.content_maps(self.content, movies), empty_stats,
                                 self.global_mean)

    def score(self, user_id: int, movie_ids: Iterable[int], genres: dict[int, list[str]] | None = None) -> list[dict]:
        """Hybrid, cf and cb scores of the user's pairs with these movies, best first.

        A movie the run does not know is scored from `genres[movie_id]` by the content model
        (its z_cf is 0: cf_score is an average candidate's chance); without genres it raises UnknownMovie.
        """
        movie_ids = list(dict.fromkeys(int(m) for m in movie_ids))
        genres = genres or {}
        unknown = [m for m in movie_ids if m not in self.movie_ids]
        missing = [m for m in unknown if not genres.get(m)]
        if missing:
            raise UnknownMovie(f"movies {missing} are not in run {self.run_id}; give their genres to score them")
        if user_id not in self.user_ids or user_id not in self.profile_values:
            raise UnknownUser(f"run {self.run_id} has no ratings of user {user_id}")
        movies = self.movie_values
        if unknown:   # content features of new movies: the run's content pipeline, in Spark
            new = self._new_movie_features({m: genres[m] for m in unknown})
            movies = {**movies, **{row[MOVIE]: _movie_values(row) for row in _movie_value_rows(new).collect()}}
        profile, scale = self.profile_values[user_id], self.scale_values[user_id]
        params = scoring.Blend.from_settings(self.settings)
        rows = []
        for movie_id, cf in zip(movie_ids, self.cf_raw(user_id, movie_ids)):
            if movie_id not in movies:
                continue
            values = pair_feature_values(profile, movies[movie_id])
            cb = float(self.forest.predict(Vectors.dense(values)))
            rows.append({MOVIE: movie_id, **blend_values(evidence(cf, cb, values), scale, params)})
        return sorted(rows, key=lambda r: (-r[SCORE], r[MOVIE]))

    def cf_raw(self, user_id: int, movie_ids: list[int]) -> list[float | None]:
        """ALS's preference estimate of each pair, None where ALS never saw the user or movie."""
        user = self.user_factors.get(user_id)
        found = [m for m in movie_ids if m in self.item_factors]
        if user is None or not found:
            return [None] * len(movie_ids)
        predicted = dict(zip(found, als_prediction(user, np.stack([self.item_factors[m] for m in found]))))
        return [predicted.get(m) for m in movie_ids]

    def recommend(self, user_id: int, k: int) -> list[dict]:
        """The user's top-k, computed now the way the batch does (for k beyond what is stored)."""
        profile, scale = self._user(user_id)
        user = self.spark.createDataFrame([(user_id,)], f"{USER} int")
        rated = self.ratings.where(F.col(USER) == user_id)
        pairs = scoring.candidates(self.als, rated, self.movie_feats, profile,
                                   max(k, self.settings.als_candidates), max(k, self.settings.content_candidates),
                                   self.settings.content_pool, users=user)
        raw = scoring.raw_scores(pairs, self.als, self.forest, self.movie_feats, profile)
        scored = scoring.blend(raw, scale, scoring.Blend.from_settings(self.settings))
        rows = scoring.top_k(scored, k).select(RANK, MOVIE, SCORE, CF_SCORE, CB_SCORE).collect()
        return sorted((row.asDict() for row in rows), key=lambda r: r[RANK])


def _factors(factors: DataFrame) -> dict[int, np.ndarray]:
    """An ALS factor table (id, features) as id -> float32 vector, on the driver."""
    return {row["id"]: np.asarray(row["features"], dtype=np.float32) for row in factors.collect()}


def als_prediction(user: np.ndarray, items: np.ndarray) -> list[float]:
    """ALSModel.transform's prediction of one user's pairs with `items` (one row per movie).

    Spark computes it in single precision, one product added at a time in factor order
    (ALSModel's `predict` UDF); the same order and rounding here give the same bits, which
    tests/movierec/test_online.py checks against ALSModel.transform."""
    total = np.zeros(items.shape[0], dtype=np.float32)
    for i in range(items.shape[1]):
        total += items[:, i] * user[i]
    return [float(x) for x in total]


# ---------------------------------------------------------------- the driver-side scoring of `score`

GENRE_ENTRIES, TAG_ENTRIES = "_genre_entries", "_tag_entries"


def _movie_value_rows(movie_feats: DataFrame) -> DataFrame:
    """movie features with the content maps as entry arrays: map_dot sums in entry order, and
    an array keeps that order on its way to Python (a map need not)."""
    return movie_feats.select(MOVIE, YEAR, FE.MEAN_RATING, FE.POPULARITY, F.size(GENRES).alias("_n_genres"),
                              F.map_entries(FE.GENRE_MAP).alias(GENRE_ENTRIES),
                              F.map_entries(FE.TAG_MAP).alias(TAG_ENTRIES))


def _movie_values(row) -> tuple:
    return (row[YEAR], row[FE.MEAN_RATING], row[FE.POPULARITY], row["_n_genres"],
            [(e[0], e[1]) for e in row[GENRE_ENTRIES]], [(e[0], e[1]) for e in row[TAG_ENTRIES]])


def _profile_value_rows(profiles: DataFrame) -> DataFrame:
    """profiles with log1p(user_n) taken by Spark: its log1p is java.lang.StrictMath's, C's may
    differ in the last bit, and a forest split sits exactly on a training value."""
    return profiles.select("*", F.log1p(FE.USER_N).alias("_log_n"))


def _profile_values(row) -> tuple:
    return (row[FE.USER_MEAN], row["_log_n"], row[FE.USER_YEAR],
            *(dict(row[c] or {}) for c in (FE.GENRE_TASTE, FE.GENRE_EXPOSURE, FE.TAG_TASTE, FE.TAG_EXPOSURE)))


def _map_dot(entries: list[tuple[int, float]], other: dict[int, float]) -> float:
    """features.map_dot: Σ value × other[key] over `entries` in order, missing keys 0."""
    total = 0.0
    for key, value in entries:
        total = total + value * other.get(key, 0.0)
    return total


def pair_feature_values(profile: tuple, movie: tuple) -> list[float]:
    """movierec.features.pair_features of one pair, in PAIR_FEATURES order (None becomes NaN, as
    VectorAssembler's handleInvalid="keep" does)."""
    user_mean, user_log_n, user_year, genre_taste, genre_exposure, tag_taste, tag_exposure = profile
    year_of_movie, mean_rating, popularity, n_genres, genre_entries, tag_entries = movie
    year = float(year_of_movie) if year_of_movie is not None else user_year if user_year is not None else 0.0
    values = [user_mean, user_log_n, mean_rating, popularity, year,
              year - (user_year if user_year is not None else year),
              _map_dot(genre_entries, genre_taste), _map_dot(genre_entries, genre_exposure),
              _map_dot(tag_entries, tag_taste), _map_dot(tag_entries, tag_exposure), float(n_genres)]
    return [math.nan if v is None else float(v) for v in values]


def _scale_values(row) -> dict[str, tuple[float, float]]:
    """A user_scales row as evidence name -> (mean, std)."""
    fields = row.asDict()
    return {name: (fields[f"{name}_mean"], fields[f"{name}_std"]) for name in scoring.EVIDENCE
            if f"{name}_mean" in fields}


def evidence(cf_raw: float | None, cb_raw: float, features: list[float]) -> dict[str, float | None]:
    """scoring.EVIDENCE of one pair: ALS's and the forest's raw scores, the rest from its pair features."""
    columns = {CF_RAW: cf_raw, CB_RAW: cb_raw}
    values = {name: columns[col] if col in columns else features[FE.PAIR_FEATURES.index(col)]
              for name, col in scoring.EVIDENCE.items()}
    return {name: None if v is None or math.isnan(v) else v for name, v in values.items()}


def _exp(x: float) -> float:
    """math.exp, but infinity where it overflows, as the JVM's exp gives (and the chance is then 0)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def blend_values(raw: dict[str, float | None], scales: dict[str, tuple[float, float]], params: scoring.Blend) -> dict:
    """scoring.blend of one pair: z-scores on its user's scale (scoring.z_scores, 0 where the
    evidence is missing), each component's calibrated chance and the weighted score."""
    z = dict.fromkeys(scoring.EVIDENCE, 0.0)      # evidence the run's scales lack counts as z = 0, as in the batch
    for name, value in raw.items():
        if name in scales:
            mean, std = scales[name]
            z[name] = 0.0 if value is None else (value - mean) / max(std, scoring.MIN_STD)
    cf_score = scoring.calibrated_chance(z, params.cf_slopes, params.cf_intercept, _exp)
    cb_score = scoring.calibrated_chance(z, params.cb_slopes, params.cb_intercept, _exp)
    return {SCORE: scoring.hybrid_score(cf_score, cb_score, params), CF_SCORE: cf_score, CB_SCORE: cb_score}
