"""Reading and writing a run's files in the warehouse (any Hadoop URI, through Spark)."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


class EmptyResult(RuntimeError):
    """A stage produced no rows where rows are required: nothing is written."""


class IncompleteOutput(RuntimeError):
    """A stage output that is missing or not completely written: a later stage must not read it."""


SUCCESS = "_SUCCESS"  # what Spark's file committer writes into a folder once all of its files are in place


def require_complete(spark, path: str) -> None:
    """Refuse an output that a crash (or a running writer) left half-written.

    Spark writes a folder's `_SUCCESS` marker only after the job committed every part file, so
    every folder that holds part files (a table; each part of a saved model) must have one:
    a folder with part files and no marker is what a crash inside the commit leaves.
    """
    fs, root = _hadoop(spark, path)
    if not fs.exists(root):
        raise IncompleteOutput(f"{path} does not exist: run the stage that writes it first")
    with_parts, committed = set(), set()
    files = fs.listFiles(root, True)
    while files.hasNext():
        status = files.next()
        name, folder = status.getPath().getName(), status.getPath().getParent().toString()
        if name == SUCCESS:
            committed.add(folder)
        elif name.startswith("part-"):
            with_parts.add(folder)
    if not committed or with_parts - committed:
        folder = sorted(with_parts - committed)[0] if with_parts - committed else path
        raise IncompleteOutput(
            f"{folder} is not completely written (no {SUCCESS} marker): the stage that writes "
            f"it crashed or is still running; run that stage again for this run"
        )


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
    """A stage's Parquet output, refused unless it is completely written."""
    require_complete(spark, path)
    return spark.read.parquet(path)


def load_model(model_class, spark, path: str):
    """A saved Spark ML model (`model_class.load`), refused unless every part of it is completely written."""
    require_complete(spark, path)
    return model_class.load(path)


def write_json(spark, path: str, obj: Any) -> None:
    """A small JSON document (a stage report) as a one-line text file under `path`."""
    text = json.dumps(obj, sort_keys=True, default=str)
    spark.createDataFrame([(text,)], "value string").coalesce(1).write.mode("overwrite").text(path)


def read_json(spark, path: str) -> Any:
    require_complete(spark, path)
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
