"""Content-based filtering: a random forest that predicts a user's rating of a movie from
the pair's content features (user taste × movie content; see movierec.features).  No movie id
goes in, so it can score movies nobody has rated yet."""

from __future__ import annotations

from pyspark.ml.regression import RandomForestRegressionModel, RandomForestRegressor
from pyspark.sql import DataFrame

from movierec.config import Settings
from movierec.data.schemas import MOVIE, RATING, USER
from movierec.features import FEATURES

CB_RAW = "cb_raw"
TRAINING_PARTITIONS = 8


def rf_estimator(settings: Settings) -> RandomForestRegressor:
    return RandomForestRegressor(
        featuresCol=FEATURES,
        labelCol=RATING,
        predictionCol=CB_RAW,
        numTrees=settings.rf_trees,
        maxDepth=settings.rf_depth,
        seed=settings.seed,
        featureSubsetStrategy="onethird",
        subsamplingRate=0.8,
        minInstancesPerNode=5,
        # keep each row's current node per tree instead of walking every tree from the root
        # at each level: the same forest, 13% less time on ml-latest-small (4.95 -> 4.29 s)
        cacheNodeIds=True,
    )


def fit_rf(training_pairs: DataFrame, settings: Settings) -> RandomForestRegressionModel:
    """training_pairs: pair_features of rated pairs, with the rating as label.

    The forest's bagging and split sampling draw per partition, in row order, so the same
    seed gives the same forest only if the rows arrive in the same partitions and order;
    after the feature joins they do not (shuffles deliver blocks in any order).  The pairs
    are therefore put in a fixed layout first: hashed by user into TRAINING_PARTITIONS
    partitions (a constant, so the forest does not change with spark.sql.shuffle.partitions),
    sorted by (user, movie) within each.
    """
    if USER in training_pairs.columns and MOVIE in training_pairs.columns:
        training_pairs = training_pairs.repartition(TRAINING_PARTITIONS, USER).sortWithinPartitions(USER, MOVIE)
    return rf_estimator(settings).fit(training_pairs.select(FEATURES, RATING))


def cb_scores(model: RandomForestRegressionModel, pair_feats: DataFrame) -> DataFrame:
    """pair features + cb_raw, the predicted rating."""
    return model.transform(pair_feats)
