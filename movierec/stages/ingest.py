"""Stage `ingest`: MovieLens CSVs → validated Parquet, bad rows set aside with their reason.

spark-submit jobs/ingest.py --run-id ID [--data-dir DIR] [--max-bad-share 0.01]
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from movierec.config import Settings
from movierec.data import movielens
from movierec.data import schemas as S
from movierec.data import validation as V
from movierec.spark.paths import RunPaths, local_path
from movierec.spark.warehouse import write_json, write_table
from movierec.stages.runner import stage_main

log = logging.getLogger(__name__)


def read_csv(spark: SparkSession, path: str, schema: T.StructType) -> DataFrame:
    """A MovieLens CSV as text columns raw_<name>, malformed lines kept in _corrupt_record, line order in _line."""
    with_corrupt = T.StructType(schema.fields + [T.StructField(V.CORRUPT, T.StringType())])
    raw = spark.read.csv(
        path,
        schema=with_corrupt,
        header=True,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=V.CORRUPT,
        escape='"',
        multiLine=False,
    )
    return raw.toDF(*[f"raw_{f.name}" for f in schema.fields], V.CORRUPT).withColumn(
        "_line", F.monotonically_increasing_id()
    )


def data_file(data_dir: str, name: str) -> str:
    local = local_path(data_dir)
    return str(PurePosixPath(data_dir) / name) if local is None else str(local.resolve() / name)


def require_inputs(data_dir: str) -> None:
    local = local_path(data_dir) if "://" not in data_dir else None
    if local is None:
        return
    missing = [name for name in ("ratings.csv", "movies.csv") if not (local / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{data_dir} has no {' or '.join(missing)}: point MOVIEREC_DATA_DIR (--data-dir) at a MovieLens "
            f"directory, or run `movierec download`"
        )


def _rejects(checked: DataFrame, source: str, raw_columns: list[str]) -> DataFrame:
    raw = F.concat_ws(",", *[F.coalesce(F.col(c), F.lit("")) for c in raw_columns])
    return checked.where(F.col(S.REASON).isNotNull()).select(
        F.lit(source).alias("source"), S.REASON, F.coalesce(F.col(V.CORRUPT), raw).alias("raw")
    )


def ingest(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    require_inputs(settings.data_dir)
    level = StorageLevel.MEMORY_AND_DISK

    movies = V.check_movies(read_csv(spark, data_file(settings.data_dir, "movies.csv"), S.MOVIES_CSV))
    movies = V.mark_duplicates(movies, [S.MOVIE], [F.col("_line")]).persist(level)
    good_movies = movies.where(F.col(S.REASON).isNull()).select(S.MOVIE, S.TITLE, S.GENRES)

    ratings = V.check_ratings(read_csv(spark, data_file(settings.data_dir, "ratings.csv"), S.RATINGS_CSV))
    ratings = V.dedupe_ratings(V.mark_unknown_movies(ratings, good_movies)).persist(level)

    # the files' sizes and digests, which publish records with the run (runs.params.inputs)
    report: dict[str, Any] = {"data_dir": settings.data_dir, "inputs": movielens.fingerprint(settings.data_dir)}
    for name, checked in (("movies", movies), ("ratings", ratings)):
        total, reasons = V.row_counts(checked)
        report[name] = {"rows": total, "rejected": reasons, "bad_share": round(V.bad_share(total, reasons), 6)}
        log.info("ingest %s: %d rows, rejected %s", name, total, reasons or "none")

    tags_path = data_file(settings.data_dir, "tags.csv")
    local_tags = local_path(tags_path)
    has_tags = local_tags is None or local_tags.is_file()
    if has_tags:
        tags = V.check_tags(read_csv(spark, tags_path, S.TAGS_CSV))
        tags = V.mark_duplicates(V.mark_unknown_movies(tags, good_movies), [S.USER, S.MOVIE, S.TAG], [F.col("_line")])
        tags = tags.persist(level)
        total, reasons = V.row_counts(tags)
        report["tags"] = {"rows": total, "rejected": reasons, "bad_share": round(V.bad_share(total, reasons), 6)}
        good_tags = tags.where(F.col(S.REASON).isNull()).select(S.USER, S.MOVIE, S.TAG, S.TIMESTAMP)
    else:
        report["tags"] = {"rows": 0, "rejected": {}, "bad_share": 0.0}
        good_tags = spark.createDataFrame([], S.TAGS)

    rejects = _rejects(movies, "movies.csv", ["raw_movieId", "raw_title", "raw_genres"]).unionByName(
        _rejects(ratings, "ratings.csv", ["raw_userId", "raw_movieId", "raw_rating", "raw_timestamp"])
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
