"""Content features of movies, taste profiles of users, and the features of a user-movie pair.

Movie content: genre TF-IDF (HashingTF + IDF, as in the seed), tag TF-IDF, release year
from the title, popularity and a shrunk mean rating.  Sparse vectors are kept as
map<int, double> columns so that dot products run as native Spark SQL.

User taste, over the same content: for each genre (and tag) bucket, the mean over the
user's ratings of (rating - user's mean rating) × the movie's weight there ("taste": what
the user rates above their own average), and the plain mean weight ("exposure": what
the user chooses to watch).  A pair's features compare the two, so the content model
ranks differently for different users (the seed's content model did not).
"""
from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import IDF, HashingTF, Normalizer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
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

# a movie's mean rating is pulled towards the global mean as if it had this many extra ratings
SHRINK_RATINGS = 10.0

# the pair features the content model reads, in order
PAIR_FEATURES = [
    "f_user_mean", "f_user_log_n", "f_movie_mean", "f_movie_popularity", "f_year", "f_year_gap",
    "f_genre_taste", "f_genre_exposure", "f_tag_taste", "f_tag_exposure", "f_genre_count",
]

def empty_map():
    return F.create_map().cast("map<int,double>")


def release_year(title_col: str = TITLE):
    """`Toy Story (1995)` → 1995; null when the title carries no year."""
    year = F.regexp_extract(F.col(title_col), r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$", 1)
    return F.when(year != "", year.cast("int"))


def content_pipeline(genre_buckets: int, tag_buckets: int) -> Pipeline:
    """Genre and tag TF-IDF, each L2-normalised (an unfitted Spark ML pipeline)."""
    return Pipeline(stages=[
        HashingTF(inputCol=GENRES, outputCol="genre_tf", numFeatures=genre_buckets),
        IDF(inputCol="genre_tf", outputCol="genre_tfidf"),
        Normalizer(inputCol="genre_tfidf", outputCol="genre_vec"),
        HashingTF(inputCol=TAG_TOKENS, outputCol="tag_tf", numFeatures=tag_buckets),
        IDF(inputCol="tag_tf", outputCol="tag_tfidf"),
        Normalizer(inputCol="tag_tfidf", outputCol="tag_vec"),
    ])


def movie_tag_tokens(movies: DataFrame, tags: DataFrame) -> DataFrame:
    """movies + tag_tokens: every tag any user gave the movie (lower-cased, repeats count)."""
    per_movie = tags.groupBy(MOVIE).agg(F.collect_list(F.lower(F.col(TAG))).alias(TAG_TOKENS))
    return movies.join(per_movie, MOVIE, "left").withColumn(
        TAG_TOKENS, F.coalesce(F.col(TAG_TOKENS), F.array().cast("array<string>")))


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
        MOVIE, vector_to_map("genre_vec").alias(GENRE_MAP), tag_map.alias(TAG_MAP))


def build_features(movies, ratings, tags, genre_buckets: int, tag_buckets: int):
    """(fitted content pipeline, movie features, global mean rating) from one run's clean inputs."""
    with_tokens = movie_tag_tokens(movies, tags)
    fitted = content_pipeline(genre_buckets, tag_buckets).fit(with_tokens)
    global_mean = global_mean_rating(ratings)
    movie_feats = movie_features(movies, content_maps(fitted, with_tokens), rating_stats(ratings), global_mean)
    return fitted, movie_feats, global_mean


def rating_stats(ratings: DataFrame) -> DataFrame:
    """movie_id, n_ratings, mean_rating (shrunk towards the global mean), popularity = log(1 + n)."""
    global_mean = ratings.agg(F.avg(RATING)).first()[0]
    return ratings.groupBy(MOVIE).agg(F.count("*").alias(N_RATINGS), F.sum(RATING).alias("_sum")).select(
        MOVIE, N_RATINGS,
        ((F.col("_sum") + F.lit(SHRINK_RATINGS * global_mean)) / (F.col(N_RATINGS) + SHRINK_RATINGS)).alias(MEAN_RATING),
        F.log1p(F.col(N_RATINGS)).alias(POPULARITY),
    )


def global_mean_rating(ratings: DataFrame) -> float:
    return float(ratings.agg(F.avg(RATING)).first()[0])


def movie_features(movies: DataFrame, maps: DataFrame, stats: DataFrame, global_mean: float) -> DataFrame:
    """One row per catalogue movie: title, year, genres, content maps, rating statistics.

    A movie nobody rated yet gets n_ratings 0 and the global mean rating.
    """
    return (
        movies.select(MOVIE, TITLE, GENRES, release_year().alias(YEAR))
        .join(maps, MOVIE, "left")
        .join(stats, MOVIE, "left")
        .select(
            MOVIE, TITLE, GENRES, YEAR,
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
        F.count("*").alias(USER_N), F.avg(RATING).alias(USER_MEAN), F.avg(YEAR).alias(USER_YEAR))
    rated = rated.join(basics, USER).withColumn("_dev", F.col(RATING) - F.col(USER_MEAN))
    genre = _profile(rated, GENRE_MAP, GENRE_TASTE, GENRE_EXPOSURE)
    tag = _profile(rated, TAG_MAP, TAG_TASTE, TAG_EXPOSURE)
    return (
        basics.join(genre, USER, "left").join(tag, USER, "left")
        .select(USER, USER_N, USER_MEAN, USER_YEAR,
                *[F.coalesce(c, empty_map()).alias(c) for c in (GENRE_TASTE, GENRE_EXPOSURE, TAG_TASTE, TAG_EXPOSURE)])
    )


def map_dot(a: str, b: str):
    """Σ a[k] · b[k] over the keys of a (missing keys of b count as 0)."""
    return F.aggregate(
        F.map_entries(F.col(a)), F.lit(0.0),
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
        F.slice(F.map_values(F.map_zip_with(zeros, weights, lambda k, zero, w: F.coalesce(w, zero))), 1, n))


def dense_dot(a: str, b: str):
    """map_dot(a, b) where b is `dense(b)`: the same products, summed in the same order, so
    the same double, bit for bit."""
    return F.aggregate(
        F.map_entries(F.col(a)), F.lit(0.0),
        lambda acc, e: acc + e["value"] * F.coalesce(F.try_element_at(F.col(b), e["key"] + 1), F.lit(0.0)),
    )


def pair_features(pairs: DataFrame, movie_feats: DataFrame, profiles: DataFrame) -> DataFrame:
    """pairs (user_id, movie_id, …) + the content model's feature columns and `features` vector.

    Pairs whose user has no profile or whose movie is not in movie_feats are dropped.
    """
    tastes = (GENRE_TASTE, GENRE_EXPOSURE, TAG_TASTE, TAG_EXPOSURE)
    dense_profiles = profiles.select(*[dense(c).alias(c) if c in tastes else c for c in profiles.columns])
    joined = pairs.join(dense_profiles, USER).join(movie_feats.drop(TITLE), MOVIE)
    year = F.coalesce(F.col(YEAR).cast("double"), F.col(USER_YEAR), F.lit(0.0))
    with_cols = joined.select(
        *pairs.columns,
        F.col(USER_MEAN).alias("f_user_mean"),
        F.log1p(USER_N).alias("f_user_log_n"),
        F.col(MEAN_RATING).alias("f_movie_mean"),
        F.col(POPULARITY).alias("f_movie_popularity"),
        year.alias("f_year"),
        (year - F.coalesce(F.col(USER_YEAR), year)).alias("f_year_gap"),
        dense_dot(GENRE_MAP, GENRE_TASTE).alias("f_genre_taste"),
        dense_dot(GENRE_MAP, GENRE_EXPOSURE).alias("f_genre_exposure"),
        dense_dot(TAG_MAP, TAG_TASTE).alias("f_tag_taste"),
        dense_dot(TAG_MAP, TAG_EXPOSURE).alias("f_tag_exposure"),
        F.size(GENRES).cast("double").alias("f_genre_count"),
    )
    return VectorAssembler(inputCols=PAIR_FEATURES, outputCol=FEATURES, handleInvalid="keep").transform(with_cols)
