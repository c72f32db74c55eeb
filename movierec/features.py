"""Content features of movies, taste profiles of users, and the features of a user-movie pair.

Movie content: genre TF-IDF (HashingTF + IDF, as in the seed), tag TF-IDF, release year
from the title, popularity and a shrunk mean rating.  Sparse vectors are kept as
map<int, double> columns so that dot products run as native Spark SQL.

User taste, over the same content: for each genre (and tag) bucket, the mean over the
user's ratings of (rating - user's mean rating) × the movie's weight there ("taste": what
the user rates above their own average), and the plain mean weight ("exposure": what
the user chooses to watch).  A pair's features compare the two, so the content model
ranks differently for different users (the seed's content model did not).

Each pair feature is declared once (`PAIR_FEATURE_SPECS`): its Spark column for the batch's
plans beside its numpy form for scoring a user's candidates in Python (the batch's workers,
movierec.ranking.candidates, and the live path, movierec.ranking.online), so the two cannot
drift apart; the forest's input vector (`PAIR_FEATURES`) follows that list's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import IDF, HashingTF, Normalizer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from movierec.data.schemas import GENRES, MOVIE, RATING, TAG, TITLE, USER, YEAR

GENRE_MAP = "genre_map"
TAG_MAP = "tag_map"
TAG_TOKENS = "tag_tokens"
N_RATINGS = "n_ratings"
MEAN_RATING = "mean_rating"
POPULARITY = "popularity"
USER_MEAN = "user_mean"
USER_N = "user_n"
USER_YEAR = "user_mean_year"
GENRE_TASTE = "genre_taste"
GENRE_EXPOSURE = "genre_exposure"
TAG_TASTE = "tag_taste"
TAG_EXPOSURE = "tag_exposure"
FEATURES = "features"
# a user's taste and exposure maps (one per content kind)
TASTE_MAPS = (GENRE_TASTE, GENRE_EXPOSURE, TAG_TASTE, TAG_EXPOSURE)

# a movie's mean rating is pulled towards the global mean as if it had this many extra ratings
SHRINK_RATINGS = 10.0


def empty_map():
    return F.create_map().cast("map<int,double>")


def release_year(title_col: str = TITLE):
    """`Toy Story (1995)` → 1995; null when the title carries no year."""
    year = F.regexp_extract(F.col(title_col), r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$", 1)
    return F.when(year != "", year.cast("int"))


def content_pipeline(genre_buckets: int, tag_buckets: int) -> Pipeline:
    """Genre and tag TF-IDF, each L2-normalised (an unfitted Spark ML pipeline)."""
    return Pipeline(
        stages=[
            HashingTF(inputCol=GENRES, outputCol="genre_tf", numFeatures=genre_buckets),
            IDF(inputCol="genre_tf", outputCol="genre_tfidf"),
            Normalizer(inputCol="genre_tfidf", outputCol="genre_vec"),
            HashingTF(inputCol=TAG_TOKENS, outputCol="tag_tf", numFeatures=tag_buckets),
            IDF(inputCol="tag_tf", outputCol="tag_tfidf"),
            Normalizer(inputCol="tag_tfidf", outputCol="tag_vec"),
        ]
    )


def movie_tag_tokens(movies: DataFrame, tags: DataFrame) -> DataFrame:
    """movies + tag_tokens: every tag any user gave the movie (lower-cased, repeats count)."""
    per_movie = tags.groupBy(MOVIE).agg(F.collect_list(F.lower(F.col(TAG))).alias(TAG_TOKENS))
    return movies.join(per_movie, MOVIE, "left").withColumn(
        TAG_TOKENS, F.coalesce(F.col(TAG_TOKENS), F.array().cast("array<string>"))
    )


def vector_to_map(col: str):
    """A (sparse) ML vector as map<bucket, weight>, zeros left out."""
    entries = F.transform(vector_to_array(F.col(col)), lambda x, i: F.struct(i.alias("k"), x.alias("v")))
    return F.map_from_entries(F.filter(entries, lambda e: e["v"] != 0))


def content_maps(fitted: PipelineModel, movies_with_tokens: DataFrame) -> DataFrame:
    """movie_id, genre_map, tag_map from a fitted content pipeline.

    Most movies have no tags: their tag map is empty without walking the dense vector
    (`vector_to_map` reads every bucket, 1024 by default, one interpreted step each).
    """
    tag_map = F.when(F.size(TAG_TOKENS) > 0, vector_to_map("tag_vec")).otherwise(empty_map())
    return fitted.transform(movies_with_tokens).select(
        MOVIE, vector_to_map("genre_vec").alias(GENRE_MAP), tag_map.alias(TAG_MAP)
    )


def build_features(movies, ratings, tags, genre_buckets: int, tag_buckets: int):
    """(fitted content pipeline, movie features, global mean rating) from one run's clean inputs."""
    with_tokens = movie_tag_tokens(movies, tags)
    fitted = content_pipeline(genre_buckets, tag_buckets).fit(with_tokens)
    global_mean = global_mean_rating(ratings)
    stats = rating_stats(ratings, global_mean)
    movie_feats = movie_features(movies, content_maps(fitted, with_tokens), stats, global_mean)
    return fitted, movie_feats, global_mean


def rating_stats(ratings: DataFrame, global_mean: float | None = None) -> DataFrame:
    """movie_id, n_ratings, mean_rating (shrunk towards the global mean), popularity = log(1 + n).

    `global_mean`: global_mean_rating(ratings), when the caller has it already (one Spark job less)."""
    if global_mean is None:
        global_mean = global_mean_rating(ratings)
    return (
        ratings.groupBy(MOVIE)
        .agg(F.count("*").alias(N_RATINGS), F.sum(RATING).alias("_sum"))
        .select(
            MOVIE,
            N_RATINGS,
            ((F.col("_sum") + F.lit(SHRINK_RATINGS * global_mean)) / (F.col(N_RATINGS) + SHRINK_RATINGS)).alias(
                MEAN_RATING
            ),
            F.log1p(F.col(N_RATINGS)).alias(POPULARITY),
        )
    )


def global_mean_rating(ratings: DataFrame) -> float:
    row = ratings.agg(F.avg(RATING)).first()
    if row is None or row[0] is None:
        raise ValueError("no ratings: the global mean rating is undefined")
    return float(row[0])


def movie_features(movies: DataFrame, maps: DataFrame, stats: DataFrame, global_mean: float) -> DataFrame:
    """One row per catalogue movie: title, year, genres, content maps, rating statistics.

    A movie nobody rated yet gets n_ratings 0 and the global mean rating.
    """
    return (
        movies.select(MOVIE, TITLE, GENRES, release_year().alias(YEAR))
        .join(maps, MOVIE, "left")
        .join(stats, MOVIE, "left")
        .select(
            MOVIE,
            TITLE,
            GENRES,
            YEAR,
            F.coalesce(GENRE_MAP, empty_map()).alias(GENRE_MAP),
            F.coalesce(TAG_MAP, empty_map()).alias(TAG_MAP),
            F.coalesce(N_RATINGS, F.lit(0)).cast("long").alias(N_RATINGS),
            F.coalesce(MEAN_RATING, F.lit(global_mean)).alias(MEAN_RATING),
            F.coalesce(POPULARITY, F.lit(0.0)).alias(POPULARITY),
        )
    )


# Profile sums are taken in exact decimal arithmetic: a floating-point sum depends on the order
# the rows arrive in, which differs from run to run, and a last-bit difference in one feature
# was enough to grow a different forest from the same seed.
EXACT = "decimal(38,18)"


def _profile(rated: DataFrame, map_col: str, taste: str, exposure: str) -> DataFrame:
    """Per user: mean of deviation × weight (taste) and mean weight (exposure) per bucket."""
    exploded = rated.select(USER, USER_N, "_dev", F.explode(map_col).alias("k", "w"))
    exact_mean = lambda x: (F.sum(x.cast(EXACT)) / F.first(USER_N)).cast("double")
    per_bucket = exploded.groupBy(USER, "k").agg(
        exact_mean(F.col("_dev") * F.col("w")).alias("t"),
        exact_mean(F.col("w")).alias("e"),
    )
    return per_bucket.groupBy(USER).agg(
        F.map_from_entries(F.collect_list(F.struct("k", "t"))).alias(taste),
        F.map_from_entries(F.collect_list(F.struct("k", "e"))).alias(exposure),
    )


def user_profiles(ratings: DataFrame, movie_feats: DataFrame) -> DataFrame:
    """One row per user: rating count and mean, mean release year, genre and tag taste/exposure."""
    rated = ratings.join(movie_feats.select(MOVIE, YEAR, GENRE_MAP, TAG_MAP), MOVIE)
    basics = rated.groupBy(USER).agg(
        F.count("*").alias(USER_N), F.avg(RATING).alias(USER_MEAN), F.avg(YEAR).alias(USER_YEAR)
    )
    rated = rated.join(basics, USER).withColumn("_dev", F.col(RATING) - F.col(USER_MEAN))
    genre = _profile(rated, GENRE_MAP, GENRE_TASTE, GENRE_EXPOSURE)
    tag = _profile(rated, TAG_MAP, TAG_TASTE, TAG_EXPOSURE)
    return (
        basics.join(genre, USER, "left")
        .join(tag, USER, "left")
        .select(USER, USER_N, USER_MEAN, USER_YEAR, *[F.coalesce(c, empty_map()).alias(c) for c in TASTE_MAPS])
    )


def map_dot(a: str, b: str):
    """Σ a[k] · b[k] over the keys of a (missing keys of b count as 0)."""
    return F.aggregate(
        F.map_entries(F.col(a)),
        F.lit(0.0),
        lambda acc, e: acc + e["value"] * F.coalesce(F.try_element_at(F.col(b), e["key"]), F.lit(0.0)),
    )


def dense(map_col: str):
    """A map<bucket, weight> as an array indexed by bucket (0.0 where the map has no key).

    Looking a key up in a Spark map scans its keys, so map_dot costs |a| × |b| per row; a
    user's tag profile holds hundreds of buckets and that scan was most of the content
    features' time.  An array is indexed directly (`dense_dot`).  Built with map_zip_with,
    which matches keys by hashing, so densifying costs |b| + the largest bucket once per user.
    """
    weights = F.col(map_col)
    n = F.coalesce(F.array_max(F.map_keys(weights)) + 1, F.lit(0))
    size = F.greatest(n, F.lit(1))
    zeros = F.map_from_arrays(F.sequence(F.lit(0), size - 1), F.array_repeat(F.lit(0.0), size))
    return F.when(F.size(weights) == 0, F.array().cast("array<double>")).otherwise(
        F.slice(F.map_values(F.map_zip_with(zeros, weights, lambda k, zero, w: F.coalesce(w, zero))), 1, n)
    )


def dense_dot(a: str, b: str):
    """map_dot(a, b) where b is `dense(b)`: the same products, summed in the same order, so
    the same double, bit for bit."""
    return F.aggregate(
        F.map_entries(F.col(a)),
        F.lit(0.0),
        lambda acc, e: acc + e["value"] * F.coalesce(F.try_element_at(F.col(b), e["key"] + 1), F.lit(0.0)),
    )


class UserTaste(NamedTuple):
    """One user's profile in Python (the live path, the batch's workers): what the pair features' `array`s read.

    Loaded from Spark with `user_tastes`, so each number is the one the batch reads."""

    user_mean: float
    log_n: float  # log1p(user_n), taken by Spark (see user_tastes)
    mean_year: float | None
    genre_taste: dict[int, float]
    genre_exposure: dict[int, float]
    tag_taste: dict[int, float]
    tag_exposure: dict[int, float]

    @classmethod
    def from_row(cls, row) -> UserTaste:
        return cls(row[USER_MEAN], row[LOG_N], row[USER_YEAR], *(dict(row[c] or {}) for c in TASTE_MAPS))

    @classmethod
    def of_ratings(
        cls, ratings: Sequence[tuple[int, float]], movies: Mapping[int, MovieContent], log1p: Callable[[float], float]
    ) -> UserTaste | None:
        """user_profiles + user_tastes of one user's (movie id, rating) pairs, on the driver: the
        profile a run would build from them (the live path's, after ratings given since the run).

        Step for step `user_profiles`: the ratings of movies in `movies` (its inner join); count,
        mean rating, mean year of those with a year; per content bucket, the sum of deviation ×
        weight and of weight, each product cast to decimal(38,18) as Spark casts a double
        (through its shortest decimal string, rounded half up), summed exactly and divided by
        the count at scale 18, then a double.  `log1p` is the JVM's (StrictMath, as Spark's
        F.log1p), passed in because C's may differ in the last bit and a forest split sits on
        a training value.  tests/movierec/ranking/test_online.py holds it to the batch's profiles.
        None when no rated movie is in `movies` (the batch has no profile then)."""
        rated = [(movies[m], float(r)) for m, r in ratings if m in movies]
        if not rated:
            return None
        n = len(rated)
        mean = sum(r for _, r in rated) / n
        years = [movie.year for movie, _ in rated if movie.year is not None]
        mean_year = sum(years) / len(years) if years else None

        def profile(entries_of: Callable[[MovieContent], tuple[tuple[int, float], ...]]):
            taste: dict[int, Decimal] = {}
            exposure: dict[int, Decimal] = {}
            for movie, rating in rated:
                deviation = rating - mean
                for key, weight in entries_of(movie):
                    taste[key] = taste.get(key, _ZERO) + _exact(deviation * weight)
                    exposure[key] = exposure.get(key, _ZERO) + _exact(weight)
            mean_of = lambda total: float((total / n).quantize(_SCALE, rounding=ROUND_HALF_UP))
            return {k: mean_of(v) for k, v in taste.items()}, {k: mean_of(v) for k, v in exposure.items()}

        genre_taste, genre_exposure = profile(lambda movie: movie.genre_entries)
        tag_taste, tag_exposure = profile(lambda movie: movie.tag_entries)
        return cls(mean, log1p(float(n)), mean_year, genre_taste, genre_exposure, tag_taste, tag_exposure)


_SCALE = Decimal(1).scaleb(-18)  # EXACT's scale
_ZERO = Decimal(0)


def _exact(value: float) -> Decimal:
    """A double cast to EXACT (decimal(38,18)) as Spark casts it: its decimal string, rounded half up."""
    return Decimal(repr(value)).quantize(_SCALE, rounding=ROUND_HALF_UP)


class MovieContent(NamedTuple):
    """One movie's content in Python (MovieArrays.of reads it): what the pair features' `array`s read.

    Loaded from Spark with `movie_contents`.  The content maps are kept as their entries in
    Spark's order: map_dot sums in that order, and an array keeps it on its way to Python."""

    year: int | None
    mean_rating: float
    popularity: float
    n_genres: int | None  # size(genres), as Spark counts it
    genre_entries: tuple[tuple[int, float], ...]
    tag_entries: tuple[tuple[int, float], ...]

    @classmethod
    def from_row(cls, row) -> MovieContent:
        entries = lambda col: tuple((e[0], e[1]) for e in row[col])
        return cls(
            row[YEAR], row[MEAN_RATING], row[POPULARITY], row[_N_GENRES], entries(_GENRE_ENTRIES), entries(_TAG_ENTRIES)
        )


LOG_N, _N_GENRES, _GENRE_ENTRIES, _TAG_ENTRIES = "_log_n", "_n_genres", "_genre_entries", "_tag_entries"


def user_tastes(profiles: DataFrame) -> DataFrame:
    """profiles with what UserTaste.from_row reads.  log1p(user_n) is taken here, by Spark: its
    log1p is java.lang.StrictMath's, C's may differ in the last bit, and a forest split sits
    exactly on a training value."""
    return profiles.select(USER, USER_MEAN, F.log1p(USER_N).alias(LOG_N), USER_YEAR, *TASTE_MAPS)


def movie_contents(movie_feats: DataFrame) -> DataFrame:
    """movie features with what MovieContent.from_row reads (the content maps as entry arrays)."""
    return movie_feats.select(
        MOVIE,
        YEAR,
        MEAN_RATING,
        POPULARITY,
        F.size(GENRES).alias(_N_GENRES),
        F.map_entries(GENRE_MAP).alias(_GENRE_ENTRIES),
        F.map_entries(TAG_MAP).alias(_TAG_ENTRIES),
    )


def collect_movie_contents(movie_feats: DataFrame) -> dict[int, MovieContent]:
    """Movie id -> its MovieContent, collected to the driver."""
    return {row[MOVIE]: MovieContent.from_row(row) for row in movie_contents(movie_feats).collect()}


def entries_dot(entries: tuple[tuple[int, float], ...], other: Mapping[int, float]) -> float:
    """map_dot on the driver: Σ value × other[key] over `entries` in order, missing keys 0 (the
    same products added in the same order as Spark's aggregate: the same double)."""
    total = 0.0
    for key, value in entries:
        total = total + value * other.get(key, 0.0)
    return total


@dataclass(frozen=True)
class ContentMap:
    """One content map (genres or tags) of many movies as flat arrays: movie i's entries, in
    Spark's order, are keys[starts[i]:starts[i] + lengths[i]] and the same slice of values."""

    keys: np.ndarray  # int64
    values: np.ndarray  # float64
    starts: np.ndarray  # int64, one per movie
    lengths: np.ndarray  # int64, one per movie

    @classmethod
    def of(cls, entries: Sequence[tuple[tuple[int, float], ...]]) -> ContentMap:
        lengths = np.fromiter((len(e) for e in entries), np.int64, len(entries))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if len(entries) else lengths
        flat = [pair for e in entries for pair in e]
        keys = np.fromiter((k for k, _ in flat), np.int64, len(flat))
        values = np.fromiter((v for _, v in flat), np.float64, len(flat))
        return cls(keys, values, starts, lengths)

    def take(self, rows: np.ndarray) -> ContentMap:
        """The movies at `rows`, in that order."""
        lengths = self.lengths[rows]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if len(rows) else lengths
        picked = np.repeat(self.starts[rows] - starts, lengths) + np.arange(lengths.sum())
        return ContentMap(self.keys[picked], self.values[picked], starts, lengths)

    def dot(self, other: Mapping[int, float]) -> np.ndarray:
        """entries_dot of every movie with `other` at once, the same doubles: each movie's products
        in its entries' order, added one after the other to 0.0, as Spark's aggregate adds them
        (the final + 0.0 turns an all -0.0 sum into Spark's 0.0).  Slot j adds every movie's j-th
        product; with the movies in descending length those are a prefix, so the work is the
        entries' count, not movies × the longest entry list."""
        n = len(self.lengths)
        sums = np.zeros(n)
        if n == 0 or len(self.keys) == 0:
            return sums
        size = int(self.keys.max()) + 1
        dense = np.zeros(size)
        known = [(k, v) for k, v in other.items() if 0 <= k < size]
        if known:
            dense[np.fromiter((k for k, _ in known), np.int64, len(known))] = [v for _, v in known]
        order = np.argsort(-self.lengths, kind="stable")
        lengths, starts = self.lengths[order], self.starts[order]
        acc = np.zeros(n)
        # movies with more than j entries: the first longer[j] of `order`
        longer = np.searchsorted(-lengths, -np.arange(int(lengths[0])), side="left")
        for j, k in enumerate(longer):
            at = starts[:k] + j
            acc[:k] += self.values[at] * dense[self.keys[at]]
        sums[order] = acc
        return sums + 0.0


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class MovieArrays:
    """Many movies' content as arrays (row i: movie_ids[i]), what the pair features' `array`s
    read: the batch's Python workers and the live path score a user's few hundred candidates
    at once from it.  NaN where Spark's value is null."""

    movie_ids: np.ndarray  # int64
    year: np.ndarray
    mean_rating: np.ndarray
    popularity: np.ndarray
    n_genres: np.ndarray
    genres: ContentMap
    tags: ContentMap

    @classmethod
    def of(cls, contents: Mapping[int, MovieContent]) -> MovieArrays:
        """From MovieContents (movie id → content), in ascending movie id."""
        ids = sorted(contents)
        rows = [contents[m] for m in ids]
        column = lambda read: np.array([_or_nan(read(c)) for c in rows], dtype=np.float64)
        return cls(
            np.array(ids, dtype=np.int64),
            column(lambda c: c.year),
            column(lambda c: c.mean_rating),
            column(lambda c: c.popularity),
            column(lambda c: c.n_genres),
            ContentMap.of([c.genre_entries for c in rows]),
            ContentMap.of([c.tag_entries for c in rows]),
        )

    def rows_of(self, movie_ids: Sequence[int]) -> np.ndarray:
        """The row of each movie (-1 where it has none)."""
        wanted = np.asarray(movie_ids, dtype=np.int64)
        rows = np.searchsorted(self.movie_ids, wanted)
        found = rows < len(self.movie_ids)
        found[found] = self.movie_ids[rows[found]] == wanted[found]
        return np.where(found, rows, -1)

    def take(self, rows: np.ndarray) -> MovieArrays:
        """The movies at `rows` (row indices), in that order."""
        return MovieArrays(
            self.movie_ids[rows],
            self.year[rows],
            self.mean_rating[rows],
            self.popularity[rows],
            self.n_genres[rows],
            self.genres.take(rows),
            self.tags.take(rows),
        )


@dataclass(frozen=True)
class PairFeature:
    """One feature of a user-movie pair, both ways it is computed.

    `column`: the Spark expression over a pair joined with its user's profile (taste maps as
    `dense` arrays) and its movie's features, for the batch's Spark plans (training, the
    evaluation's hold-out).  `array`: the same numbers for one user's pairs with many movies
    (a UserTaste, MovieArrays), for the candidates' scoring in Python (the batch's workers and
    the live path).  Both must give the same doubles bit for bit (a forest split sits exactly
    on a training value); tests/movierec/test_features.py and
    tests/movierec/ranking/test_online.py check every feature by name."""

    name: str
    column: Callable[[], Column]
    array: Callable[[UserTaste, MovieArrays], np.ndarray]


def _year():
    """The movie's release year; the user's mean year where the title has none (then 0)."""
    return F.coalesce(F.col(YEAR).cast("double"), F.col(USER_YEAR), F.lit(0.0))


def _year_array(user: UserTaste, movies: MovieArrays) -> np.ndarray:
    fallback = user.mean_year if user.mean_year is not None else 0.0
    return np.where(np.isnan(movies.year), fallback, movies.year)


def _year_gap_array(user: UserTaste, movies: MovieArrays) -> np.ndarray:
    year = _year_array(user, movies)
    return year - (user.mean_year if user.mean_year is not None else year)


def _each(value: float | None) -> Callable[[UserTaste, MovieArrays], np.ndarray]:
    return lambda u, m: np.full(len(m.movie_ids), _or_nan(value))


F_MOVIE_MEAN, F_MOVIE_POPULARITY, F_GENRE_TASTE = "f_movie_mean", "f_movie_popularity", "f_genre_taste"

# The content model's features, in the order of its input vector: adding or changing one here
# changes the batch and the live path together.
PAIR_FEATURE_SPECS: tuple[PairFeature, ...] = (
    PairFeature("f_user_mean", lambda: F.col(USER_MEAN), lambda u, m: _each(u.user_mean)(u, m)),
    PairFeature("f_user_log_n", lambda: F.log1p(USER_N), lambda u, m: _each(u.log_n)(u, m)),
    PairFeature(F_MOVIE_MEAN, lambda: F.col(MEAN_RATING), lambda u, m: m.mean_rating),
    PairFeature(F_MOVIE_POPULARITY, lambda: F.col(POPULARITY), lambda u, m: m.popularity),
    PairFeature("f_year", _year, _year_array),
    PairFeature("f_year_gap", lambda: _year() - F.coalesce(F.col(USER_YEAR), _year()), _year_gap_array),
    PairFeature(F_GENRE_TASTE, lambda: dense_dot(GENRE_MAP, GENRE_TASTE), lambda u, m: m.genres.dot(u.genre_taste)),
    PairFeature(
        "f_genre_exposure", lambda: dense_dot(GENRE_MAP, GENRE_EXPOSURE), lambda u, m: m.genres.dot(u.genre_exposure)
    ),
    PairFeature("f_tag_taste", lambda: dense_dot(TAG_MAP, TAG_TASTE), lambda u, m: m.tags.dot(u.tag_taste)),
    PairFeature("f_tag_exposure", lambda: dense_dot(TAG_MAP, TAG_EXPOSURE), lambda u, m: m.tags.dot(u.tag_exposure)),
    PairFeature("f_genre_count", lambda: F.size(GENRES).cast("double"), lambda u, m: m.n_genres),
)
# the pair features the content model reads, in order
PAIR_FEATURES = [feature.name for feature in PAIR_FEATURE_SPECS]


def pair_features(pairs: DataFrame, movie_feats: DataFrame, profiles: DataFrame) -> DataFrame:
    """pairs (user_id, movie_id, …) + the content model's feature columns and `features` vector.

    Pairs whose user has no profile or whose movie is not in movie_feats are dropped.
    """
    dense_profiles = profiles.select(*[dense(c).alias(c) if c in TASTE_MAPS else c for c in profiles.columns])
    joined = pairs.join(dense_profiles, USER).join(movie_feats.drop(TITLE), MOVIE)
    with_cols = joined.select(*pairs.columns, *[feature.column().alias(feature.name) for feature in PAIR_FEATURE_SPECS])
    return VectorAssembler(inputCols=PAIR_FEATURES, outputCol=FEATURES, handleInvalid="keep").transform(with_cols)


def feature_matrix(user: UserTaste, movies: MovieArrays) -> np.ndarray:
    """The `features` vector of the user's pair with each of `movies` (pairs × PAIR_FEATURES,
    float64, NaN where Spark's value is null, as VectorAssembler's handleInvalid="keep")."""
    if not len(movies.movie_ids):
        return np.empty((0, len(PAIR_FEATURE_SPECS)))
    return np.column_stack([np.asarray(f.array(user, movies), dtype=np.float64) for f in PAIR_FEATURE_SPECS])


def pair_feature_values(user: UserTaste, movie: MovieContent) -> dict[str, float | None]:
    """pair_features of one pair on the driver: feature name -> value (None where Spark's is null)."""
    row = feature_matrix(user, MovieArrays.of({0: movie}))[0].tolist()
    return {name: None if math.isnan(value) else value for name, value in zip(PAIR_FEATURES, row)}


def feature_vector(values: dict[str, float | None]) -> list[float]:
    """The `features` vector of pair_feature_values: PAIR_FEATURES order, NaN for None (as
    VectorAssembler's handleInvalid="keep" does)."""
    return [math.nan if (value := values[name]) is None else value for name in PAIR_FEATURES]
