"""Each user's candidates: ALS's best `als_candidates` unrated movies ∪ the `content_candidates`
unrated pool movies closest to the user's genre profile.  The one definition, run by the
batch (`candidates`, in each Python worker over a partition of users) and by the live path
(movierec.ranking.online, on the driver, for one user).

Both sides work in numpy, per user, from a `Catalogue` (the run's item factors and content
pool).  Spark's own route, recommendForAllUsers and then dropping the rated movies with a
join, had to ask every user for n plus the heaviest rater's count (capped at 3n, which left
heavy raters short of ALS candidates) and exploded that many rows per user; with the content
side's per-user windows and ALS's transform joins for cf_raw, it was 70% of the score stage
(benchmarks/candidates.md).  Here each user's predictions of every movie are computed once,
exactly as ALSModel.transform computes them (`movierec.models.als.als_predictions`, the same
bits), so a candidate's cf_raw comes with it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALSModel
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from movierec import features as FE
from movierec.data.schemas import MOVIE, USER
from movierec.models.als import CF_RAW, als_predictions, collect_factors
from movierec.models.forest import CB_RAW, ForestArrays

FROM_ALS, FROM_CONTENT = "from_als", "from_content"
# the batch's candidate rows: cf_raw is null where ALS has no factor of the user or the movie
SCHEMA = f"{USER} int, {MOVIE} int, {CF_RAW} float, {FROM_ALS} boolean, {FROM_CONTENT} boolean"

GenreEntries = tuple[tuple[int, float], ...]


def best_first(values: np.ndarray, n: int) -> np.ndarray:
    """np.argsort(-values, kind="stable")[:n] without sorting them all: the indices of the n
    largest, ties in index order, NaN last (a partition finds the n-th largest; only the
    values at or above it are sorted)."""
    negated = -values
    if n <= 0:
        return np.empty(0, dtype=np.intp)
    if n >= len(values):
        return np.argsort(negated, kind="stable")
    nth = np.partition(negated, n - 1)[n - 1]
    if np.isnan(nth):  # fewer than n numbers: NaN sorts last, as in the full sort
        return np.argsort(negated, kind="stable")[:n]
    chosen = np.flatnonzero(negated <= nth)
    return chosen[np.argsort(negated[chosen], kind="stable")][:n]


@dataclass(frozen=True)
class Catalogue:
    """What candidates are drawn from: ALS's item factors (movies in ascending id, so ties go
    to the lower id) and the content pool, grouped by genre vector ("kind": about 400 kinds
    among 2,000 pool movies, so a user's affinity is computed once per kind)."""

    item_ids: np.ndarray  # int64, ascending
    item_columns: np.ndarray  # float32, factor-major: row f holds every movie's factor f
    # the content pool in the tie order (more rated first, then the lower id): each movie's id
    # and its kind, a row of kind_entries (the kind's genre map entries in Spark's order)
    pool_ids: np.ndarray  # int64
    pool_kinds: np.ndarray  # intp
    kind_entries: FE.ContentMap

    @classmethod
    def build(
        cls,
        item_factors: Mapping[int, np.ndarray],
        pool: Iterable[tuple[int, int]],
        genre_entries: Mapping[int, GenreEntries],
    ) -> Catalogue:
        """From the run's item factors (movie id → float32 factor), its content pool ((movie id,
        rating count), scoring.content_pool) and each pool movie's genre map entries in Spark's
        order (movierec.features.MovieContent.genre_entries)."""
        ids = np.array(sorted(item_factors), dtype=np.int64)
        if len(ids):
            matrix = np.stack([np.asarray(item_factors[m], dtype=np.float32) for m in ids.tolist()])
            columns = np.ascontiguousarray(matrix.T)
        else:
            columns = np.empty((0, 0), dtype=np.float32)
        ordered = sorted(pool, key=lambda movie_n: (-movie_n[1], movie_n[0]))
        kinds: dict[GenreEntries, int] = {}
        pool_kinds = [kinds.setdefault(tuple(genre_entries[movie]), len(kinds)) for movie, _ in ordered]
        return cls(
            ids,
            columns,
            np.array([movie for movie, _ in ordered], dtype=np.int64),
            np.array(pool_kinds, dtype=np.intp),
            FE.ContentMap.of(list(kinds)),
        )

    def predictions(self, factor: np.ndarray) -> np.ndarray:
        """ALS's prediction of the user's pair with every movie of `item_ids` (float32)."""
        return als_predictions(np.asarray(factor, dtype=np.float32), self.item_columns)

    def predictions_of(self, factors: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """`predictions` of each of a block of users' factors (None for a user without one, and
        for everyone without item factors), computed as one block: the same numbers, in a
        fraction of the time (movierec.models.als.als_predictions)."""
        out: list[np.ndarray | None] = [None] * len(factors)
        have = [i for i, factor in enumerate(factors) if factor is not None]
        if have and len(self.item_ids):
            block = np.stack([np.asarray(factors[i], dtype=np.float32) for i in have])
            for i, row in zip(have, als_predictions(block, self.item_columns)):
                out[i] = row
        return out

    def als_top(self, predictions: np.ndarray, rated: Collection[int], n: int) -> np.ndarray:
        """Indices into item_ids of the user's n best unrated movies by ALS, best first."""
        keep = np.ones(len(self.item_ids), dtype=bool)
        keep[_rows_of(self.item_ids, rated)] = False
        unrated = np.flatnonzero(keep)
        return unrated[best_first(predictions[unrated], n)]

    def content_top(
        self, genre_taste: Mapping[int, float], genre_exposure: Mapping[int, float], rated: Collection[int], n: int
    ) -> list[int]:
        """The user's n unrated pool movies closest to their genre profile: affinity = the movie's
        genre map · exposure + · taste (each summed in map order, as movierec.features.dense_dot,
        once per kind); ties: more rated first, then the lower movie id (the pool's own order,
        which best_first keeps among equals)."""
        if n <= 0 or not len(self.pool_ids):
            return []
        affinity = self.kind_entries.dot(genre_exposure) + self.kind_entries.dot(genre_taste)
        unrated = np.flatnonzero(~np.isin(self.pool_ids, np.fromiter(rated, np.int64, len(rated))))
        return self.pool_ids[unrated[best_first(affinity[self.pool_kinds[unrated]], n)]].tolist()

    def for_user(
        self,
        factor: np.ndarray | None,
        rated: Collection[int],
        taste: tuple[Mapping[int, float], Mapping[int, float]] | None,
        als_n: int,
        content_n: int,
        predicted: np.ndarray | None = None,
    ) -> tuple[list[int], list[float | None], list[bool], list[bool]]:
        """One user's candidates (ALS's first, in its order, then the content side's new ones),
        each with its cf_raw (None where ALS has no factor of the user or the movie) and which side
        proposed it.  `taste`: the user's (genre_taste, genre_exposure), None without a profile;
        `predicted`: the user's `predictions` if computed already (`predictions_of` a block)."""
        if predicted is None and factor is not None and len(self.item_ids):
            predicted = self.predictions(factor)
        from_als = [] if predicted is None else self.item_ids[self.als_top(predicted, rated, als_n)].tolist()
        from_content = self.content_top(*taste, rated, content_n) if taste is not None else []
        ids = list(dict.fromkeys(from_als + from_content))
        cf: list[float | None] = [None] * len(ids)
        if predicted is not None:
            wanted = np.array(ids, dtype=np.int64)
            rows = np.minimum(np.searchsorted(self.item_ids, wanted), len(self.item_ids) - 1)
            values = predicted[rows]
            found = (self.item_ids[rows] == wanted) & ~np.isnan(values)
            cf = [v if ok else None for v, ok in zip(values.tolist(), found.tolist())]
        als_side, content_side = set(from_als), set(from_content)
        return ids, cf, [m in als_side for m in ids], [m in content_side for m in ids]


def catalogue_of(als: ALSModel, movie_feats: DataFrame, pool_size: int) -> Catalogue:
    """The run's Catalogue, collected to the driver (the item factors: movies × rank floats)."""
    from movierec.ranking.scoring import content_pool

    factors = collect_factors(als.itemFactors)
    pool = content_pool(movie_feats, pool_size)
    rows = FE.movie_contents(pool).join(pool.select(MOVIE, FE.N_RATINGS), MOVIE).collect()
    entries = {row[MOVIE]: FE.MovieContent.from_row(row).genre_entries for row in rows}
    return Catalogue.build(factors, [(row[MOVIE], row[FE.N_RATINGS]) for row in rows], entries)


_RATED, _FACTOR = "_rated", "_factor"
# users per output frame of a worker: bounds its lists and the forest's arrays (about 400
# pairs a user, trees × pairs node indices)
USERS_PER_FRAME = 500
# users whose ALS predictions are computed as one block (Catalogue.predictions_of): 64 × ml-25m's
# 59k movies is 15 MB of float32 (benchmarks/als_predictions.py)
USERS_PER_BLOCK = 64
# the content model's evidence (scoring.CB_EVIDENCE's columns) each candidate carries when
# the batch is given the forest
CONTENT_EVIDENCE = (CB_RAW, FE.F_MOVIE_POPULARITY, FE.F_MOVIE_MEAN, FE.F_GENRE_TASTE)
EVIDENCE_SCHEMA = SCHEMA + "".join(f", {column} double" for column in CONTENT_EVIDENCE)


def _keys_values(column: str) -> tuple[str, str]:
    return f"_{column}_keys", f"_{column}_values"


def _as_dict(keys, values) -> dict:
    """A map column read as its keys and values arrays (None: an empty map)."""
    if keys is None:
        return {}
    return dict(zip(np.asarray(keys).tolist(), np.asarray(values).tolist()))


def _rows_of(ascending: np.ndarray, movies: Collection[int]) -> np.ndarray:
    """The rows of `ascending` (sorted ids) that hold one of `movies` (those it has)."""
    wanted = np.fromiter(movies, np.int64, len(movies))
    if not len(wanted) or not len(ascending):
        return np.empty(0, dtype=np.intp)
    rows = np.minimum(np.searchsorted(ascending, wanted), len(ascending) - 1)
    return rows[ascending[rows] == wanted]


def _block_predictions(source: Catalogue, factors: list[np.ndarray | None]) -> Iterator[np.ndarray | None]:
    """Each user's `predictions` (None without a factor), computed USERS_PER_BLOCK at a time and
    handed out lazily, so a worker holds one block's at once."""
    for start in range(0, len(factors), USERS_PER_BLOCK):
        yield from source.predictions_of(factors[start : start + USERS_PER_BLOCK])


def _or_none(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


@dataclass(frozen=True)
class ContentScorer:
    """What the content side's evidence of a candidate is computed from in the workers: the
    run's movies (their content as arrays) and its forest (Spark's predict, the same doubles)."""

    movies: FE.MovieArrays
    forest: ForestArrays

    def evidence(self, taste: FE.UserTaste, movie_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(which of movie_ids have content, the pair features of those), one user's pairs."""
        rows = self.movies.rows_of(movie_ids)
        known = rows >= 0
        return known, FE.feature_matrix(taste, self.movies.take(rows[known]))


def candidates(
    als: ALSModel,
    ratings: DataFrame,
    movie_feats: DataFrame,
    profiles: DataFrame,
    als_n: int,
    content_n: int,
    pool_size: int,
    users: DataFrame | None = None,
    forest: RandomForestRegressionModel | None = None,
) -> DataFrame:
    """Every user's candidates (those with a content profile; only those in `users` if given),
    as SCHEMA rows: ALS's best als_n unrated movies ∪ the content side's best content_n, none
    already rated in `ratings`.  The Catalogue is broadcast, each partition of users is scored
    in a Python worker by `Catalogue.for_user`.

    Given the run's forest, each candidate also carries the content side's evidence
    (EVIDENCE_SCHEMA: cb_raw and the pair features scoring.CB_EVIDENCE reads), computed in the
    same pass by the pair features' numpy form and the forest's arrays: the numbers
    scoring.raw_scores computes in Spark plans, bit for bit (tests/movierec/ranking/
    test_online.py), without joining every pair to its profile and movie.  Candidates of
    movies without content (none in movie_feats) are then dropped, as raw_scores' joins drop them."""
    spark = ratings.sparkSession
    catalogue = spark.sparkContext.broadcast(catalogue_of(als, movie_feats, pool_size))
    scorer = None
    if forest is not None:
        contents = FE.collect_movie_contents(movie_feats)
        content_scorer = ContentScorer(FE.MovieArrays.of(contents), ForestArrays.from_model(forest))
        scorer = spark.sparkContext.broadcast(content_scorer)
    who = profiles if users is None else profiles.join(users.select(USER), USER, "left_semi")
    maps = FE.TASTE_MAPS if forest is not None else (FE.GENRE_TASTE, FE.GENRE_EXPOSURE)
    scalars = (FE.USER_MEAN, FE.LOG_N, FE.USER_YEAR) if forest is not None else ()
    split = [F.map_keys(c).alias(_keys_values(c)[0]) for c in maps] + [
        F.map_values(c).alias(_keys_values(c)[1]) for c in maps
    ]
    inputs = (
        (FE.user_tastes(who) if forest is not None else who)
        .select(USER, *scalars, *split)
        .join(als.userFactors.select(F.col("id").alias(USER), F.col("features").alias(_FACTOR)), USER, "left")
        .join(ratings.groupBy(USER).agg(F.collect_list(MOVIE).alias(_RATED)), USER, "left")
    )

    def frame(rows: pd.DataFrame, source: Catalogue, content: ContentScorer | None) -> pd.DataFrame:
        out: dict[str, list] = {USER: [], MOVIE: [], CF_RAW: [], FROM_ALS: [], FROM_CONTENT: []}
        features: list[np.ndarray] = []
        names = list(rows.columns)
        users = [dict(zip(names, values)) for values in zip(*(rows[c] for c in names))]
        factors = [None if u[_FACTOR] is None else np.asarray(u[_FACTOR], dtype=np.float32) for u in users]
        for fields, factor, predicted in zip(users, factors, _block_predictions(source, factors)):
            rated_row = fields[_RATED]
            rated = set() if rated_row is None else set(np.asarray(rated_row).tolist())
            taste_maps = {c: _as_dict(fields[_keys_values(c)[0]], fields[_keys_values(c)[1]]) for c in maps}
            taste = (taste_maps[FE.GENRE_TASTE], taste_maps[FE.GENRE_EXPOSURE])
            ids, cf, als_side, content_side = source.for_user(factor, rated, taste, als_n, content_n, predicted)
            if content is not None:
                user = FE.UserTaste(
                    fields[FE.USER_MEAN],
                    fields[FE.LOG_N],
                    _or_none(fields[FE.USER_YEAR]),
                    *(taste_maps[c] for c in FE.TASTE_MAPS),
                )
                known, pair_features = content.evidence(user, ids)
                if not known.all():
                    keep = np.flatnonzero(known).tolist()
                    ids, cf = [ids[i] for i in keep], [cf[i] for i in keep]
                    als_side, content_side = [als_side[i] for i in keep], [content_side[i] for i in keep]
                features.append(pair_features)
            out[USER].extend([int(fields[USER])] * len(ids))
            out[MOVIE].extend(ids)
            out[CF_RAW].extend(cf)
            out[FROM_ALS].extend(als_side)
            out[FROM_CONTENT].extend(content_side)
        result = pd.DataFrame(
            {
                USER: pd.array(out[USER], dtype="int32"),
                MOVIE: pd.array(out[MOVIE], dtype="int32"),
                CF_RAW: pd.array(out[CF_RAW], dtype="Float32"),
                FROM_ALS: pd.array(out[FROM_ALS], dtype="bool"),
                FROM_CONTENT: pd.array(out[FROM_CONTENT], dtype="bool"),
            }
        )
        if content is not None:
            matrix = np.concatenate(features) if features else np.empty((0, len(FE.PAIR_FEATURES)))
            result[CB_RAW] = content.forest.predict(matrix)
            for column in CONTENT_EVIDENCE[1:]:
                result[column] = matrix[:, FE.PAIR_FEATURES.index(column)]
        return result

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        source: Catalogue = catalogue.value
        content: ContentScorer | None = None if scorer is None else scorer.value
        for batch in batches:
            for start in range(0, len(batch), USERS_PER_FRAME):
                yield frame(batch.iloc[start : start + USERS_PER_FRAME], source, content)

    return inputs.mapInPandas(score_partition, SCHEMA if forest is None else EVIDENCE_SCHEMA)
