"""`movierec pipeline`: every stage in order, in one process and one SparkSession.

The Airflow DAG runs the same stage functions, one spark-submit each; this is the local way.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import time
from datetime import datetime, timezone

from jobs import config
from jobs.config import Settings
from jobs.stage import run_stage

log = logging.getLogger(__name__)

STAGES = ("ingest", "featurize", "train_als", "train_rf", "score", "evaluate", "publish")


def new_run_id(prefix: str = "local") -> str:
    return f"{prefix}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"


def stage_function(stage: str):
    return getattr(importlib.import_module(f"jobs.{stage}"), stage)


def run_pipeline(spark, settings: Settings, run_id: str, stages: tuple[str, ...] | list[str] = STAGES) -> dict:
    """Run the given stages for one run id on an existing session; returns each stage's report."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    reports = {}
    started = time.perf_counter()
    for number, stage in enumerate(stages, 1):
        print(f"[{number}/{len(stages)}] {stage} ...", flush=True)
        reports[stage] = run_stage(stage, stage_function(stage), spark, settings, run_id)
        print(f"[{number}/{len(stages)}] {stage} done in {reports[stage]['seconds']:.1f} s", flush=True)
    print(f"run {run_id}: {len(stages)} stages in {time.perf_counter() - started:.1f} s", flush=True)
    return reports


def run_stages(settings: Settings, run_id: str, stages=STAGES) -> dict:
    from jobs.session import build_session

    spark = build_session("pipeline", settings)
    try:
        return run_pipeline(spark, settings, run_id, stages)
    finally:
        spark.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", default=None, help="run id (default: local-<UTC time>)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated stages to run, in order (default: all: {','.join(STAGES)})")
    config.add_flags(parser)


def run_cli(args: argparse.Namespace) -> int:
    settings = config.from_args(args)
    run_id = args.run_id or new_run_id()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    reports = run_stages(settings, run_id, stages)
    if "publish" in reports:
        print(f"published run {run_id} to {settings.db_url}")
    return 0
