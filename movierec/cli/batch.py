"""`movierec pipeline`, `evaluate`, `tune`, `report`: the commands that start Spark.

Each checks what it was given (stages, run id, data directory, store) first, and imports
pyspark only after that, inside the command.
"""

from __future__ import annotations

import json

import click

from movierec import config
from movierec.cli.common import Failed, UserError, check_data_dir, check_store, checked_run_id, checked_stages
from movierec.stages.pipeline import STAGES, new_run_id


def _failures() -> tuple[type[BaseException], ...]:
    """What a batch run raises when it ran correctly and cannot go on: told in one line, exit code 1."""
    from movierec.data.validation import DataQualityError
    from movierec.stages.publish import RunRejected
    from movierec.store.runs import StoreError

    return DataQualityError, RunRejected, StoreError


@click.command(
    short_help="run every stage of one run in one Spark session, then publish",
    help="Run the stages of one run in order in one Spark session (evaluate in a second thread "
    "beside featurize → score), with a progress line and time per stage; publish last.",
)
@click.option("--run-id", help="run id (default: local-<UTC time>)")
@click.option(
    "--stages", default=",".join(STAGES), show_default=True, help="comma-separated stages to run, in this order"
)
@config.setting_options(*config.BATCH_SETTINGS)
def pipeline(run_id: str | None, stages: str, settings: config.Settings) -> int:
    chosen = checked_stages(stages, STAGES)
    run_id = checked_run_id(run_id or new_run_id())
    if "ingest" in chosen:
        check_data_dir(settings.data_dir)
    if "publish" in chosen:
        check_store(settings.db_url)
    from movierec.stages.pipeline import run_stages

    try:
        reports = run_stages(settings, run_id, chosen)
    except _failures() as err:
        raise Failed(str(err)) from None
    if "publish" in reports:
        click.echo(f"published run {run_id} to {config.redact_url(settings.db_url)}")
    return 0


@click.command(
    short_help="ingest + evaluate: the metrics table of the four models",
    help="Ingest the data directory into a fresh run and evaluate it: refit on each user's earlier "
    "ratings, measure on their latest 20%; prints the metrics table of the four models.",
)
@click.option("--run-id", help="run id (default: eval-<UTC time>)")
@config.setting_options(*config.EVALUATE_SETTINGS)
def evaluate(run_id: str | None, settings: config.Settings) -> int:
    run_id = checked_run_id(run_id or new_run_id("eval"))
    check_data_dir(settings.data_dir)
    from movierec.stages.pipeline import run_stages

    try:
        run_stages(settings, run_id, ["ingest", "evaluate"])
    except _failures() as err:
        raise Failed(str(err)) from None
    return 0


@click.command(
    short_help="choose hyper-parameters and calibration on a validation split",
    help="Choose the ALS and forest hyper-parameters, then calibrate the blend, on a validation split "
    "carved out of the training part (the test part stays unseen); prints every trial and the "
    "best settings as MOVIEREC_* lines.",
)
@click.option(
    "--max-minutes", type=float, default=30.0, show_default=True, help="start no new trial after this many minutes"
)
@click.option(
    "--min-coverage",
    type=float,
    default=None,
    help="choose only among trials whose hybrid top-10 lists cover at least this share of the catalogue "
    "(default: movierec.evaluation.tuning.MIN_COVERAGE)",
)
@click.option(
    "--space",
    metavar="JSON",
    help="the search space: [[stage, {setting: [values]}], ...] (default: tuning.DEFAULT_SPACE)",
)
@click.option("--json", "json_out", metavar="FILE", help="also write every trial as JSON to this file")
@click.option("--run-id", help="run id the data is ingested under (default: tune-<UTC time>)")
@config.setting_options(*config.EVALUATE_SETTINGS)
def tune(
    max_minutes: float,
    min_coverage: float | None,
    space: str | None,
    json_out: str | None,
    run_id: str | None,
    settings: config.Settings,
) -> int:
    run_id = checked_run_id(run_id or new_run_id("tune"))
    check_data_dir(settings.data_dir)
    from movierec.evaluation import tuning  # pyspark's modules; no session yet
    from movierec.ranking.calibration import CALIBRATION

    try:
        grid = tuning.parse_space(space) if space else tuning.DEFAULT_SPACE
        unknown = sorted({name for _, values in grid for name in values} - set(tuning.TUNED))
    except (ValueError, AttributeError, TypeError) as err:
        raise UserError(f"--space: not a JSON list of [stage, {{setting: [values]}}] ({err})") from None
    if unknown:
        raise UserError(f"--space: cannot tune {', '.join(unknown)}; tunable: {', '.join(tuning.TUNED)}")
    try:
        result = tuning.run_search(
            settings,
            run_id,
            grid,
            max_minutes,
            tuning.MIN_COVERAGE if min_coverage is None else min_coverage,
            progress=lambda line: click.echo(line),
        )
    except _failures() as err:
        raise Failed(str(err)) from None
    click.echo(tuning.results_table(result))
    click.echo(f"best (trial {result.best.number}): hybrid NDCG@10 {result.best.hybrid:.4f} on validation; settings:")
    for name in tuning.TUNED + CALIBRATION:
        click.echo(f"  {config.env_name(name)}={getattr(result.settings, name)}")
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=2)
    return 0


@click.command(
    short_help="write a run's HTML evaluation report",
    help="Write a run's HTML evaluation report (metrics, precision/recall curves, score histograms, "
    "the history of runs): <out-dir>/<run_id>.html and <out-dir>/latest.html.",
)
@click.option("--run-id", help="the run to report on (default: the store's active run)")
@click.option("--out-dir", help="folder of the pages (default: MOVIEREC_REPORTS_DIR, var/reports)")
@config.setting_options(*config.REPORT_SETTINGS)
def report(run_id: str | None, out_dir: str | None, settings: config.Settings) -> int:
    if run_id:
        checked_run_id(run_id)
    check_store(settings.db_url, must_exist=True)  # a read: never makes a store
    from pyspark.sql import SparkSession

    from movierec.report.build import ReportError, make_report
    from movierec.spark.session import build_session
    from movierec.store.runs import StoreError

    owned = SparkSession.getActiveSession() is None  # stop only a session this command started
    spark = build_session("report", settings)
    try:
        path = make_report(spark, settings, run_id, out_dir or settings.reports_dir)
    except (ReportError, StoreError) as err:
        raise Failed(str(err)) from None
    finally:
        if owned:
            spark.stop()
    click.echo(f"report: {path} (also {path.parent / 'latest.html'})")
    return 0
