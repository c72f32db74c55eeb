"""The content model's forest: seeded and independent of how its rows arrive, fed the pair
feature vector as declared, and predicting ratings on the label's scale."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import functions as F
from pyspark.sql import types as T

from movierec import features as FE
from movierec.models.forest import CB_RAW, cb_scores, fit_rf, rf_estimator, training_pairs, training_sample

pytestmark = pytest.mark.spark

N_FEATURES = len(FE.PAIR_FEATURES)
PAIRS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.IntegerType()),
        T.StructField("movie_id", T.IntegerType()),
        T.StructField("features", VectorUDT()),
        T.StructField("rating", T.DoubleType()),
    ]
)
PROBE_SCHEMA = T.StructType([T.StructField("i", T.IntegerType()), T.StructField("features", VectorUDT())])


def pair_rows(seed: int = 5) -> list[tuple]:
    """(user, movie, features, rating): the rating follows the first two features, plus noise."""
    rng = random.Random(seed)
    rows = []
    for user in range(1, 25):
        for movie in range(1, 11):
            x = [rng.random() for _ in range(N_FEATURES)]
            rating = min(5.0, max(0.5, round(2 * (0.5 + 3 * x[0] + 1.5 * x[1] + rng.gauss(0, 0.3))) / 2))
            rows.append((user, movie, Vectors.dense(x), rating))
    return rows


def trees(model) -> str:
    """The forest's trees as text, without the first line (it names the model's random uid)."""
    return model.toDebugString.split("\n", 1)[1]


def predictions(model, spark) -> list[float]:
    probe = spark.createDataFrame(
        [(i, Vectors.dense([(i * 7 % 11) / 10] * N_FEATURES)) for i in range(12)], PROBE_SCHEMA
    )
    return [row[CB_RAW] for row in cb_scores(model, probe).orderBy("i").collect()]


@pytest.fixture(scope="module")
def small(settings):
    return settings.replace(rf_trees=6, rf_depth=4, seed=11)


def test_the_estimator_takes_its_settings(spark, small):
    rf = rf_estimator(small)
    assert (rf.getNumTrees(), rf.getMaxDepth(), rf.getSeed()) == (6, 4, 11)
    assert (rf.getFeaturesCol(), rf.getLabelCol(), rf.getPredictionCol()) == ("features", "rating", "cb_raw")


def test_the_same_seed_grows_the_same_forest_whatever_the_row_order(spark, small):
    rows = pair_rows()
    as_written = spark.createDataFrame(rows, PAIRS_SCHEMA).coalesce(1)
    # the same rows reversed and spread over other partitions, as a shuffle may deliver them
    shuffled = spark.createDataFrame(list(reversed(rows)), PAIRS_SCHEMA).repartition(5)
    first, second = fit_rf(as_written, small), fit_rf(shuffled, small)
    assert trees(first) == trees(second)
    assert predictions(first, spark) == predictions(second, spark)

    other_seed = fit_rf(as_written, small.replace(seed=12))
    assert trees(other_seed) != trees(first)


def test_a_constant_rating_is_predicted_exactly(spark, small):
    rows = [(u, m, x, 3.5) for u, m, x, _ in pair_rows(seed=6)]
    model = fit_rf(spark.createDataFrame(rows, PAIRS_SCHEMA), small)
    assert set(predictions(model, spark)) == {3.5}


def test_predictions_stay_within_the_ratings_seen(spark, small):
    rows = pair_rows()
    model = fit_rf(spark.createDataFrame(rows, PAIRS_SCHEMA), small)
    low, high = min(r[3] for r in rows), max(r[3] for r in rows)
    assert all(low <= p <= high for p in predictions(model, spark))
    # the rating rises with the first feature, and the forest learnt that
    assert model.featureImportances.toArray().argmax() == 0


def test_the_forest_reads_the_declared_pair_features(spark, small):
    movies = spark.createDataFrame(
        [(1, "A (1990)", ["Drama"]), (2, "B (2000)", ["Comedy", "Drama"]), (3, "C", ["Action"])],
        "movie_id int, title string, genres array<string>",
    )
    rated = [(u, m, r) for u in range(1, 9) for m, r in ((1, 1.0 + u % 4), (2, 5.0 - u % 3), (3, 3.0))]
    ratings = spark.createDataFrame(rated, "user_id int, movie_id int, rating double")
    tags = spark.createDataFrame([(1, 2, "funny", 1)], "user_id int, movie_id int, tag string, timestamp long")
    _, movie_feats, _ = FE.build_features(movies, ratings, tags, 8, 8)
    profiles = FE.user_profiles(ratings, movie_feats)
    pairs = FE.pair_features(ratings, movie_feats, profiles).localCheckpoint()

    rows = pairs.collect()
    assert len(rows) == 24
    for row in rows:
        vector = row[FE.FEATURES].toArray()
        assert len(vector) == N_FEATURES
        assert list(vector) == [row[name] for name in FE.PAIR_FEATURES]
    # two entries checked by hand: user 1 rated 2.0, 4.0, 3.0 (mean 3.0); movie 2 has two genres
    user1_movie2 = next(r for r in rows if (r["user_id"], r["movie_id"]) == (1, 2))
    assert user1_movie2["f_user_mean"] == pytest.approx(3.0) and user1_movie2["f_genre_count"] == 2.0

    model = fit_rf(pairs, small)
    assert model.numFeatures == N_FEATURES  # no movie or user id went in
    assert CB_RAW in cb_scores(model, pairs).columns


def test_forest_arrays_predict_what_spark_predicts_bit_for_bit(spark, small):
    """ForestArrays (the live path's batch predict on the driver) against the model's transform,
    on rows with missing (NaN) features and rows exactly on split thresholds."""
    import math

    import numpy as np

    from movierec.models.forest import ForestArrays

    rows = pair_rows()
    model = fit_rf(spark.createDataFrame(rows, PAIRS_SCHEMA), small.replace(rf_depth=6))
    arrays = ForestArrays.from_model(model)
    assert len(arrays.roots) == 6 and (arrays.feature >= 0).sum() > 6
    rng = random.Random(3)
    inner = np.flatnonzero(arrays.feature >= 0)
    probes = []
    for i in range(200):
        x = [rng.random() for _ in range(N_FEATURES)]
        if i % 4 == 0:  # some values exactly on a split's threshold
            node = int(inner[i % len(inner)])
            x[int(arrays.feature[node])] = float(arrays.threshold[node])
        if i % 5 == 0:
            x[rng.randrange(N_FEATURES)] = math.nan
        probes.append((i, Vectors.dense(x)))
    frame = spark.createDataFrame(probes, PROBE_SCHEMA)
    expected = [row[CB_RAW] for row in cb_scores(model, frame).orderBy("i").collect()]
    got = arrays.predict(np.array([p[1].toArray() for p in probes]))
    assert got.tolist() == expected  # the same doubles, not merely close
    assert len(set(expected)) > 10


# ---------------------------------------------------------------- the forest's training sample

RATED = "user_id int, movie_id int, rating double"


def rated_pairs(spark, users: int = 100, movies: int = 50):
    return spark.createDataFrame(
        [(u, m, float(1 + (u * m) % 5)) for u in range(1, users + 1) for m in range(1, movies + 1)], RATED
    )


def kept(frame) -> set[tuple[int, int]]:
    return {(r["user_id"], r["movie_id"]) for r in frame.collect()}


def test_every_pair_is_kept_up_to_the_limit(spark):
    ratings = rated_pairs(spark, 10, 10)
    sampled, sample = training_sample(ratings, 100, seed=3)
    assert kept(sampled) == kept(ratings)
    assert (sample.rated_pairs, sample.sample_fraction, sample.max_pairs, sample.seed) == (100, 1.0, 100, 3)


def test_above_the_limit_a_seeded_sample_of_about_that_many_pairs(spark):
    ratings = rated_pairs(spark)  # 5,000 pairs
    sampled, sample = training_sample(ratings, 1_000, seed=3)
    first = kept(sampled)
    assert (sample.rated_pairs, sample.sample_fraction) == (5_000, 0.2)
    assert 880 <= len(first) <= 1_120  # binomial(5000, 0.2): sd 28, so ±4 sd
    assert first <= kept(ratings)

    # the same pairs whatever the rows' order and partitions, other pairs for another seed
    shuffled = spark.createDataFrame(list(reversed(ratings.collect())), RATED).repartition(7)
    assert kept(training_sample(shuffled, 1_000, seed=3)[0]) == first
    other = kept(training_sample(ratings, 1_000, seed=4)[0])
    assert 880 <= len(other) <= 1_120 and len(other & first) < 0.4 * len(first)  # about 0.2 of them by chance

    # every user keeps about the same share: no user is dropped or kept whole
    per_user = [sum(1 for u, _ in first if u == user) for user in range(1, 101)]
    assert max(per_user) < 25 and sum(1 for n in per_user if n == 0) <= 1  # binomial(50, 0.2): mean 10


def test_only_the_sampled_pairs_get_features_and_profiles_read_every_rating(spark, settings):
    movies = spark.createDataFrame(
        [(m, f"Movie {m}", ["Drama" if m % 2 else "Comedy"]) for m in range(1, 51)],
        "movie_id int, title string, genres array<string>",
    )
    ratings = rated_pairs(spark, 40, 50).withColumn("timestamp", F.lit(1).cast("long"))
    tags = spark.createDataFrame([], "user_id int, movie_id int, tag string, timestamp long")
    _, movie_feats, _ = FE.build_features(movies, ratings, tags, 8, 8)
    profiles = FE.user_profiles(ratings, movie_feats)
    pairs, sample = training_pairs(ratings, movie_feats, profiles, settings.replace(rf_max_pairs=500, seed=9))
    assert kept(pairs.select("user_id", "movie_id")) == kept(training_sample(ratings, 500, 9)[0])
    assert sample.sample_fraction == 0.25 and pairs.count() < 2_000
    # the pairs carry the users' whole history (every user rated 50 movies), not the sample's
    assert "f_user_log_n" in FE.PAIR_FEATURES
    assert [r[0] for r in pairs.select("f_user_log_n").distinct().collect()] == [pytest.approx(math.log1p(50))]
