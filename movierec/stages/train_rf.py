"""Stage `train_rf`: the content model, a random forest predicting ratings from pair content features.

spark-submit jobs/train_rf.py --run-id ID [--rf-trees 40 --rf-depth 8]
"""

from __future__ import annotations

import dataclasses

from pyspark.sql import SparkSession

from movierec.config import Settings
from movierec.features import PAIR_FEATURES
from movierec.models.forest import fit_rf, training_pairs
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_table, write_json
from movierec.stages.runner import stage_main


def train_rf(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    ratings = read_table(spark, paths.ratings)
    training, sample = training_pairs(
        ratings, read_table(spark, paths.movie_features), read_table(spark, paths.user_profiles), settings
    )
    model = fit_rf(training, settings)
    model.write().overwrite().save(paths.rf_model)
    importances = dict(zip(PAIR_FEATURES, (round(float(x), 4) for x in model.featureImportances.toArray())))
    report = {
        "trees": settings.rf_trees,
        "depth": settings.rf_depth,
        "training_sample": dataclasses.asdict(sample),
        "feature_importances": importances,
    }
    write_json(spark, paths.rf_report, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_rf", train_rf, argv)
