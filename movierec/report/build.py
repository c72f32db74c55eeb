"""`movierec report`: one self-contained HTML page about a run's evaluation.

    movierec report [--run-id ID] [--out-dir var/reports]

The run defaults to the store's active run.  Its files are read from the warehouse setting
when it was given (`--warehouse`, `MOVIEREC_WAREHOUSE`), else from the warehouse recorded with
the run in the store (`params.warehouse`), so a report made elsewhere finds the run's own
files.  The page is written to `<out-dir>/<run_id>.html` and copied to `<out-dir>/latest.html`
(each atomically); plots are inline PNG data URIs, so the page needs no other file and no network.

The report computes no metric: the evaluate stage measures everything it shows with
`movierec.evaluation.metrics` on its own hold-out and writes it under `<run>/evaluate/`
(`metrics`, and the tables of `movierec.evaluation.protocol.TABLE_SCHEMAS`); this module
reads those, the score stage's output and the store, and `plots` and the Jinja2 template
`templates/report.html` draw them:

- at a glance: the hybrid's NDCG@10 against each baseline, the publish decision, calibration;
- the metrics table of the four models and the protocol;
- NDCG, precision and recall at k = 1..50;
- NDCG@10 by user activity (buckets of training ratings, with the users in each);
- calibration: predicted chance against the observed share of liked held-out movies,
  per component (cf_score, cb_score) and for the blend (score);
- the distribution of the recommended pairs' cf_score, cb_score and score;
- the hybrid's (and the baselines') NDCG@10 of every run in the store that has metrics, over time;
- the run's settings (from the store) and its stage reports (from the warehouse).

A run whose evaluation is not in the warehouse (no metrics, or metrics without the tables)
is an error (`ReportError`, one line), and nothing is written: latest.html never becomes a
page without its data.  The score distributions alone are left out with a note when the run
has no score output (a `movierec evaluate` run).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.config import MASK, Settings, redact_url
from movierec.data.schemas import CB_SCORE, CF_SCORE, SCORE
from movierec.files import write_atomically
from movierec.spark.paths import RunPaths, check_run_id

log = logging.getLogger(__name__)

MODELS = ("hybrid", "als", "content", "popularity")  # the evaluate stage's models, table order
COMPONENTS = (SCORE, CF_SCORE, CB_SCORE)  # the blend, then its two components
BASELINES = ("als", "content", "popularity")  # what the hybrid is compared with
DEFAULT_OUT_DIR = "var/reports"
LATEST = "latest.html"
TEMPLATE = "report.html"
TABLE_KS = (1, 5, 10, 20, 50)  # precision@k and recall@k also shown as a table
SCORE_BINS = 40  # histogram bins over the observed range of the scores
LOG_BINS_ABOVE = 10.0  # log-spaced bins when the largest score is this many times the smallest
MIN_CALIBRATION_PAIRS = 30  # calibration bins with fewer pairs are in the table, not on the plot
COMPONENT = "component"  # the score column a histogram or summary row is about
DEFAULT_WAREHOUSE = next(f.default for f in dataclasses.fields(Settings) if f.name == "warehouse")

# metrics table: (key in metrics["models"][model], column heading); {k} is the protocol's k
METRIC_COLUMNS = (
    ("ndcg", "NDCG@{k}"),
    ("precision", "precision@{k}"),
    ("recall", "recall@{k}"),
    ("map", "MAP@{k}"),
    ("hit_rate", "hit rate@{k}"),
    ("coverage", "coverage@{k}"),
    ("ndcg_all", "NDCG@{k}, all held-out relevant"),
    ("precision_all", "precision@{k}, all held-out relevant"),
    ("rmse", "content RMSE"),
    ("mae", "content MAE"),
    ("users", "users"),
)


class ReportError(RuntimeError):
    """The report cannot be made; the message says why and what to do."""


class NoRun(ReportError):
    """No run id given and no active run in the store."""


class NoMetrics(ReportError):
    """The run has no evaluation in the warehouse: its evaluate stage has not run there."""


class IncompleteEvaluation(NoMetrics):
    """The run's evaluation lacks the tables the report draws (evaluated by an older version)."""


# ---------------------------------------------------------------- pure helpers


def warehouse_given(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the warehouse setting was given rather than left at its default.  Settings do not
    record where a value came from, so: a value other than the default was given (a flag, the
    environment, a caller); the default value counts as given only through MOVIEREC_WAREHOUSE."""
    from movierec.config import env_name

    environ = os.environ if environ is None else environ
    return settings.warehouse != DEFAULT_WAREHOUSE or env_name("warehouse") in environ


def choose_warehouse(settings: Settings, store_run: Mapping[str, Any] | None, given: bool) -> tuple[str, str]:
    """(warehouse, where it came from): the setting when it was given, else the one recorded with
    the run in the store (unless masked: a masked URI cannot be read), else the default setting."""
    if given:
        return settings.warehouse, "the warehouse setting"
    recorded = ((store_run or {}).get("params") or {}).get("warehouse")
    if isinstance(recorded, str) and recorded and MASK not in recorded:
        return recorded, "the warehouse recorded with the run"
    if isinstance(recorded, str) and MASK in recorded:
        return settings.warehouse, "the default warehouse setting (the run's recorded warehouse is masked)"
    return settings.warehouse, "the default warehouse setting"


def metric_history(
    runs: Sequence[Mapping[str, Any]], models: Sequence[str] = MODELS, metric: str = "ndcg"
) -> pd.DataFrame:
    """(run_id, status, started_at, active, *models): `metric` of each model per run, for every run
    (whatever its status: published, rejected, ...) whose hybrid has it, oldest first; a model a
    run lacks is NaN.  `runs` as `movierec.store.runs.list_runs` returns them (newest first)."""
    rows = []
    for run in reversed(list(runs)):
        results = (run.get("metrics") or {}).get("models") or {}
        values = {}
        for model in models:
            try:
                values[model] = float(results[model][metric])
            except (KeyError, TypeError, ValueError):
                values[model] = math.nan
        if not math.isnan(values.get("hybrid", math.nan)):
            rows.append(
                {
                    "run_id": run["run_id"],
                    "status": run["status"],
                    "started_at": run.get("started_at"),
                    "active": bool(run.get("active")),
                    **values,
                }
            )
    return pd.DataFrame(rows, columns=["run_id", "status", "started_at", "active", *models])


def histogram_edges(lo: float, hi: float, bins: int = SCORE_BINS) -> tuple[list[float], bool]:
    """(edges, log scale): `bins` bins over the observed range lo..hi, log-spaced when lo > 0 and
    hi is more than LOG_BINS_ABOVE times lo (chances of a few per cent with a long tail), else
    equal-width.  One bin around the value when lo == hi."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"not a range: {lo!r}..{hi!r}")
    if hi == lo:
        pad = abs(lo) * 0.05 or 0.05
        return [lo - pad, hi + pad], False
    if lo > 0 and hi / lo > LOG_BINS_ABOVE:
        step = (math.log(hi) - math.log(lo)) / bins
        edges = [math.exp(math.log(lo) + i * step) for i in range(bins + 1)]
        edges[0], edges[-1] = lo, hi
        return edges, True
    return [lo + (hi - lo) * i / bins for i in range(bins + 1)], False


def score_summary(recommendations, columns: Sequence[str] = COMPONENTS) -> pd.DataFrame:
    """(component, pairs, mean, min, max) of each score column of a Spark DataFrame (nulls left out)."""
    from pyspark.sql import functions as F

    aggs = [
        f(c).alias(f"{c}_{name}")
        for c in columns
        for name, f in (("pairs", F.count), ("mean", F.avg), ("min", F.min), ("max", F.max))
    ]
    row = recommendations.agg(*aggs).first()
    return pd.DataFrame(
        [(c, int(row[f"{c}_pairs"]), row[f"{c}_mean"], row[f"{c}_min"], row[f"{c}_max"]) for c in columns],
        columns=[COMPONENT, "pairs", "mean", "min", "max"],
    )


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, leaf value) pairs, keys in sorted order."""
    if isinstance(value, Mapping):
        pairs = []
        for key in sorted(value, key=str):
            pairs += flatten(value[key], f"{prefix}{key}.")
        return pairs
    return [(prefix[:-1], value)]


def score_histograms(recommendations, edges: Sequence[float], columns: Sequence[str] = COMPONENTS) -> pd.DataFrame:
    """(component, lower, upper, count): each score column of a Spark DataFrame counted in the bins
    of `edges` (`movierec.evaluation.metrics.bin_index`: lower <= x < upper, the last bin closed,
    values outside in the end bins), every bin listed, zero counts too; nulls left out.  Computed
    in Spark, one pass: only the counts come back to the driver."""
    from pyspark.sql import functions as F

    from movierec.evaluation.metrics import bin_index

    pairs = F.explode(
        F.array(*(F.struct(F.lit(c).alias("component"), bin_index(F.col(c), edges).alias("bin")) for c in columns))
    )
    counted = (
        recommendations.select(pairs.alias("p"))
        .select("p.*")
        .where(F.col("bin").isNotNull())
        .groupBy("component", "bin")
        .count()
        .collect()
    )
    found = {(row["component"], row["bin"]): row["count"] for row in counted}
    return pd.DataFrame(
        [(c, edges[b], edges[b + 1], int(found.get((c, b), 0))) for c in columns for b in range(len(edges) - 1)],
        columns=["component", "lower", "upper", "count"],
    )


# ---------------------------------------------------------------- gathering a run's data


@dataclass
class ReportData:
    """Everything the page shows, as read; tables as pandas frames."""

    run_id: str
    metrics: dict
    at_k: pd.DataFrame  # protocol.TABLE_SCHEMAS["at_k"]
    by_activity: pd.DataFrame  # protocol.TABLE_SCHEMAS["by_activity"]
    calibration: pd.DataFrame  # protocol.TABLE_SCHEMAS["calibration"]
    warehouse: str = ""  # as shown: credentials masked
    warehouse_source: str = ""
    db_url: str = ""  # as shown: password hidden
    metrics_path: str = ""
    store_run: dict | None = None  # the run's row in the store, if it is there
    history: pd.DataFrame | None = None
    histograms: pd.DataFrame | None = None
    score_stats: pd.DataFrame | None = None
    score_log_scale: bool = False
    stage_reports: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # why a part is missing


def resolve_run_id(engine, run_id: str | None, db_url: str) -> str:
    from movierec.store import runs as store

    if run_id:
        return check_run_id(run_id)
    with engine.connect() as conn:
        active = store.active_run_id(conn)
    if active is None:
        raise NoRun(
            f"no --run-id given and the store {redact_url(db_url)} has no active run; "
            f"pass --run-id (`movierec runs` lists the runs)"
        )
    return active


def collect(spark, settings: Settings, run_id: str | None = None, warehouse_explicit: bool | None = None) -> ReportData:
    """Everything the page shows, read from the run's warehouse folder and the store.

    warehouse_explicit: whether `settings.warehouse` was given (None: `warehouse_given` decides).
    Raises NoMetrics / IncompleteEvaluation when the run's evaluation is not in that warehouse."""
    from movierec.evaluation.protocol import TABLE_SCHEMAS
    from movierec.spark.warehouse import exists, read_json, read_table
    from movierec.store import runs as store

    engine = store.engine_for(settings.db_url)
    try:
        run_id = resolve_run_id(engine, run_id, settings.db_url)
        with engine.connect() as conn:
            store_run = store.get_run(conn, run_id)
            runs = store.list_runs(conn)
    finally:
        engine.dispose()
    given = warehouse_given(settings) if warehouse_explicit is None else warehouse_explicit
    warehouse, source = choose_warehouse(settings, store_run, given)
    paths = RunPaths(warehouse, run_id)
    where = f"{redact_url(paths.warehouse)} ({source})"

    if not exists(spark, paths.metrics):
        raise NoMetrics(
            f"run {run_id} has no evaluation metrics in the warehouse {where}: nothing at "
            f"{redact_url(paths.metrics)}; pass the run's --warehouse, or run its evaluate stage "
            f"(`movierec pipeline --run-id {run_id} --stages evaluate`)"
        )
    metrics = read_json(spark, paths.metrics)
    if not metrics.get("models"):
        raise NoMetrics(f"run {run_id}: the metrics at {redact_url(paths.metrics)} have no per-model results")
    tables = {}
    for name in TABLE_SCHEMAS:
        path = paths.evaluation_table(name)
        if not exists(spark, path):
            raise IncompleteEvaluation(
                f"run {run_id}'s evaluation in {where} has no {name} table ({redact_url(path)}): it was evaluated "
                f"by an older version; run its evaluate stage again (`movierec pipeline --run-id {run_id} "
                f"--stages evaluate`)"
            )
        tables[name] = read_table(spark, path).toPandas()

    data = ReportData(
        run_id,
        metrics,
        at_k=tables["at_k"],
        by_activity=tables["by_activity"],
        calibration=tables["calibration"],
        warehouse=redact_url(paths.warehouse),
        warehouse_source=source,
        db_url=redact_url(settings.db_url),
        metrics_path=redact_url(paths.metrics),
        store_run=store_run,
        history=metric_history(runs),
    )
    if exists(spark, paths.recommendations):
        recs = read_table(spark, paths.recommendations)
        data.score_stats = score_summary(recs)
        lo, hi = data.score_stats["min"].min(), data.score_stats["max"].max()
        if data.score_stats["pairs"].sum() and pd.notna(lo) and pd.notna(hi):
            edges, data.score_log_scale = histogram_edges(float(lo), float(hi))
            data.histograms = score_histograms(recs, edges)
    if data.histograms is None:
        where_recs = redact_url(paths.recommendations)
        data.notes.append(f"No score distributions: the run has no score output at {where_recs}.")
    for stage, path in (
        ("ingest", paths.ingest_report),
        ("train_als", paths.als_report),
        ("train_rf", paths.rf_report),
        ("score", paths.score_report),
        ("publish", paths.publish_report),
    ):
        if exists(spark, path):
            data.stage_reports[stage] = read_json(spark, path)
    return data


# ---------------------------------------------------------------- the page


@dataclass
class Table:
    """A table as the template draws it: cells are raw values, formatted there (`plain`: settings
    as they were set, 0.05 not 0.0500)."""

    header: list[str]
    rows: list[list[Any]]
    row_classes: list[str] | None = None
    plain: bool = False


@dataclass
class Plot:
    name: str
    alt: str
    uri: str


def cell(value: Any, plain: bool = False) -> str:
    """A table cell's text: metrics to 4 places, settings as set, nested values as JSON, missing as '–'."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if plain and isinstance(value, float):
        return f"{value:.6g}"
    from movierec.evaluation.metrics import format_value  # metrics imports pyspark: only when a page is made

    return format_value(value, missing="–")


def _ordered(names: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    return [m for m in MODELS if m in names] + [m for m in names if m not in MODELS]


def _k(metrics: Mapping[str, Any]) -> int:
    return int((metrics.get("protocol") or {}).get("k", 10))


def _lift(value: float, baseline: float) -> str:
    return "–" if not baseline else f"{(value / baseline - 1):+.1%}"


def glance(data: ReportData) -> list[tuple[str, str]]:
    """(what, value) lines an engineer reads first: the hybrid against each baseline, the publish
    decision, who was evaluated, how well the blend is calibrated, where the hybrid is weakest."""
    models, k = data.metrics["models"], _k(data.metrics)
    protocol = data.metrics.get("protocol") or {}
    lines = []
    hybrid = (models.get("hybrid") or {}).get("ndcg")
    if hybrid is not None:
        against = [
            f"{name} {models[name]['ndcg']:.4f} ({_lift(hybrid, models[name]['ndcg'])})"
            for name in BASELINES
            if (models.get(name) or {}).get("ndcg") is not None
        ]
        interval = protocol.get("hybrid_ndcg_ci95")
        spread = f" ± {interval:.4f} (95% interval over users)" if interval else ""
        lines.append((f"hybrid NDCG@{k}", f"{hybrid:.4f}{spread}; against " + ", ".join(against)))
    run = data.store_run
    if run:
        status = run["status"] + (" (active)" if run.get("active") else "")
        lines.append(("in the store", status + (f": {run['message']}" if run.get("message") else "")))
    else:
        lines.append(("in the store", "not in the store (not published)"))
    gate = (data.stage_reports.get("publish") or {}).get("gate")
    if gate:
        lines.append(("quality gate", str(gate)))
    users = (models.get("hybrid") or {}).get("users")
    sample = protocol.get("evaluated_users") or {}
    sampled = (
        f" (a seeded sample of the {sample['held_out_users']} held-out users, each kept with chance "
        f"{sample['sample_fraction']:.3f}; the models saw every training rating)"
        if sample.get("sample_fraction", 1.0) < 1
        else ""
    )
    lines.append(
        (
            "evaluated",
            f"{users} users with a liked held-out movie{sampled}; {protocol.get('train_ratings')} training "
            f"and {protocol.get('test_ratings')} held-out ratings; catalogue "
            f"{protocol.get('catalogue')} movies",
        )
    )
    totals = data.calibration[data.calibration["bin"].isna()].set_index("component")
    if SCORE in totals.index:
        row = totals.loc[SCORE]
        lines.append(
            (
                "calibration of score",
                f"mean predicted chance {row['predicted']:.4f}, observed share liked "
                f"{row['observed']:.4f} over {int(row['pairs'])} candidate pairs; "
                f"Brier {row['brier']:.4f}",
            )
        )
    mine = data.by_activity[data.by_activity["model"] == "hybrid"]
    if len(mine) > 1:
        low, high = mine.loc[mine["ndcg"].idxmin()], mine.loc[mine["ndcg"].idxmax()]
        lines.append(
            (
                f"hybrid NDCG@{k} by activity",
                f"lowest {low['ndcg']:.4f} for users with {low['label']} "
                f"training ratings ({int(low['users'])} users), highest "
                f"{high['ndcg']:.4f} for {high['label']} ({int(high['users'])})",
            )
        )
    return lines


def metrics_table(metrics: Mapping[str, Any]) -> Table:
    models, k = metrics["models"], _k(metrics)
    names = _ordered(models)
    known = {key for key, _ in METRIC_COLUMNS}
    extra = sorted({key for m in names for key in models[m] if key not in known})
    columns = [*METRIC_COLUMNS, *((key, key) for key in extra)]
    return Table(
        ["model", *(heading.format(k=k) for _, heading in columns)],
        [[m, *(models[m].get(key) for key, _ in columns)] for m in names],
    )


def at_k_table(at_k: pd.DataFrame) -> Table:
    ks = [k for k in TABLE_KS if k in set(at_k["k"])]
    by = at_k.set_index(["model", "k"])
    rows = [
        [m, *(by.loc[(m, k), "precision"] for k in ks), *(by.loc[(m, k), "recall"] for k in ks)]
        for m in _ordered(at_k["model"])
    ]
    return Table(["model", *(f"precision@{k}" for k in ks), *(f"recall@{k}" for k in ks)], rows)


def activity_table(by_activity: pd.DataFrame, k: int) -> Table:
    models = _ordered(by_activity["model"])
    rows = []
    for _bucket, part in by_activity.groupby("bucket", sort=True):
        values = part.set_index("model")
        rows.append(
            [part["label"].iloc[0], int(part["users"].max()), *(values["ndcg"].get(m, math.nan) for m in models)]
        )
    return Table(["training ratings", "users", *(f"{m} NDCG@{k}" for m in models)], rows)


def calibration_tables(calibration: pd.DataFrame) -> tuple[Table, Table]:
    """(totals per component, every bin)."""
    order = [c for c in COMPONENTS if c in set(calibration["component"])]
    totals = calibration[calibration["bin"].isna()].set_index("component")
    summary = Table(
        ["component", "pairs", "mean predicted", "observed share liked", "Brier score"],
        [
            [
                c,
                int(totals.loc[c, "pairs"]),
                totals.loc[c, "predicted"],
                totals.loc[c, "observed"],
                totals.loc[c, "brier"],
            ]
            for c in order
            if c in totals.index
        ],
    )
    bins = calibration[calibration["bin"].notna()]
    rows = [
        [c, f"{row.lower:.3f}–{row.upper:.3f}", int(row.pairs), row.predicted, row.observed]
        for c in order
        for row in bins[bins["component"] == c].sort_values("bin").itertuples()
    ]
    return summary, Table(["component", "predicted chance", "pairs", "mean predicted", "observed share liked"], rows)


def history_table(history: pd.DataFrame, run_id: str, k: int) -> Table:
    models = [m for m in MODELS if m in history and history[m].notna().any()]
    rows = [
        [r["run_id"], r["status"], str(r["started_at"] or "")[:19], *(r[m] for m in models)]
        for _, r in history.iterrows()
    ]
    classes = [
        " ".join(c for c in ("active" if r["active"] else "", "this" if r["run_id"] == run_id else "") if c)
        for _, r in history.iterrows()
    ]
    return Table(["run", "status", "started (UTC)", *(f"{m} NDCG@{k}" for m in models)], rows, classes)


def page_context(data: ReportData, generated_at: str) -> dict[str, Any]:
    """What the template gets: plain values, `Table`s and `Plot`s (the figures drawn here)."""
    from movierec.evaluation.protocol import HOLDOUT_SHARE, RELEVANT_THRESHOLD
    from movierec.report import plots

    metrics, k = data.metrics, _k(data.metrics)
    protocol = metrics.get("protocol") or {}
    run = data.store_run
    status = f"{run['status']}{' (active)' if run.get('active') else ''}" if run else "not in the store"
    context: dict[str, Any] = {
        "run_id": data.run_id,
        "k": k,
        "notes": data.notes,
        "generated_at": generated_at,
        "holdout_share": float(protocol.get("holdout_share", HOLDOUT_SHARE)),
        "relevant": protocol.get("relevant", f"held-out rating >= {RELEVANT_THRESHOLD}"),
        "summary": Table(
            ["", ""],
            [
                ["run", data.run_id],
                ["status in the store", status],
                ["metrics from", data.metrics_path],
                ["warehouse", f"{data.warehouse} ({data.warehouse_source})"],
                ["store", data.db_url],
                ["generated", generated_at],
            ],
        ),
        "glance": glance(data),
        "metrics": metrics_table(metrics),
        "protocol": Table(["protocol", "value"], [list(pair) for pair in flatten(protocol)], plain=True),
    }
    models = _ordered(data.at_k["model"])
    context["at_k"] = {
        "max_k": int(data.at_k["k"].max()),
        "users": int(data.at_k["users"].max()),
        "table": at_k_table(data.at_k),
        "plot": Plot(
            "at-k",
            "NDCG, precision and recall at k per model",
            plots.at_k_plot(
                data.at_k, models, [("ndcg", "NDCG@k"), ("precision", "precision@k"), ("recall", "recall@k")]
            ),
        ),
    }
    context["activity"] = {
        "table": activity_table(data.by_activity, k),
        "plot": Plot(
            "activity",
            f"NDCG@{k} per model by the user's training ratings",
            plots.activity_plot(data.by_activity, _ordered(data.by_activity["model"]), "ndcg", f"NDCG@{k}"),
        ),
    }
    summary, bins = calibration_tables(data.calibration)
    components = [c for c in COMPONENTS if c in set(data.calibration["component"])]
    context["calibration"] = {
        "summary": summary,
        "bins": bins,
        "min_pairs": MIN_CALIBRATION_PAIRS,
        "plot": Plot(
            "calibration",
            "observed share of liked held-out movies against the predicted chance",
            plots.calibration_plot(
                data.calibration[data.calibration["bin"].notna()], components, MIN_CALIBRATION_PAIRS
            ),
        ),
    }
    if data.histograms is not None:
        stats = data.score_stats
        assert stats is not None  # written with the histograms
        context["scores"] = {
            "log_scale": data.score_log_scale,
            "pairs": int(stats["pairs"].max()),
            "table": Table(list(stats.columns), [list(row) for row in stats.itertuples(index=False)]),
            "plot": Plot(
                "scores",
                "histograms of score, cf_score and cb_score of the recommended pairs",
                plots.score_histogram_plot(data.histograms, COMPONENTS, data.score_log_scale),
            ),
        }
    if data.history is not None and not data.history.empty:
        label = f"NDCG@{k}"
        context["history"] = {
            "runs": len(data.history),
            "table": history_table(data.history, data.run_id, k),
            "plot": Plot(
                "history",
                f"{label} by run over time",
                plots.history_plot(data.history, list(MODELS), data.run_id, label),
            ),
        }
    params = (run or {}).get("params")
    if params:
        shown = {
            key: (
                redact_url(value)
                if key == "db_url" and isinstance(value, str)
                else redact_url(value)
                if key == "warehouse" and isinstance(value, str)
                else value
            )
            for key, value in params.items()
        }
        context["settings"] = Table(["setting", "value"], [list(pair) for pair in flatten(shown)], plain=True)
    context["stage_reports"] = [
        (stage, Table(["key", "value"], [list(pair) for pair in flatten(report)], plain=True))
        for stage, report in data.stage_reports.items()
    ]
    return context


def environment():
    """The Jinja2 environment of the report's templates: loaded from the package (a directory, a
    wheel or the --py-files zip alike), HTML escaped everywhere, an unknown name an error."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("movierec.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    return env


def render_html(data: ReportData, generated_at: str | None = None) -> str:
    generated_at = generated_at or datetime.now(UTC).isoformat(timespec="seconds")
    return environment().get_template(TEMPLATE).render(**page_context(data, generated_at))


# ---------------------------------------------------------------- writing


def write_report(page: str, out_dir: str | Path, run_id: str) -> Path:
    """`<out_dir>/<run_id>.html`, and the same page as `<out_dir>/latest.html`; returns the first."""
    out = Path(out_dir)
    target = write_atomically(out / f"{check_run_id(run_id)}.html", page)
    write_atomically(out / LATEST, page)
    return target


def make_report(
    spark,
    settings: Settings,
    run_id: str | None = None,
    out_dir: str | Path = DEFAULT_OUT_DIR,
    *,
    warehouse_explicit: bool | None = None,
) -> Path:
    """Gather, render and write the report of `run_id` (default: the active run); returns its path.
    Nothing is written when the run's data is missing (ReportError)."""
    data = collect(spark, settings, run_id, warehouse_explicit)
    path = write_report(render_html(data), out_dir, data.run_id)
    log.info("report for run %s: %s", data.run_id, path)
    return path
