"""Stage `evaluate`: refit the pipeline on each user's earlier ratings, measure on their latest 20%.

spark-submit jobs/evaluate.py --run-id ID
movierec evaluate [--data-dir DIR]          (ingest + evaluate, prints the metrics table: movierec/cli/batch.py)
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from movierec.config import Settings
from movierec.evaluation.metrics import metrics_table
from movierec.evaluation.protocol import TABLE_SCHEMAS, evaluate_run
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_table, write_json, write_table
from movierec.stages.runner import stage_main


def evaluate(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    """Writes the models' top-50 lists (`evaluate/details`), the report's tables
    (`evaluate/tables/<name>`, movierec.evaluation.protocol.TABLE_SCHEMAS) and, last, the metrics:
    a run with metrics has all of its evaluation written."""
    movies, ratings, tags = (read_table(spark, p) for p in (paths.movies, paths.ratings, paths.tags))
    result = evaluate_run(movies, ratings, tags, settings)
    write_table(result.lists, paths.evaluation_details)
    for name, schema in TABLE_SCHEMAS.items():  # dict rows: Spark matches them to the schema by name
        write_table(spark.createDataFrame(result.tables[name], schema), paths.evaluation_table(name), partitions=1)
    write_json(spark, paths.metrics, result.metrics)
    print(metrics_table(result.metrics["models"]), flush=True)
    return result.metrics


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", evaluate, argv)
