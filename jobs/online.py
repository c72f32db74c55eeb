"""Scoring a few pairs at request time, for the live fallback in serving/.

`RunModels` loads one run's saved models and features once and keeps them cached; its
`score` and `recommend` go through the same functions as the batch (`jobs.scoring`), and put
every pair on the batch's per-user scale (the run's stored `user_scales`), so a live score
and a precomputed one can be compared directly.
"""
from __future__ import annotations

import logging
from typing import Iterable

from pyspark.ml import PipelineModel
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import features as FE
from jobs import scoring
from jobs.config import Settings
from jobs.paths import RunPaths
from jobs.schemas import CB_SCORE, CF_SCORE, GENRES, MOVIE, RANK, SCORE, TITLE, USER
from jobs.warehouse import read_json, read_table

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
        profile, scale = self._user(user_id)
        feats = self.movie_feats.where(F.col(MOVIE).isin([m for m in movie_ids if m in self.movie_ids]))
        if unknown:
            feats = feats.unionByName(self._new_movie_features({m: genres[m] for m in unknown}))
        pairs = self.spark.createDataFrame([(user_id, m) for m in movie_ids], f"{USER} int, {MOVIE} int")
        raw = scoring.raw_scores(pairs, self.als, self.forest, feats, profile)
        scored = scoring.blend(raw, scale, scoring.Blend.from_settings(self.settings))
        rows = scored.select(MOVIE, SCORE, CF_SCORE, CB_SCORE).collect()
        return sorted((row.asDict() for row in rows), key=lambda r: (-r[SCORE], r[MOVIE]))

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
