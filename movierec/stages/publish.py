"""Stage `publish`: the whole run into the store, then one transaction makes it the active run.

    spark-submit jobs/publish.py --run-id ID [--db-url URL] [--skip-quality-gate]

A run that fails the quality gate is marked rejected and the active run keeps serving.
A retry after a successful publish finds the run active and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from movierec.config import Settings, run_params
from movierec.data.schemas import CB_SCORE, CF_SCORE, GENRES, MOVIE, RANK, SCORE, SIMILAR_MOVIE, TITLE, USER, YEAR
from movierec.evaluation.quality import quality_gate
from movierec.spark.package import code_fingerprint
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import exists, read_json, read_table, write_json
from movierec.stages.runner import stage_main
from movierec.store import runs as store

log = logging.getLogger(__name__)

BATCH_ROWS = 20_000


class RunRejected(RuntimeError):
    """The quality gate refused the run; the active run keeps serving."""


def batches(df: DataFrame, columns: list[str], size: int = BATCH_ROWS) -> Iterator[list[tuple]]:
    """Stream a DataFrame to the driver as lists of tuples, one partition at a time."""
    batch: list[tuple] = []
    for row in df.select(*columns).toLocalIterator(prefetchPartitions=True):
        batch.append(tuple(row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def feedback_read(spark: SparkSession, paths: RunPaths) -> dict | None:
    """The note ingest kept of the store's feedback it read ({received_until, rows}), or None."""
    if not exists(spark, paths.ingest_report):
        return None
    return (read_json(spark, paths.ingest_report).get("inputs") or {}).get("feedback")


def run_tables(spark: SparkSession, paths: RunPaths) -> dict[str, Iterator[list[tuple]]]:
    ratings = read_table(spark, paths.ratings)
    read = feedback_read(spark, paths)
    return {
        # the cut-off goes live with the run's rows: from the switch on, the API applies only later feedback
        "run_feedback": iter([[(read["received_until"], read["rows"])]] if read else []),
        "recommendations": batches(
            read_table(spark, paths.recommendations), [USER, RANK, MOVIE, SCORE, CF_SCORE, CB_SCORE]
        ),
        "run_users": batches(ratings.groupBy(USER).agg(F.count("*").cast("int").alias("n")), [USER, "n"]),
        "popular_movies": batches(read_table(spark, paths.popular), [RANK, MOVIE, SCORE]),
        "similar_movies": batches(read_table(spark, paths.similar), [MOVIE, RANK, SIMILAR_MOVIE, SCORE]),
    }


def catalogue(spark: SparkSession, paths: RunPaths) -> Iterator[list[tuple]]:
    movies = read_table(spark, paths.movie_features).select(MOVIE, TITLE, YEAR, F.array_join(GENRES, "|").alias(GENRES))
    return batches(movies, [MOVIE, TITLE, YEAR, GENRES])


def run_metrics(spark: SparkSession, paths: RunPaths) -> dict | None:
    return read_json(spark, paths.metrics) if exists(spark, paths.metrics) else None


def provenance(spark: SparkSession, paths: RunPaths) -> dict:
    """What, besides its settings, a run needs to be made again: the code and the input files."""
    inputs = read_json(spark, paths.ingest_report).get("inputs") if exists(spark, paths.ingest_report) else None
    return {"code_version": code_fingerprint(), "inputs": inputs}


def publish(spark: SparkSession, settings: Settings, paths: RunPaths) -> dict:
    engine = store.engine_for(settings.db_url)
    run_id = paths.run_id
    with engine.connect() as conn:
        active_id = store.active_run_id(conn)
        active = store.get_run(conn, active_id) if active_id else None
    if active_id == run_id:
        log.info("publish: run %s is already the active run; nothing to do", run_id)
        return {"status": "already active"}

    metrics = run_metrics(spark, paths)
    decision = quality_gate(metrics, active["metrics"] if active else None, settings.quality_tolerance)
    log.info("publish: quality gate %s: %s", "accepts" if decision.accept else "refuses", decision.reason)
    started = store.utc_now()
    # the run's model settings, warehouse, code and input files, no credentials: a deployment
    # setting says nothing of the run
    store.begin_run(engine, run_id, {**run_params(settings), **provenance(spark, paths)}, started)
    if not decision.accept and not settings.skip_quality_gate:
        store.reject_run(engine, run_id, decision.reason, metrics)
        write_json(spark, paths.publish_report, {"status": "rejected", "reason": decision.reason})
        serving = f"run {active_id} keeps serving" if active_id else "no run was serving and none serves now"
        raise RunRejected(
            f"run {run_id} rejected: {decision.reason}; {serving} (--skip-quality-gate publishes it anyway)"
        )
    if not decision.accept:
        log.warning("publish: quality gate overridden (skip_quality_gate): %s", decision.reason)
    try:
        movies = list(catalogue(spark, paths))  # read before the switch, which then holds its lock briefly
        counts = store.load_run(engine, run_id, run_tables(spark, paths))
        removed = store.activate_run(engine, run_id, metrics or {}, store.utc_now(), settings.keep_runs, movies=movies)
    except Exception as err:
        store.fail_run(engine, run_id, f"publish failed: {err}")
        raise
    report = {
        "status": "published",
        "rows": counts,
        "previous_run": active_id,
        "removed_runs": removed,
        "gate": decision.reason,
        "gate_overridden": not decision.accept,
    }
    write_json(spark, paths.publish_report, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return stage_main("publish", publish, argv)
