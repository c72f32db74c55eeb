"""Column names (defined once) and the explicit schemas of inputs and stage outputs."""

from __future__ import annotations

from pyspark.sql import types as T

# column names used everywhere after ingest
USER = "user_id"
MOVIE = "movie_id"
RATING = "rating"
TIMESTAMP = "timestamp"
TITLE = "title"
GENRES = "genres"
YEAR = "year"
TAG = "tag"
RANK = "rank"
SCORE = "score"
CF_SCORE = "cf_score"
CB_SCORE = "cb_score"
SIMILAR_MOVIE = "similar_movie_id"
REASON = "reason"

# MovieLens CSVs are read as text first so that every bad value can be counted, not lost
RATINGS_CSV = T.StructType(
    [
        T.StructField("userId", T.StringType()),
        T.StructField("movieId", T.StringType()),
        T.StructField("rating", T.StringType()),
        T.StructField("timestamp", T.StringType()),
    ]
)
MOVIES_CSV = T.StructType(
    [
        T.StructField("movieId", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("genres", T.StringType()),
    ]
)
TAGS_CSV = T.StructType(
    [
        T.StructField("userId", T.StringType()),
        T.StructField("movieId", T.StringType()),
        T.StructField("tag", T.StringType()),
        T.StructField("timestamp", T.StringType()),
    ]
)

# ingest outputs
RATINGS = T.StructType(
    [
        T.StructField(USER, T.IntegerType(), False),
        T.StructField(MOVIE, T.IntegerType(), False),
        T.StructField(RATING, T.DoubleType(), False),
        T.StructField(TIMESTAMP, T.LongType(), False),
    ]
)
MOVIES = T.StructType(
    [
        T.StructField(MOVIE, T.IntegerType(), False),
        T.StructField(TITLE, T.StringType(), False),
        T.StructField(GENRES, T.ArrayType(T.StringType(), False), False),
    ]
)
TAGS = T.StructType(
    [
        T.StructField(USER, T.IntegerType(), False),
        T.StructField(MOVIE, T.IntegerType(), False),
        T.StructField(TAG, T.StringType(), False),
        T.StructField(TIMESTAMP, T.LongType(), False),
    ]
)

# score output: one row per user and rank
RECOMMENDATIONS = T.StructType(
    [
        T.StructField(USER, T.IntegerType(), False),
        T.StructField(RANK, T.IntegerType(), False),
        T.StructField(MOVIE, T.IntegerType(), False),
        T.StructField(SCORE, T.DoubleType(), False),
        T.StructField(CF_SCORE, T.DoubleType(), False),
        T.StructField(CB_SCORE, T.DoubleType(), False),
    ]
)
