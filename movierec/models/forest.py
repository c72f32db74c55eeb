"""Content-based filtering: a random forest that predicts a user's rating of a movie from
the pair's content features (user taste × movie content; see movierec.features).  No movie id
goes in, so it can score movies nobody has rated yet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml.regression import RandomForestRegressionModel, RandomForestRegressor
from pyspark.sql import DataFrame

from movierec.config import Settings
from movierec.data.schemas import MOVIE, RATING, USER
from movierec.data.split import capped_sample
from movierec.features import FEATURES, pair_features

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


@dataclass(frozen=True)
class TrainingSample:
    """Which rated pairs the forest learns from: of the `rated_pairs`, each kept with chance
    `sample_fraction` (1.0: every pair), drawn with `seed` because there were more than `max_pairs`."""

    rated_pairs: int
    sample_fraction: float
    max_pairs: int
    seed: int


def training_sample(ratings: DataFrame, max_pairs: int, seed: int) -> tuple[DataFrame, TrainingSample]:
    """(the rated pairs the forest is fitted on, how they were chosen).

    Every pair when there are at most `max_pairs`; otherwise each pair is kept with chance
    max_pairs / rated by a seeded hash of (user, movie) (`split.capped_sample`): about `max_pairs` pairs,
    the same ones for the same seed whatever the partitions or row order, and every user's
    pairs in the same share on average.  A depth-8 forest needs far fewer rows than a large
    data set has (measured: README, "Scale")."""
    sampled, rated, fraction = capped_sample(ratings, [USER, MOVIE], max_pairs, seed)
    return sampled, TrainingSample(rated, fraction, max_pairs, seed)


def training_pairs(
    ratings: DataFrame, movie_feats: DataFrame, profiles: DataFrame, settings: Settings
) -> tuple[DataFrame, TrainingSample]:
    """(pair features of the rated pairs the forest learns from, the sample they are): only the
    sampled pairs are joined to their features; the profiles are the users' whole history."""
    sampled, sample = training_sample(ratings, settings.rf_max_pairs, settings.seed)
    return pair_features(sampled, movie_feats, profiles), sample


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


class ForestArrays:
    """A fitted forest as flat numpy arrays, to predict many rows on the driver at once.

    The live path scores a user's few hundred candidates per request, and the model's own
    `predict` is one py4j round trip per row (most of a deep live page's 0.3-0.6 s).  The trees
    are read once from the JVM; prediction then walks them as Spark does: at an internal node a
    row goes left when its feature value <= the split's threshold (a NaN goes right, as Spark's
    comparison is false for it), and the forest's value is the trees' predictions summed in tree
    order, divided by their number: the same doubles as RandomForestRegressionModel.predict
    (tests/movierec/models/test_forest.py compares them bit for bit)."""

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
    ):
        # one row per node of every tree; leaves have feature -1
        self.feature, self.threshold, self.left, self.right, self.value, self.roots = (
            feature,
            threshold,
            left,
            right,
            value,
            roots,
        )
        # the walk's arrays: a leaf points at itself whichever way a row goes (threshold +inf
        # sends it left, a NaN right), so `depth` steps take every row to its leaf
        leaf = feature < 0
        nodes = np.arange(len(feature))
        self._feature = np.where(leaf, 0, feature)
        self._threshold = np.where(leaf, np.inf, threshold)
        self._left = np.where(leaf, nodes, left)
        self._right = np.where(leaf, nodes, right)
        self.depth = _depth(feature, left, right, roots)

    @classmethod
    def from_model(cls, model: RandomForestRegressionModel) -> ForestArrays:
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        value: list[float] = []
        roots: list[int] = []

        def add(node) -> int:
            index = len(feature)
            feature.append(-1)
            threshold.append(0.0)
            left.append(-1)
            right.append(-1)
            value.append(float(node.prediction()))
            if node.getClass().getSimpleName() == "InternalNode":
                split = node.split()
                if split.getClass().getSimpleName() != "ContinuousSplit":
                    raise ValueError("only continuous splits are supported (the pair features are all numeric)")
                feature[index] = int(split.featureIndex())
                threshold[index] = float(split.threshold())
                left[index] = add(node.leftChild())
                right[index] = add(node.rightChild())
            return index

        for tree in model.trees:
            roots.append(add(tree._java_obj.rootNode()))  # type: ignore[union-attr]
        return cls(
            np.array(feature, dtype=np.int64),
            np.array(threshold, dtype=np.float64),
            np.array(left, dtype=np.int64),
            np.array(right, dtype=np.int64),
            np.array(value, dtype=np.float64),
            np.array(roots, dtype=np.int64),
        )

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The forest's prediction of each row of `rows` (n × features, float64, NaN for missing).

        Every tree walks all rows at once, one level per step (a leaf points at itself, so rows
        that reached theirs stay): `depth` steps of a few array operations, not one per tree and level."""
        rows = np.asarray(rows, dtype=np.float64)
        if not len(rows):
            return np.zeros(0)
        at = np.arange(len(rows))[None, :]
        node = np.repeat(self.roots[:, None], len(rows), axis=1)  # trees × rows
        for _ in range(self.depth):
            go_left = rows[at, self._feature[node]] <= self._threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        total = np.zeros(len(rows))
        for tree_values in self.value[node]:  # summed in tree order: the same doubles as Spark's
            total = total + tree_values
        return total / len(self.roots)


def _depth(feature: np.ndarray, left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """The most internal nodes on any root-to-leaf path of the forest."""
    deepest, level = 0, [int(r) for r in roots]
    while level:
        inner = [n for n in level if feature[n] >= 0]
        if not inner:
            break
        deepest += 1
        level = [int(c) for n in inner for c in (left[n], right[n])]
    return deepest
