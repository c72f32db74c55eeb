"""Scoring a few pairs at request time, for the live fallback in serving/.

`RunModels` loads one run's saved models and features once and keeps them cached; its
`score` and `recommend` go through the same definitions as the batch, and put every pair on
the batch's per-user scale (the run's stored `user_scales`), so a live score and a
precomputed one can be compared directly.

`score` is the request-time path (POST /recommend, 20 pairs or so; `recommend` scores a
user's few hundred candidates with it, for pages past the stored rows), and building Spark
plans for it cost about a second however small the data (PySpark's per-operation round
trips, planning, four jobs).  So it runs on the driver, over copies of the run's tables
taken at load (`movierec.features.UserTaste`, `MovieContent`, `movierec.ranking.scoring.Scale`),
and every step is one definition shared with the batch:

- the candidates: the batch's own code (`movierec.ranking.candidates`);
- cf_raw: ALS's own prediction, the single-precision dot product in factor order
  (`movierec.models.als.als_predictions`), bit for bit what ALSModel.transform gives;
- the content model's features: each `movierec.features.PairFeature`'s `array`, declared
  beside its Spark `column` (the same sums in the same order), over the run's movies as
  `movierec.features.MovieArrays`;
- cb_raw: the run's own forest, read into `movierec.models.forest.ForestArrays` at load and
  walked for all pairs at once, the same doubles as `RandomForestRegressionModel.predict`;
- the blend: `scoring.evidence_of`, then `scoring.blend_arrays`, the batch's `z_score`,
  `calibrated_chance` and `hybrid_score` over arrays of pairs, with the run's `scoring.Blend`.

tests/movierec/ranking/test_online.py holds each step to the batch's Spark code on a real run.
A movie the run never saw still gets its content features from the run's content pipeline
in Spark (one small job), then goes the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec import features as FE
from movierec.config import Settings
from movierec.data.schemas import CB_SCORE, CF_SCORE, GENRES, MOVIE, RANK, RATING, SCORE, TITLE, USER
from movierec.models.als import CF_RAW, als_predictions, collect_factors, feedback_values, gramian, solve_user_factor
from movierec.models.forest import CB_RAW, ForestArrays
from movierec.ranking import scoring
from movierec.ranking.candidates import Catalogue
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import load_model, read_json, read_table

log = logging.getLogger(__name__)


class UnknownMovie(KeyError):
    """A movie the run does not know, asked for without genres to score it by."""


class UnknownUser(KeyError):
    """A user the run has no ratings for: a cold start, not something to score."""


class LivePair(NamedTuple):
    """One pair as the live path scores it: its pair features and its evidence, by name."""

    movie_id: int
    features: dict[str, float | None]  # movierec.features.PAIR_FEATURES name → value
    evidence: dict[str, float | None]  # scoring.EVIDENCE name → raw value (None: missing)


class PairArrays(NamedTuple):
    """Many pairs of one user as the live path scores them: one row per pair, NaN where missing."""

    movie_ids: list[int]
    features: np.ndarray  # pairs × movierec.features.PAIR_FEATURES
    evidence: dict[str, np.ndarray]  # scoring.EVIDENCE name → one value per pair


class UserState(NamedTuple):
    """What the live path knows of one user: ALS factor (None: ALS never saw them), the movies
    they rated, their content profile (None: no profile).  The run's, or rebuilt with the ratings
    given since (`RunModels.user_state`)."""

    factor: np.ndarray | None
    rated: frozenset[int]
    taste: FE.UserTaste | None


class RunModels:
    """One run's models and features, loaded once, for scoring pairs on demand."""

    def __init__(self, spark: SparkSession, settings: Settings, run_id: str):
        self.spark, self.settings, self.run_id = spark, settings, run_id
        paths = RunPaths(settings.warehouse, run_id)
        self.als = load_model(ALSModel, spark, paths.als_model)
        # ALS's transform joins with these factor tables: keep them in memory, not on disk
        self.als.userFactors.persist()
        self.als.itemFactors.persist()
        self.forest = load_model(RandomForestRegressionModel, spark, paths.rf_model)
        self.forest_arrays = ForestArrays.from_model(self.forest)
        self.content = load_model(PipelineModel, spark, paths.content_pipeline)
        self.movie_feats = read_table(spark, paths.movie_features).persist()
        self.profiles = read_table(spark, paths.user_profiles).persist()
        self.scales = read_table(spark, paths.user_scales).persist()
        self.ratings = read_table(spark, paths.ratings).select(USER, MOVIE, RATING)
        self.global_mean = float(read_json(spark, paths.stage("featurize") + "/report")["global_mean_rating"])
        known = self.movie_feats.select(MOVIE, GENRES).collect()
        self.movie_ids = {row[MOVIE] for row in known}
        self.genres = {g for row in known for g in row[GENRES]}
        self.user_ids = {row[USER] for row in self.scales.select(USER).collect()}
        # driver-side copies for `score`: a request then needs no Spark job
        self.user_factors = collect_factors(self.als.userFactors)
        self.item_factors = collect_factors(self.als.itemFactors)
        self.movie_contents = FE.collect_movie_contents(self.movie_feats)
        self.movie_arrays = FE.MovieArrays.of(self.movie_contents)
        self.user_tastes = {row[USER]: FE.UserTaste.from_row(row) for row in FE.user_tastes(self.profiles).collect()}
        self.user_scales = {row[USER]: scoring.scales_of(row) for row in self.scales.collect()}
        # the evidence the run's scales hold (a run scored before some evidence was added lacks it)
        self.scale_names = [n for n in scoring.EVIDENCE if scoring.mean_column(n) in self.scales.columns]
        self.user_ratings = _user_ratings(self.ratings)
        self.rated = {user: frozenset(movies.tolist()) for user, (movies, _) in self.user_ratings.items()}
        # Spark's log1p of every rating count up to twice the run's largest, in one job: a rebuilt
        # profile's log1p(user_n) is then a lookup, not a py4j round trip (0.5 ms a list)
        most = max((len(movies) for movies, _ in self.user_ratings.values()), default=0)
        self._log1p_of: dict[float, float] = _spark_log1p(spark, max(LOG1P_TABLE, 2 * most))
        # ALS's YᵀY, shared by every fold-in (movierec.models.als.solve_user_factor)
        self.gram = gramian(np.stack(list(self.item_factors.values()))) if self.item_factors else None
        # what each user's candidates are drawn from: the batch's own (movierec.ranking.candidates)
        pool = _content_pool(self.movie_feats, settings.content_pool)
        genre_entries = {movie: self.movie_contents[movie].genre_entries for movie, _ in pool}
        self.catalogue = Catalogue.build(self.item_factors, pool, genre_entries)
        self.item_row = {movie: i for i, movie in enumerate(self.catalogue.item_ids.tolist())}
        log.info("live models of run %s loaded: %d movies, %d users", run_id, len(self.movie_ids), len(self.user_ids))

    @classmethod
    def load(cls, spark: SparkSession, settings: Settings, run_id: str) -> RunModels:
        return cls(spark, settings, run_id)

    def _new_movie_features(self, genres: dict[int, list[str]]) -> DataFrame:
        """Features of movies the run never saw, from the genres given (no tags, no ratings yet)."""
        rows: list[tuple[int, str, list[str], list[str]]] = [
            (movie_id, "", list(g), []) for movie_id, g in genres.items()
        ]
        movies = self.spark.createDataFrame(
            rows, f"{MOVIE} int, {TITLE} string, {GENRES} array<string>, {FE.TAG_TOKENS} array<string>"
        )
        empty_stats = self.spark.createDataFrame(
            [], f"{MOVIE} int, {FE.N_RATINGS} long, {FE.MEAN_RATING} double, {FE.POPULARITY} double"
        )
        return FE.movie_features(
            movies.drop(FE.TAG_TOKENS), FE.content_maps(self.content, movies), empty_stats, self.global_mean
        )

    def pairs(
        self,
        user_id: int,
        movie_ids: Iterable[int],
        genres: dict[int, list[str]] | None = None,
        state: UserState | None = None,
    ) -> list[LivePair]:
        """The user's pairs with these movies, with their features and evidence, computed on the driver.

        A movie the run does not know gets its content from `genres[movie_id]` (and no cf_raw);
        without genres it raises UnknownMovie."""
        arrays = self.pair_arrays(user_id, movie_ids, genres, state)
        missing = lambda x: None if math.isnan(x) else x
        features = [dict(zip(FE.PAIR_FEATURES, map(missing, row))) for row in arrays.features.tolist()]
        evidence = {name: values.tolist() for name, values in arrays.evidence.items()}
        return [
            LivePair(movie_id, values, {name: missing(evidence[name][i]) for name in scoring.EVIDENCE})
            for i, (movie_id, values) in enumerate(zip(arrays.movie_ids, features))
        ]

    def pair_arrays(
        self,
        user_id: int,
        movie_ids: Iterable[int],
        genres: dict[int, list[str]] | None = None,
        state: UserState | None = None,
    ) -> PairArrays:
        """`pairs` as arrays, one row per pair (what a list of a few hundred pairs is scored from)."""
        movie_ids = list(dict.fromkeys(int(m) for m in movie_ids))
        genres = genres or {}
        unknown = [m for m in movie_ids if m not in self.movie_ids]
        missing = [m for m in unknown if not genres.get(m)]
        if missing:
            raise UnknownMovie(f"movies {missing} are not in run {self.run_id}; give their genres to score them")
        if state is None and (
            user_id not in self.user_ids or user_id not in self.user_tastes or user_id not in self.user_scales
        ):
            raise UnknownUser(f"run {self.run_id} has no ratings of user {user_id}")
        if state is not None and state.taste is None and user_id not in self.user_tastes:
            raise UnknownUser(f"run {self.run_id} has no content profile of user {user_id} (no rated movie it knows)")
        table = self.movie_arrays
        if unknown:  # content features of new movies: the run's content pipeline, in Spark
            new = FE.collect_movie_contents(self._new_movie_features({m: genres[m] for m in unknown}))
            table = FE.MovieArrays.of({**{m: self.movie_contents[m] for m in movie_ids if m in self.movie_ids}, **new})
        taste = self.user_tastes[user_id] if state is None or state.taste is None else state.taste
        factor = None if state is None else state.factor
        rows = table.rows_of(movie_ids)
        known = rows >= 0
        found = [(m, cf) for m, cf, k in zip(movie_ids, self.cf_raw(user_id, movie_ids, factor), known.tolist()) if k]
        features = FE.feature_matrix(taste, table.take(rows[known]))
        # the run's forest on all the pairs at once (ForestArrays: Spark's predict, the same doubles)
        raw = {
            CF_RAW: np.array([np.nan if cf is None else cf for _, cf in found], dtype=np.float64),
            CB_RAW: np.asarray(self.forest_arrays.predict(features), dtype=np.float64),
            **{name: features[:, i] for i, name in enumerate(FE.PAIR_FEATURES)},
        }
        return PairArrays([movie_id for movie_id, _ in found], features, scoring.evidence_of(raw))

    def score(
        self,
        user_id: int,
        movie_ids: Iterable[int],
        genres: dict[int, list[str]] | None = None,
        state: UserState | None = None,
    ) -> list[dict]:
        """Hybrid, cf and cb scores of the user's pairs with these movies, best first.

        A movie the run does not know is scored from `genres[movie_id]` by the content model
        (its z_cf is 0: cf_score is an average candidate's chance); without genres it raises UnknownMovie.
        """
        return self.rank(self.pair_arrays(user_id, movie_ids, genres, state), self.user_scales[user_id])

    def rank(self, pairs: PairArrays, scales: dict[str, scoring.Scale], k: int | None = None) -> list[dict]:
        """The pairs' hybrid, cf and cb scores on the user's scale `scales`, best first (ties: the
        lower movie id), the best k of them (all without k); all pairs at once: scoring.blend_arrays,
        blend_values' formulas over arrays."""
        blended = scoring.blend_arrays(pairs.evidence, scales, scoring.Blend.from_settings(self.settings))
        ids = np.asarray(pairs.movie_ids, dtype=np.int64)
        order = np.lexsort((ids, -blended[SCORE]))[:k]
        columns = [(column, blended[column][order].tolist()) for column in (SCORE, CF_SCORE, CB_SCORE)]
        movies = ids[order].tolist()
        return [{MOVIE: movie, **{c: values[i] for c, values in columns}} for i, movie in enumerate(movies)]

    def scales_over(self, pairs: PairArrays) -> dict[str, scoring.Scale]:
        """The batch's per-user scale (scoring.user_scales) over these pairs, the user's candidates."""
        return scoring.scales_over(pairs.evidence, self.scale_names)

    def cf_raw(self, user_id: int, movie_ids: list[int], factor: np.ndarray | None = None) -> list[float | None]:
        """ALS's preference estimate of each pair, None where ALS never saw the user or movie
        (`factor`: the user's factor to use instead of the stored one, see `user_state`)."""
        user = self.user_factors.get(user_id) if factor is None else factor
        found = [m for m in movie_ids if m in self.item_row]
        if user is None or not found:
            return [None] * len(movie_ids)
        columns = self.catalogue.item_columns[:, [self.item_row[m] for m in found]]
        predicted = dict(zip(found, als_predictions(user, columns).tolist()))
        # NaN counts as no prediction, as movierec.models.als.cf_scores has it
        return [None if m not in predicted or math.isnan(predicted[m]) else predicted[m] for m in movie_ids]

    def recommend(self, user_id: int, k: int, feedback: Iterable[tuple[int, float]] = ()) -> list[dict]:
        """The user's top-k of the run's own candidates, computed now the way the batch does (for k
        beyond what is stored); fewer than k rows where the candidates run out.

        The candidates are the batch's (als_candidates from ALS, content_candidates by taste), never
        more however deep k is.  A deeper pool let in movies the batch never considered, and one of
        them could outscore rows the store holds: a page continuing a stored list live then ranked
        row 101 above row 100 (3 of 40 users of the tests' run at k=100).  With the same candidates,
        pairs and per-user scale the live list is the stored list continued, row for row.

        On the driver, and it starts no Spark job (serving.live sets no job group for it, so
        one started here could not be cancelled on a time-out): the same plan in Spark took
        5-6 s a call warm on 2 cores (and, under a loaded machine, longer than live_timeout
        every time); here milliseconds
        (serving/README.md has the figures).

        `feedback`: (movie id, rating) pairs the user gave since the run, oldest first; the list
        is then the one a run trained on the user's ratings with them would store: the user's
        factor and profile rebuilt (`user_state`), their candidates drawn again, and the scale
        taken over those candidates as the batch takes it (`scales_over`).  With feedback the
        user need not be one of the run's: a new user's first ratings give a personal list."""
        feedback = list(feedback)
        if user_id not in self.user_ids and not feedback:
            raise UnknownUser(f"run {self.run_id} has no ratings of user {user_id}")
        state = self.user_state(user_id, feedback)
        if state.taste is None:  # a new user who rated none of the movies the run knows: nothing to go on
            return []
        pairs = self.pair_arrays(user_id, self.candidates(user_id, state), state=state)
        scales = self.scales_over(pairs) if feedback else self.user_scales[user_id]
        rows = self.rank(pairs, scales, k)
        return [
            {RANK: rank, MOVIE: row[MOVIE], SCORE: row[SCORE], CF_SCORE: row[CF_SCORE], CB_SCORE: row[CB_SCORE]}
            for rank, row in enumerate(rows, start=1)
        ]

    def user_state(self, user_id: int, feedback: Iterable[tuple[int, float]] = ()) -> UserState:
        """The user as the run knows them, or, with `feedback` ((movie id, rating) given since the
        run, oldest first), as a run trained on their ratings with it would: a later rating of
        a movie replaces an earlier one; the ALS factor is re-solved from the run's item factors
        as Spark's ALS solves it (feedback transform, confidence, regularisation:
        movierec.models.als.solve_user_factor); the content profile is rebuilt by the batch's
        profile rules (movierec.features.UserTaste.of_ratings) over the run's movie features."""
        feedback = list(feedback)
        stored = UserState(
            self.user_factors.get(user_id), self.rated.get(user_id, frozenset()), self.user_tastes.get(user_id)
        )
        if not feedback:
            return stored
        movies, ratings = self.user_ratings.get(user_id, (np.empty(0, np.int64), np.empty(0)))
        merged = dict(zip(movies.tolist(), ratings.tolist()))
        for movie, rating in feedback:
            merged.pop(int(movie), None)  # re-inserted last: the order ratings were given in
            merged[int(movie)] = float(rating)
        taste = FE.UserTaste.of_ratings(list(merged.items()), self.movie_contents, self._log1p)
        s = self.settings
        # the feedback values over all the user's ratings (a centred mean counts every one), then
        # the pairs ALS has item factors for
        values = feedback_values(np.array(list(merged.values())), s.als_feedback)
        known = [(i, movie) for i, movie in enumerate(merged) if movie in self.item_factors]
        factor = stored.factor
        if known and self.gram is not None:
            items = np.stack([self.item_factors[movie] for _, movie in known])
            factor = solve_user_factor(items, values[[i for i, _ in known]], self.gram, s.als_reg, s.als_alpha)
        return UserState(factor, frozenset(merged), taste or stored.taste)

    def _log1p(self, x: float) -> float:
        """Spark's log1p (java.lang.StrictMath's), for a rebuilt profile's log1p(user_n): from the
        table taken at load, else one py4j round trip per distinct count."""
        if x not in self._log1p_of:
            self._log1p_of[x] = float(self.spark.sparkContext._jvm.java.lang.StrictMath.log1p(x))  # type: ignore[union-attr]
        return self._log1p_of[x]

    def candidates(self, user_id: int, state: UserState | None = None) -> list[int]:
        """The user's candidates on the driver: ALS's best als_candidates unrated movies ∪ the
        content_candidates unrated pool movies closest to the user's genre profile, by the
        batch's own code (movierec.ranking.candidates.Catalogue.for_user) over the same catalogue;
        tests/movierec/ranking/test_online.py holds the result to the batch's candidates of
        every user of a real run."""
        if user_id not in self.user_ids and state is None:
            raise UnknownUser(f"run {self.run_id} has no ratings of user {user_id}")
        state = self.user_state(user_id) if state is None else state
        taste = None if state.taste is None else (state.taste.genre_taste, state.taste.genre_exposure)
        s = self.settings
        ids, *_ = self.catalogue.for_user(state.factor, state.rated, taste, s.als_candidates, s.content_candidates)
        return ids


def _user_ratings(ratings: DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """user id → (movie ids, ratings) of the run's ratings of the user, on the driver."""
    rated: dict[int, list[tuple[int, float]]] = {}
    for user, movie, rating in ratings.select(USER, MOVIE, RATING).collect():
        rated.setdefault(user, []).append((movie, rating))
    return {
        user: (np.array([m for m, _ in rows], dtype=np.int64), np.array([r for _, r in rows], dtype=np.float64))
        for user, rows in rated.items()
    }


def _content_pool(movie_feats: DataFrame, size: int) -> list[tuple[int, int]]:
    """scoring.content_pool on the driver: (movie id, its rating count) of the pool's movies."""
    pool = scoring.content_pool(movie_feats, size).select(MOVIE, FE.N_RATINGS).collect()
    return [(row[MOVIE], row[FE.N_RATINGS]) for row in pool]


# rating counts whose log1p a run's models take from Spark at load (at least)
LOG1P_TABLE = 4096


def _spark_log1p(spark: SparkSession, up_to: int) -> dict[float, float]:
    """{float(n): Spark's log1p(n)} for n in 0..up_to, computed by Spark itself (F.log1p, as
    FE.user_tastes takes it) in one job."""
    counts = spark.range(0, up_to + 1).select(F.col("id").cast("double").alias("n"))
    return {row[0]: row[1] for row in counts.select("n", F.log1p("n")).collect()}
