"""The shape every stage entry point shares: parse args, build the session, run, report time."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from movierec import config
from movierec.spark.paths import BadRunId, RunPaths, check_run_id

if TYPE_CHECKING:
    import click

log = logging.getLogger(__name__)

StageFn = Callable[..., dict]


def stage_command(stage: str) -> click.Command:
    """The click command of `spark-submit jobs/<stage>.py`: --run-id and every batch setting's flag
    (all stages take the same ones, so a scheduler can pass one argument list to each)."""
    import click

    @click.command(name=f"jobs/{stage}.py", help=f"movierec stage: {stage}.")
    @click.option("--run-id", required=True, help="the pipeline run this stage belongs to")
    @config.setting_options(*config.BATCH_SETTINGS)
    def command(run_id: str, settings: config.Settings) -> tuple[str, config.Settings]:
        try:
            return check_run_id(run_id), settings
        except BadRunId as err:
            raise click.BadParameter(str(err), param_hint="--run-id") from None

    return command


def parse_stage_args(stage: str, argv: list[str] | None) -> tuple[str, config.Settings]:
    """(run id, settings) from a stage's arguments.  `--flag true/false` is accepted for booleans
    beside `--flag/--no-flag`, as the DAG templates them.  Raises click.UsageError or
    config.ConfigError on bad arguments; `--help` prints the help and exits."""
    argv = config.bool_values_as_flags(sys.argv[1:] if argv is None else list(argv), config.BATCH_SETTINGS)
    result = stage_command(stage).main(args=argv, prog_name=f"spark-submit jobs/{stage}.py", standalone_mode=False)
    if not isinstance(result, tuple):  # --help
        raise SystemExit(result or 0)
    return result


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
    import click

    from movierec.spark.session import build_session

    try:
        run_id, settings = parse_stage_args(stage, argv)
    except (config.ConfigError, click.ClickException) as err:
        message = err.format_message() if isinstance(err, click.ClickException) else str(err)
        log.error("stage %s: %s (spark-submit jobs/%s.py --help lists the arguments)", stage, message, stage)
        return 2
    spark = build_session(stage, settings)
    try:
        return run_logged(stage, fn, spark, settings, run_id)
    finally:
        spark.stop()


def operator_errors() -> tuple[type[Exception], ...]:
    """Failures that are the data's, the store's or a decision's, not the code's: their message says
    what to do, and a traceback would only bury it.  (Imported here: these modules load pyspark.)"""
    from movierec.data.validation import DataQualityError
    from movierec.spark.warehouse import IncompleteOutput
    from movierec.stages.publish import RunRejected
    from movierec.store.runs import StoreError

    return DataQualityError, IncompleteOutput, RunRejected, StoreError


def run_logged(stage: str, fn: StageFn, spark, settings: config.Settings, run_id: str) -> int:
    """`run_stage` for an entry point: 0 when the stage ran.  When it stops for one of
    `operator_errors()` (input data that cannot be used: an empty file, a missing column, too
    many bad rows; an upstream output not completely written; the quality gate's refusal; a
    store that refuses the run) the stage's one-line message is logged and the exit code is 1,
    without a traceback: 38 lines of stack would bury the line an operator reads in the Airflow
    log.  Any other exception is a bug: logged, then raised with its traceback."""
    try:
        run_stage(stage, fn, spark, settings, run_id)
    except operator_errors() as err:
        log.error("stage %s failed for run %s: %s", stage, run_id, err)
        return 1
    except Exception as err:  # the message is what an operator reads in the Airflow log
        log.error("stage %s failed for run %s: %s", stage, run_id, err)
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a stage file, e.g. spark-submit jobs/ingest.py --run-id ID")
