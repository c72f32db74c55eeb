"""Reading and writing a run's files in the warehouse (any Hadoop URI, through Spark)."""
from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


class EmptyResult(RuntimeError):
    """A stage produced no rows where rows are required: nothing is written."""


def write_table(df, path: str, *, require_rows: bool = True, partitions: int | None = None) -> None:
    """Overwrite `path` with `df` as Parquet, so a retried stage leaves no duplicates.

    With `require_rows`, an empty result raises EmptyResult and leaves no table behind
    (checked on what was written, so `df` is computed once).
    """
    if partitions:
        df = df.coalesce(partitions)
    df.write.mode("overwrite").parquet(path)
    if require_rows and df.sparkSession.read.parquet(path).limit(1).count() == 0:
        delete(df.sparkSession, path)
        raise EmptyResult(f"refusing to write an empty table to {path}")


def read_table(spark, path: str):
    return spark.read.parquet(path)


def write_json(spark, path: str, obj: Any) -> None:
    """A small JSON document (a stage report) as a one-line text file under `path`."""
    text = json.dumps(obj, sort_keys=True, default=str)
    spark.createDataFrame([(text,)], "value string").coalesce(1).write.mode("overwrite").text(path)


def read_json(spark, path: str) -> Any:
    rows = spark.read.text(path).collect()
    if not rows:
        raise FileNotFoundError(f"no JSON document at {path}")
    return json.loads(rows[0].value)


def _hadoop(spark, path: str):
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def exists(spark, path: str) -> bool:
    fs, hadoop_path = _hadoop(spark, path)
    return fs.exists(hadoop_path)


def delete(spark, path: str) -> None:
    fs, hadoop_path = _hadoop(spark, path)
    fs.delete(hadoop_path, True)
