"""`movierec runs`, `movierec rollback`, `movierec schema`: the store from the command line."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

from movierec import config
from movierec.cli.common import Failed, open_store
from movierec.text import format_table

SERVING_MODEL = "hybrid"  # the model the API serves: the one whose figure `runs` shows
KEY_METRIC = "ndcg"  # the quality gate's metric (movierec.evaluation.quality.GATE_METRIC)


@click.command(
    short_help="list the runs in the store", help="List the runs in the store, newest first; * marks the active run."
)
@click.option("--json", "as_json", is_flag=True, help="every run as JSON, with all its params and metrics")
@config.setting_options(*config.STORE_SETTINGS)
def runs(as_json: bool, settings: config.Settings) -> int:
    from movierec.store.runs import list_runs

    engine = open_store(settings.db_url)
    try:
        with engine.connect() as conn:
            all_runs = list_runs(conn)
    finally:
        engine.dispose()
    for run in all_runs:  # runs published before params held model settings only kept the store's URL
        run["params"] = {key: config.redact_url(value) for key, value in run["params"].items()}
    click.echo(json.dumps(all_runs, indent=2) if as_json else format_runs(all_runs))
    return 0


@click.command(
    short_help="point the store back at the previous published run",
    help="Point the store back at the run published before the active one (or at --to).",
)
@click.option(
    "--to",
    "to_run_id",
    metavar="RUN_ID",
    help="the published run to serve (default: the one published before the active run)",
)
@config.setting_options(*config.STORE_SETTINGS)
def rollback(to_run_id: str | None, settings: config.Settings) -> int:
    from movierec.store import runs as store

    engine = open_store(settings.db_url)
    try:
        with engine.connect() as conn:
            before = store.active_run_id(conn)
        target = store.rollback(engine, to_run_id)
    except store.StoreError as err:
        raise Failed(str(err)) from None
    finally:
        engine.dispose()
    click.echo(f"active run: {target} (was {before})")
    return 0


@click.command(
    short_help="print the store's DDL (sql/schema.sql)",
    help="Print the store's DDL (what sql/schema.sql holds), generated from movierec/store/tables.py.",
)
@click.option(
    "--dialect",
    type=click.Choice(["postgresql", "sqlite"]),
    default="postgresql",
    show_default=True,
    help="the SQL dialect to render",
)
def schema(dialect: str) -> int:
    from movierec.store.tables import schema_sql

    text = schema_sql(dialect)
    click.echo(text, nl=not text.endswith("\n"))
    return 0


# ---------------------------------------------------------------- the runs table


def key_metric(metrics: Mapping[str, Any] | None) -> tuple[float | None, int | None]:
    """The serving model's NDCG@k and its k, as the evaluate stage stores them
    (`metrics["models"]["hybrid"]["ndcg"]`, `metrics["protocol"]["k"]`); None where absent."""
    metrics = metrics or {}
    value = ((metrics.get("models") or {}).get(SERVING_MODEL) or {}).get(KEY_METRIC)
    k = (metrics.get("protocol") or {}).get("k")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None, None
    return float(value), k


def _time(value: str | None) -> str:
    """An ISO time to the second, as `2026-11-30 09:44:12`."""
    return (value or "")[:19].replace("T", " ")


def format_runs(all_runs: Sequence[Mapping[str, Any]]) -> str:
    """The text table of `movierec runs`: `*` marks the active run, the figure is the hybrid's
    NDCG@k (the quality gate's), the message says why a run was rejected or failed."""
    figures = [key_metric(run.get("metrics")) for run in all_runs]
    ks = sorted({k for value, k in figures if value is not None}, key=str)
    one_k = len(ks) == 1
    at = lambda k: "" if k is None else f"@{k}"
    heading = f"{SERVING_MODEL} NDCG{at(ks[0])}" if one_k else f"{SERVING_MODEL} NDCG"

    def figure(value: float | None, k: int | None) -> str | None:
        if value is None:
            return None
        return f"{value:.4f}" if one_k else f"{value:.4f} {at(k)}".rstrip()

    header = ("", "run_id", "status", "started", "finished", "published", heading, "message")
    rows = [
        (
            "*" if run.get("active") else "",
            run["run_id"],
            run["status"],
            _time(run.get("started_at")),
            _time(run.get("finished_at")),
            _time(run.get("published_at")),
            figure(value, k),
            run.get("message"),
        )
        for run, (value, k) in zip(all_runs, figures)
    ]
    table = format_table(header, rows, right=(6,))
    return table if all_runs else table + "\n(no runs)"
