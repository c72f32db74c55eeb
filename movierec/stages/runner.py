"""The shape every stage entry point shares: parse args, build the session, run, report time."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable

from movierec import config
from movierec.spark.paths import RunPaths

log = logging.getLogger(__name__)

StageFn = Callable[..., dict]


def parse_stage_args(stage: str, argv: list[str] | None) -> tuple[str, config.Settings]:
    parser = argparse.ArgumentParser(prog=f"spark-submit jobs/{stage}.py", description=f"movierec stage: {stage}")
    parser.add_argument("--run-id", required=True, help="the pipeline run this stage belongs to")
    config.add_flags(parser)
    args = parser.parse_args(argv)
    return args.run_id, config.from_args(args)


def run_stage(stage: str, fn: StageFn, spark, settings: config.Settings, run_id: str) -> dict:
    """Run one stage with a progress line before and after; returns the stage's report."""
    paths = RunPaths(settings.warehouse, run_id)
    log.info("stage %s: run %s starting", stage, run_id)
    started = time.perf_counter()
    report = fn(spark, settings, paths) or {}
    report["seconds"] = round(time.perf_counter() - started, 2)
    log.info("stage %s: run %s done in %.1f s", stage, run_id, report["seconds"])
    return report


def stage_main(stage: str, fn: StageFn, argv: list[str] | None = None) -> int:
    """Entry point for `spark-submit jobs/<stage>.py --run-id ID`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from movierec.spark.session import build_session

    try:
        run_id, settings = parse_stage_args(stage, argv)
    except config.ConfigError as err:
        log.error("stage %s: %s", stage, err)
        return 2
    spark = build_session(stage, settings)
    try:
        run_stage(stage, fn, spark, settings, run_id)
    except Exception as err:  # the message is what an operator reads in the Airflow log
        log.error("stage %s failed for run %s: %s", stage, run_id, err)
        raise
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a stage file, e.g. spark-submit jobs/ingest.py --run-id ID")
