"""Stage `ingest`: MovieLens CSVs and the store's feedback → validated Parquet, bad rows set
aside with their reason.

The ratings posted to the API (the store's `feedback` table, movierec.store.feedback) up to a
cut-off join ratings.csv's lines before the checks, so both pass the same rules, and of two
ratings of a pair the latest wins.

spark-submit jobs/ingest.py --run-id ID [--data-dir DIR] [--max-bad-share 0.01]
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from movierec.config import Settings
from movierec.data import movielens
from movierec.data import schemas as S
from movierec.data import validation as V
from movierec.data.validation import DataQualityError
from movierec.spark.paths import RunPaths, local_path
from movierec.spark.warehouse import write_json, write_table
from movierec.stages.runner import stage_main
from movierec.store import feedback as store_feedback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CsvFile:
    """What ingest learns of a CSV file before Spark parses it: its header, and whether its last line ended."""

    name: str  # ratings.csv, movies.csv, tags.csv: what messages and the rejects call it
    path: str
    header: tuple[str, ...]  # column names as the file has them, byte-order mark and line end removed
    ends_with_line_end: bool


def inspect_csv(spark: SparkSession, path: str, schema: T.StructType) -> CsvFile:
    """Read a CSV file's header and last byte (through Hadoop, so any URI works) and refuse what cannot be read
    safely: an empty file, a header without one of the schema's columns, a column named twice.  Columns beyond
    the schema's are allowed (they are read by name and ignored)."""
    name = PurePosixPath(path).name
    jvm: Any = spark.sparkContext._jvm  # py4j: untyped
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    size = fs.getFileStatus(hadoop_path).getLen()
    if size == 0:
        fix = "remove it if the data set has no tags" if name == "tags.csv" else "run `movierec download --force`"
        raise DataQualityError(f"{name} ({path}) is empty (0 bytes): it was cut off in a download or copy; {fix}")
    stream = fs.open(hadoop_path)
    try:
        stream.seek(size - 1)
        ends_with_line_end = stream.read() in (0x0A, 0x0D)
        stream.seek(0)
        first_line = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8")).readLine() or ""
    finally:
        stream.close()
    header = tuple(column.strip() for column in next(csv.reader([first_line.removeprefix("\ufeff")]), []))
    shown = ",".join(header)[:200]
    twice = sorted({column for column in header if header.count(column) > 1})
    if twice:
        raise DataQualityError(f"{name} ({path}) names column {', '.join(twice)} twice: its header is {shown}")
    missing = [f.name for f in schema.fields if f.name not in header]
    if missing:
        expected = ",".join(f.name for f in schema.fields)
        raise DataQualityError(
            f"{name} ({path}) has no column {', '.join(missing)} (MovieLens's are {expected}): its header is {shown}"
        )
    return CsvFile(name, path, header, ends_with_line_end)


def read_csv(spark: SparkSession, file: CsvFile, schema: T.StructType) -> DataFrame:
    """A MovieLens CSV as text columns raw_<name>, read by the names in its header (other columns ignored);
    malformed lines kept in _corrupt_record, line order in _line, and _truncated true on the last line of a
    file that does not end with a line end."""
    wanted = {f.name for f in schema.fields}
    as_text = T.StructType([T.StructField(f"_column{i}", T.StringType()) for i in range(len(file.header))])
    raw = spark.read.csv(
        file.path,
        schema=T.StructType(as_text.fields + [T.StructField(V.CORRUPT, T.StringType())]),
        header=True,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=V.CORRUPT,
        escape='"',
        multiLine=False,
    )
    named = raw.toDF(
        *[f"raw_{name}" if name in wanted else f"_ignored{i}" for i, name in enumerate(file.header)], V.CORRUPT
    )
    named = named.select(*[f"raw_{f.name}" for f in schema.fields], V.CORRUPT).withColumn(
        "_line", F.monotonically_increasing_id()
    )
    if file.ends_with_line_end:
        return named.withColumn(V.TRUNCATED, F.lit(False))
    last = named.agg(F.max("_line")).first()  # a file is read in order: its last line has the largest
    last_line = last[0] if last is not None else None
    return named.withColumn(V.TRUNCATED, F.col("_line") == F.lit(last_line))


def ignored_columns(file: CsvFile, schema: T.StructType) -> dict[str, str]:
    """The report's note of a file's columns that ingest does not read (none: no note)."""
    extra = [column for column in file.header if column not in {f.name for f in schema.fields}]
    if extra:
        log.warning("ingest %s: columns %s are not read", file.name, ", ".join(extra))
        return {"ignored_columns": ",".join(extra)}
    return {}


def data_file(data_dir: str, name: str) -> str:
    local = local_path(data_dir)
    return str(PurePosixPath(data_dir) / name) if local is None else str(local.resolve() / name)


class MissingInput(V.DataQualityError, FileNotFoundError):
    """The data directory lacks a required file: the data cannot be used (one line, exit 1)."""


def require_inputs(data_dir: str) -> None:
    local = local_path(data_dir) if "://" not in data_dir else None
    if local is None:
        return
    missing = [name for name in ("ratings.csv", "movies.csv") if not (local / name).is_file()]
    if missing:
        raise MissingInput(
            f"{data_dir} has no {' or '.join(missing)}: point MOVIEREC_DATA_DIR (--data-dir) at a MovieLens "
            f"directory, or run `movierec download`"
        )


# `_line` of the store's feedback rows: after every line of ratings.csv, so that of two ratings
# of a pair with the same timestamp the one posted to the API wins (V.dedupe_ratings)
FEEDBACK_LINES = 1 << 62
FEEDBACK_SOURCE = "feedback"  # what the rejects call the rows read from the store's feedback


def feedback_rows(spark: SparkSession, rows: list[tuple[int, int, float, int]]) -> DataFrame:
    """Feedback rows (user, movie, rating, timestamp) as `read_csv` gives ratings.csv's lines:
    text columns, so the same checks (V.check_ratings) judge them."""
    raw_columns = [f"raw_{f.name}" for f in S.RATINGS_CSV.fields]
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in raw_columns]
        + [
            T.StructField(V.CORRUPT, T.StringType()),
            T.StructField("_line", T.LongType()),
            T.StructField(V.TRUNCATED, T.BooleanType()),
        ]
    )
    as_text = [
        (str(user), str(movie), repr(float(rating)), str(timestamp), None, FEEDBACK_LINES + i, False)
        for i, (user, movie, rating, timestamp) in enumerate(rows)
    ]
    return spark.createDataFrame(as_text, schema)


def read_feedback(spark: SparkSession, settings: Settings) -> tuple[DataFrame | None, dict[str, Any] | None]:
    """The store's feedback received up to the cut-off, as ratings lines, and the note the run
    keeps of it ({received_until, rows}); (None, None) with learn_from_feedback off."""
    if not settings.learn_from_feedback:
        return None, None
    until = store_feedback.cutoff()
    rows = [row for batch in store_feedback.read_until(settings.db_url, until) for row in batch]
    log.info("ingest feedback: %d ratings posted to the store up to %s", len(rows), until)
    return (feedback_rows(spark, rows) if rows else None), {"received_until": until, "rows": len(rows)}


def _rejects(checked: DataFrame, source: str | Column, raw_columns: list[str]) -> DataFrame:
    raw = F.concat_ws(",", *[F.coalesce(F.col(c), F.lit("")) for c in raw_columns])
    return checked.where(F.col(S.REASON).isNotNull()).select(
        (F.lit(source) if isinstance(source, str) else source).alias("source"),
        S.REASON,
        F.coalesce(F.col(V.CORRUPT), raw).alias("raw"),
    )


def ingest(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    require_inputs(settings.data_dir)
    level = StorageLevel.MEMORY_AND_DISK

    files = {"movies": inspect_csv(spark, data_file(settings.data_dir, "movies.csv"), S.MOVIES_CSV)}
    files["ratings"] = inspect_csv(spark, data_file(settings.data_dir, "ratings.csv"), S.RATINGS_CSV)
    tags_path = data_file(settings.data_dir, "tags.csv")
    local_tags = local_path(tags_path)
    has_tags = local_tags is None or local_tags.is_file()
    if has_tags:
        files["tags"] = inspect_csv(spark, tags_path, S.TAGS_CSV)

    movies = V.check_movies(read_csv(spark, files["movies"], S.MOVIES_CSV))
    movies = V.mark_duplicates(movies, [S.MOVIE], [F.col("_line")]).persist(level)
    good_movies = movies.where(F.col(S.REASON).isNull()).select(S.MOVIE, S.TITLE, S.GENRES)

    raw_ratings = read_csv(spark, files["ratings"], S.RATINGS_CSV)
    posted, feedback_note = read_feedback(spark, settings)
    if posted is not None:
        raw_ratings = raw_ratings.unionByName(posted)
    ratings = V.check_ratings(raw_ratings)
    ratings = V.dedupe_ratings(V.mark_unknown_movies(ratings, good_movies)).persist(level)

    # the files' sizes and digests and the feedback's cut-off, which publish records with the run
    # (runs.params.inputs; the cut-off also in run_feedback)
    inputs = movielens.fingerprint(settings.data_dir)
    if feedback_note is not None:
        inputs = {**(inputs or {}), "feedback": feedback_note}
    report: dict[str, Any] = {"data_dir": settings.data_dir, "inputs": inputs}
    for name, checked in (("movies", movies), ("ratings", ratings)):
        total, reasons = V.row_counts(checked)
        report[name] = {"rows": total, "rejected": reasons, "bad_share": round(V.bad_share(total, reasons), 6)}
        report[name].update(ignored_columns(files[name], S.MOVIES_CSV if name == "movies" else S.RATINGS_CSV))
        log.info("ingest %s: %d rows, rejected %s", name, total, reasons or "none")

    if has_tags:
        tags = V.check_tags(read_csv(spark, files["tags"], S.TAGS_CSV))
        tags = V.mark_duplicates(V.mark_unknown_movies(tags, good_movies), [S.USER, S.MOVIE, S.TAG], [F.col("_line")])
        tags = tags.persist(level)
        total, reasons = V.row_counts(tags)
        report["tags"] = {"rows": total, "rejected": reasons, "bad_share": round(V.bad_share(total, reasons), 6)}
        report["tags"].update(ignored_columns(files["tags"], S.TAGS_CSV))
        good_tags = tags.where(F.col(S.REASON).isNull()).select(S.USER, S.MOVIE, S.TAG, S.TIMESTAMP)
    else:
        report["tags"] = {"rows": 0, "rejected": {}, "bad_share": 0.0}
        good_tags = spark.createDataFrame([], S.TAGS)

    rejects = _rejects(movies, "movies.csv", ["raw_movieId", "raw_title", "raw_genres"]).unionByName(
        _rejects(
            ratings,
            F.when(F.col("_line") >= FEEDBACK_LINES, F.lit(FEEDBACK_SOURCE)).otherwise(F.lit("ratings.csv")),
            ["raw_userId", "raw_movieId", "raw_rating", "raw_timestamp"],
        )
    )
    if has_tags:
        rejects = rejects.unionByName(
            _rejects(tags, "tags.csv", ["raw_userId", "raw_movieId", "raw_tag", "raw_timestamp"])
        )
    write_table(rejects, paths.rejects, require_rows=False, partitions=1)
    write_json(spark, paths.ingest_report, report)

    V.enforce_threshold("movies.csv", report["movies"]["rows"], report["movies"]["rejected"], settings.max_bad_share)
    V.enforce_threshold("ratings.csv", report["ratings"]["rows"], report["ratings"]["rejected"], settings.max_bad_share)

    write_table(good_movies, paths.movies)
    write_table(ratings.where(F.col(S.REASON).isNull()).select(S.USER, S.MOVIE, S.RATING, S.TIMESTAMP), paths.ratings)
    write_table(good_tags, paths.tags, require_rows=False)
    for df in (movies, ratings):
        df.unpersist()
    return report


def main(argv: list[str] | None = None) -> int:
    return stage_main("ingest", ingest, argv)
