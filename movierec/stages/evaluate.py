"""Stage `evaluate`: refit the pipeline on each user's earlier ratings, measure on their latest 20%.

    spark-submit jobs/evaluate.py --run-id ID
    movierec evaluate [--data-dir DIR]          (ingest + evaluate, prints the metrics table: movierec/cli/batch.py)
"""
from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from movierec.config import Settings
from movierec.evaluation.protocol import evaluate as evaluate_models
from movierec.evaluation.metrics import metrics_table
from movierec.spark.paths import RunPaths
from movierec.stages.runner import stage_main
from movierec.spark.warehouse import read_table, write_json, write_table


def evaluate(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    movies, ratings, tags = (read_table(spark, p) for p in (paths.movies, paths.ratings, paths.tags))
    metrics, lists = evaluate_models(movies, ratings, tags, settings)
    write_table(lists, paths.evaluation_details)
    write_json(spark, paths.metrics, metrics)
    print(metrics_table(metrics["models"]), flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", evaluate, argv)
