"""Stage `train_als`: ALS on implicit feedback over the run's ratings, saved with Spark's model writer.

spark-submit jobs/train_als.py --run-id ID [--als-rank 32 --als-reg 0.1 --als-alpha 5 --als-iterations 15]
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from movierec.config import Settings
from movierec.models.als import fit_als
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_table, write_json
from movierec.stages.runner import stage_main


def train_als(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    model = fit_als(read_table(spark, paths.ratings), settings)
    model.write().overwrite().save(paths.als_model)
    report = {
        "rank": settings.als_rank,
        "reg": settings.als_reg,
        "alpha": settings.als_alpha,
        "iterations": settings.als_iterations,
        "users": model.userFactors.count(),
        "movies": model.itemFactors.count(),
    }
    write_json(spark, paths.als_report, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_als", train_als, argv)
