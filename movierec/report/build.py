"""`movierec report`: one self-contained HTML page about a run's evaluation.

    movierec report [--run-id ID] [--out-dir var/reports]

The run defaults to the store's active run; its files come from `settings.warehouse`.
The page is written to `<out-dir>/<run_id>.html` and copied to `<out-dir>/latest.html`.
Plots are inline PNG data URIs: the page needs no other file and no network.

What it shows:
- the evaluate stage's metrics table (hybrid, ALS, content, popularity) and protocol;
- precision@k and recall@k for k = 1..50, recomputed from the evaluate stage's top-50 lists
  (`<run>/evaluate/details`) against the held-out ratings, re-derived from the run's ingest
  ratings by the same deterministic `movierec.data.split.temporal_split` (a check line compares the
  curve at the metrics' k with the metrics table);
- histograms of the two blend components (cf_score, cb_score) of the score stage's output;
- hybrid NDCG@k of every published and rejected run in the store, oldest first;
- the run's settings (from the store) and its stage reports (from the warehouse).

A run without evaluation metrics (neither `<run>/evaluate/metrics` nor metrics in the
store) is an error (`NoMetrics`); the other parts are left out with a note when their
input is missing (a `movierec evaluate` run has no score stage, for example).
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from movierec.config import Settings, redact_url
from movierec.spark.paths import RunPaths, check_run_id
from movierec.data.schemas import CB_SCORE, CF_SCORE, MOVIE, RANK, RATING, USER

log = logging.getLogger(__name__)

MODELS = ("hybrid", "als", "content", "popularity")    # the evaluate stage's models, table order
MODEL = "model"                                        # model column of the details table
K = "k"
PRECISION = "precision"
RECALL = "recall"
USERS = "users"
COMPONENT = "component"
LOWER, UPPER, COUNT = "lower", "upper", "count"

RELEVANT_THRESHOLD = 4.0          # as movierec.evaluation.protocol: relevant = held-out rating >= 4.0
HOLDOUT_SHARE = 0.2               # used only when the metrics do not record theirs
CURVE_KS = tuple(range(1, 51))    # the details lists hold each model's top 50
TABLE_KS = (1, 5, 10, 20, 50)     # curve values also shown as a table
SCORE_BINS = 20                   # histogram bins over 0..1 (both components are on that scale)
DEFAULT_OUT_DIR = "var/reports"
LATEST = "latest.html"
HISTORY_STATUSES = ("published", "rejected")

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
    """The run has no evaluation metrics: the evaluate stage has not run for it."""


# ---------------------------------------------------------------- pure computations

def precision_recall_curve(lists: pd.DataFrame, test: pd.DataFrame, ks: Iterable[int] = CURVE_KS,
                           relevant_threshold: float | None = RELEVANT_THRESHOLD) -> pd.DataFrame:
    """Mean precision@k and recall@k of each model's lists, for every k in `ks`.

    lists: (model, user_id, rank, movie_id), each model's ranked list per user; a user's rows are
        read in (rank, movie_id) order, so only the order of ranks matters.
    test: (user_id, movie_id, rating), the held-out ratings (`rating` is needed only with a threshold).
    Definitions as `movierec.evaluation.metrics`: R = the user's held-out movies rated >= threshold (all of
    them when it is None); precision@k = hits in the first k / k (also for a shorter list);
    recall@k = hits / |R|; both averaged over the users with |R| >= 1, a user without a list
    from a model counting 0 for it.

    Returns (model, k, precision, recall, users), models in `MODELS` order (others after, in
    order of appearance), then k ascending.  Raises ValueError for no k or a k below 1, and
    `movierec.evaluation.metrics.EmptyEvaluation` when no user has a relevant held-out movie.
    """
    from movierec.evaluation.metrics import EmptyEvaluation

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be at least 1 and not empty, got {ks!r}")
    held = test if relevant_threshold is None else test[test[RATING] >= relevant_threshold]
    relevant = held[[USER, MOVIE]].drop_duplicates()
    n_relevant = relevant.groupby(USER).size()
    if n_relevant.empty:
        raise EmptyEvaluation(f"no user has a held-out movie rated >= {relevant_threshold}: nothing to rank against")
    n_users = len(n_relevant)

    ordered = lists[[MODEL, USER, RANK, MOVIE]].sort_values([MODEL, USER, RANK, MOVIE], kind="stable")
    ordered = ordered.assign(position=ordered.groupby([MODEL, USER]).cumcount() + 1)
    hits = ordered[ordered["position"] <= ks[-1]].merge(relevant, on=[USER, MOVIE])
    hits = hits.assign(share=1.0 / hits[USER].map(n_relevant))     # each hit's part of its user's recall

    seen = list(dict.fromkeys(lists[MODEL]))
    models = [m for m in MODELS if m in seen] + [m for m in seen if m not in MODELS]
    rows = []
    for model in models:
        mine = hits[hits[MODEL] == model]
        for k in ks:
            first_k = mine[mine["position"] <= k]
            rows.append((model, k, len(first_k) / k / n_users, first_k["share"].sum() / n_users, n_users))
    return pd.DataFrame(rows, columns=[MODEL, K, PRECISION, RECALL, USERS])


def curve_check(curves: pd.DataFrame, models: Mapping[str, Mapping[str, Any]], k: int,
                tolerance: float = 1e-9) -> list[str]:
    """Where the curve at `k` disagrees with the metrics table (empty: they agree)."""
    problems = []
    at_k = curves[curves[K] == k].set_index(MODEL)
    for model, row in at_k.iterrows():
        for name in (PRECISION, RECALL):
            expected = (models.get(model) or {}).get(name)
            if expected is not None and abs(float(expected) - float(row[name])) > tolerance:
                problems.append(f"{model} {name}@{k}: curve {row[name]:.6f}, metrics {float(expected):.6f}")
    return problems


def metric_history(runs: Sequence[Mapping[str, Any]], model: str = "hybrid", metric: str = "ndcg",
                   statuses: Sequence[str] = HISTORY_STATUSES) -> pd.DataFrame:
    """(run_id, status, started_at, active, value): one row per run of `statuses` with that metric,
    oldest first.  `runs` as `movierec.store.runs.list_runs` returns them (newest first)."""
    rows = []
    for run in reversed(list(runs)):
        try:
            value = float(run["metrics"]["models"][model][metric])
        except (KeyError, TypeError, ValueError):
            continue
        if run["status"] in statuses:
            rows.append((run["run_id"], run["status"], run.get("started_at"), bool(run.get("active")), value))
    return pd.DataFrame(rows, columns=["run_id", "status", "started_at", "active", "value"])


def score_histograms(recommendations, bins: int = SCORE_BINS, columns: Sequence[str] = (CF_SCORE, CB_SCORE)
                     ) -> pd.DataFrame:
    """(component, lower, upper, count): equal-width bins over 0..1 of each score column of a
    Spark DataFrame, every bin listed (zero counts too).  A bin holds lower <= x < upper, the
    last one also x = 1; values outside 0..1 go to the end bins, nulls are left out.
    Computed in Spark, one pass: only the counts come back to the driver."""
    from pyspark.sql import functions as F

    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins!r}")

    def bin_of(column: str):
        return F.least(F.greatest(F.floor(F.col(column) * bins), F.lit(0)), F.lit(bins - 1)).cast("int")

    pairs = F.explode(F.array(*(F.struct(F.lit(c).alias(COMPONENT), bin_of(c).alias("bin")) for c in columns)))
    counted = (recommendations.select(pairs.alias("p")).select("p.*").where(F.col("bin").isNotNull())
               .groupBy(COMPONENT, "bin").count().collect())
    found = {(row[COMPONENT], row["bin"]): row["count"] for row in counted}
    return pd.DataFrame(
        [(c, b / bins, (b + 1) / bins, int(found.get((c, b), 0))) for c in columns for b in range(bins)],
        columns=[COMPONENT, LOWER, UPPER, COUNT])


def score_summary(recommendations, columns: Sequence[str] = (CF_SCORE, CB_SCORE)) -> pd.DataFrame:
    """(component, pairs, mean, min, max) of each score column of a Spark DataFrame (nulls left out)."""
    from pyspark.sql import functions as F

    aggs = [f(c).alias(f"{c}_{name}") for c in columns
            for name, f in (("pairs", F.count), ("mean", F.avg), ("min", F.min), ("max", F.max))]
    row = recommendations.agg(*aggs).first()
    return pd.DataFrame([(c, int(row[f"{c}_pairs"]), row[f"{c}_mean"], row[f"{c}_min"], row[f"{c}_max"])
                         for c in columns], columns=[COMPONENT, "pairs", "mean", "min", "max"])


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, leaf value) pairs, keys in sorted order."""
    if isinstance(value, Mapping):
        pairs = []
        for key in sorted(value, key=str):
            pairs += flatten(value[key], f"{prefix}{key}.")
        return pairs
    return [(prefix[:-1], value)]


# ---------------------------------------------------------------- gathering a run's data

@dataclass
class ReportData:
    run_id: str
    metrics: dict
    metrics_source: str
    warehouse: str
    db_url: str
    store_run: dict | None = None                    # the run's row in the store, if it is there
    curves: pd.DataFrame | None = None
    curve_problems: list[str] = field(default_factory=list)
    histograms: pd.DataFrame | None = None
    score_stats: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    stage_reports: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)    # why a part is missing


def resolve_run_id(engine, run_id: str | None, db_url: str) -> str:
    from movierec.store import runs as store

    if run_id:
        return check_run_id(run_id)
    with engine.connect() as conn:
        active = store.active_run_id(conn)
    if active is None:
        raise NoRun(f"no --run-id given and the store {redact_url(db_url)} has no active run; "
                    f"pass --run-id (`movierec runs` lists the runs)")
    return active


def held_out(ratings, holdout_share: float):
    """The run's held-out ratings (user_id, movie_id, rating), by the evaluate stage's rule."""
    from movierec.data.split import temporal_split

    return temporal_split(ratings, holdout_share)[1].select(USER, MOVIE, RATING)


def collect(spark, settings: Settings, run_id: str | None = None) -> ReportData:
    """Everything the page shows, read from the run's warehouse folder and the store."""
    from movierec.store import runs as store
    from movierec.spark.warehouse import exists, read_json, read_table

    engine = store.engine_for(settings.db_url)
    try:
        run_id = resolve_run_id(engine, run_id, settings.db_url)
        with engine.connect() as conn:
            store_run = store.get_run(conn, run_id)
            runs = store.list_runs(conn)
    finally:
        engine.dispose()
    paths = RunPaths(settings.warehouse, run_id)

    if exists(spark, paths.metrics):
        metrics, source = read_json(spark, paths.metrics), paths.metrics
    elif ((store_run or {}).get("metrics") or {}).get("models"):
        metrics, source = store_run["metrics"], f"the store ({redact_url(settings.db_url)})"
    else:
        raise NoMetrics(f"run {run_id} has no evaluation metrics: nothing at {paths.metrics} and none in the "
                        f"store; run its evaluate stage (`movierec pipeline --run-id {run_id} --stages evaluate`)")
    if not metrics.get("models"):
        raise NoMetrics(f"run {run_id}: the metrics at {source} have no per-model results")
    data = ReportData(run_id, metrics, source, paths.warehouse, redact_url(settings.db_url), store_run)
    protocol = metrics.get("protocol") or {}

    if exists(spark, paths.evaluation_details) and exists(spark, paths.ratings):
        share = float(protocol.get("holdout_share", HOLDOUT_SHARE))
        lists = read_table(spark, paths.evaluation_details)
        test = held_out(read_table(spark, paths.ratings), share).join(lists.select(USER).distinct(), USER, "left_semi")
        data.curves = precision_recall_curve(lists.select(MODEL, USER, RANK, MOVIE).toPandas(), test.toPandas())
        k = int(protocol.get("k", 10))
        data.curve_problems = curve_check(data.curves, metrics["models"], k)
        for problem in data.curve_problems:
            log.warning("report: the curve and the metrics disagree: %s", problem)
    else:
        data.notes.append(f"No precision/recall curves: the run has no evaluation lists at "
                          f"{paths.evaluation_details} (or no ingest ratings at {paths.ratings}).")

    if exists(spark, paths.recommendations):
        recs = read_table(spark, paths.recommendations)
        data.histograms = score_histograms(recs)
        data.score_stats = score_summary(recs)
    else:
        data.notes.append(f"No score distributions: the run has no score output at {paths.recommendations}.")

    data.history = metric_history(runs)
    for stage, path in (("ingest", paths.ingest_report), ("train_als", paths.als_report),
                        ("train_rf", paths.rf_report), ("score", paths.score_report),
                        ("publish", paths.publish_report)):
        if exists(spark, path):
            data.stage_reports[stage] = read_json(spark, path)
    return data


# ---------------------------------------------------------------- plots (inline PNG)

def _png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 7.0, height: float = 3.6):
    from matplotlib.figure import Figure     # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def plot_curve(curves: pd.DataFrame, metric: str) -> str:
    figure, ax = _figure()
    for model, part in curves.groupby(MODEL, sort=False):
        ax.plot(part[K], part[metric], marker=".", markersize=3, label=model)
    ax.set_xlabel("k (list length)")
    ax.set_ylabel(f"{metric}@k")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{metric.capitalize()} at k, relevant = held-out rating >= {RELEVANT_THRESHOLD}")
    return _png_data_uri(figure)


def plot_histograms(histograms: pd.DataFrame) -> str:
    figure, ax = _figure()
    for component, part in histograms.groupby(COMPONENT, sort=False):
        ax.stairs(part[COUNT].to_numpy(), [*part[LOWER], part[UPPER].iloc[-1]], label=component,
                  fill=False, linewidth=1.5)
    ax.set_xlabel("score (0..1, on each user's scale)")
    ax.set_ylabel("recommendations")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Blend components of the recommended pairs")
    return _png_data_uri(figure)


def plot_history(history: pd.DataFrame, run_id: str, label: str) -> str:
    figure, ax = _figure()
    x = list(range(len(history)))
    ax.plot(x, history["value"], color="0.7", linewidth=1, zorder=1)
    styles = {"published": dict(marker="o", color="tab:blue"), "rejected": dict(marker="x", color="tab:red")}
    for status, style in styles.items():
        part = history[history["status"] == status]
        ax.scatter([x[i] for i in part.index], part["value"], label=status, zorder=2, **style)
    for i, row in history.iterrows():
        if row["run_id"] == run_id:
            ax.scatter([x[i]], [row["value"]], s=200, facecolors="none", edgecolors="black", zorder=3,
                       label="this run")
        if row["active"]:
            ax.annotate("active", (x[i], row["value"]), textcoords="offset points", xytext=(0, 8),
                        ha="center", fontsize=8)
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], [str(r) for r in history["run_id"]][::step], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{label} by run (published and rejected), oldest first")
    return _png_data_uri(figure)


# ---------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
thead th { background: #f0f0f0; }
tr.active td { font-weight: bold; }
.note { color: #8a5a00; }
.ok { color: #256029; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    from movierec.evaluation.metrics import format_value   # metrics imports pyspark: only when a page is written

    return format_value(value, missing="–")


def _plain(value: Any) -> str:
    """Parameters as they were set (0.05, not 0.0500)."""
    return f"{value:.6g}" if isinstance(value, float) else _cell(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], row_classes: Iterable[str] | None = None,
           fmt=_cell) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    classes = list(row_classes) if row_classes is not None else None
    for number, row in enumerate(rows):
        attr = f' class="{_e(classes[number])}"' if classes and classes[number] else ""
        cells = "".join(f'<td{" class=text" if isinstance(v, str) else ""}>{_e(fmt(v))}</td>' for v in row)
        body.append(f"<tr{attr}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(uri: str, alt: str, name: str) -> str:
    return f'<img id="plot-{_e(name)}" alt="{_e(alt)}" src="{uri}">'


def metrics_section(metrics: Mapping[str, Any]) -> str:
    models = metrics["models"]
    k = (metrics.get("protocol") or {}).get("k", 10)
    names = [m for m in MODELS if m in models] + [m for m in models if m not in MODELS]
    known = {key for key, _ in METRIC_COLUMNS}
    extra = sorted({key for m in names for key in models[m] if key not in known})
    columns = [*METRIC_COLUMNS, *((key, key) for key in extra)]
    table = _table(["model", *(heading.format(k=k) for _, heading in columns)],
                   [[m, *(models[m].get(key) for key, _ in columns)] for m in names])
    protocol = metrics.get("protocol") or {}
    facts = _table(["protocol", "value"], [[key, value] for key, value in flatten(protocol)], fmt=_plain)
    return (f"<h2>Metrics</h2>{table}"
            f"<p>RMSE and MAE are the content model's predicted ratings of the held-out pairs; "
            f"'all held-out relevant' counts every held-out movie as relevant, whatever its rating.</p>"
            f"<h3>Protocol</h3>{facts}")


def curves_section(data: ReportData) -> str:
    curves = data.curves
    share = float((data.metrics.get("protocol") or {}).get("holdout_share", HOLDOUT_SHARE))
    parts = ["<h2>Precision and recall at k</h2>",
             f"<p>Each model's top-{int(curves[K].max())} lists from the evaluate stage against the held-out "
             f"ratings (each user's latest {share:.0%}, re-derived from the run's ratings by the same rule); relevant = rated >= {RELEVANT_THRESHOLD}; "
             f"{int(curves[USERS].iloc[0])} users.</p>",
             _img(plot_curve(curves, PRECISION), "precision at k per model", "precision"),
             _img(plot_curve(curves, RECALL), "recall at k per model", "recall")]
    ks = [k for k in TABLE_KS if k in set(curves[K])]
    models = list(dict.fromkeys(curves[MODEL]))
    by = curves.set_index([MODEL, K])
    rows = [[m, *(by.loc[(m, k), PRECISION] for k in ks), *(by.loc[(m, k), RECALL] for k in ks)] for m in models]
    parts.append(_table(["model", *(f"precision@{k}" for k in ks), *(f"recall@{k}" for k in ks)], rows))
    k = (data.metrics.get("protocol") or {}).get("k", 10)
    if data.curve_problems:
        parts.append(f'<p class="note">The curve at k = {_e(k)} differs from the metrics table: '
                     + "; ".join(_e(p) for p in data.curve_problems) + ".</p>")
    else:
        parts.append(f'<p class="ok">Check: at k = {_e(k)} the curves agree with the metrics table.</p>')
    return "".join(parts)


def scores_section(data: ReportData) -> str:
    stats = data.score_stats
    return ("<h2>Score distributions</h2>"
            "<p>cf_score (ALS) and cb_score (content forest) of the recommended pairs of the score stage "
            "(each user's top-k), each brought to 0..1 on the user's own scale before the blend.</p>"
            + _img(plot_histograms(data.histograms), "histograms of cf_score and cb_score", "scores")
            + _table(list(stats.columns), stats.itertuples(index=False)))


def history_section(data: ReportData) -> str:
    history = data.history
    k = (data.metrics.get("protocol") or {}).get("k", 10)
    label = f"hybrid NDCG@{k}"
    if history is None or history.empty:
        return f'<h2>History</h2><p class="note">No published or rejected run in the store has a {_e(label)}.</p>'
    rows = [[r.run_id, r.status, (r.started_at or "")[:19], r.value] for r in history.itertuples()]
    classes = ["active" if a else "" for a in history["active"]]
    return ("<h2>History</h2>"
            f"<p>{_e(label)} of every published and rejected run kept in the store "
            f"(retention deletes older published runs); the active run in bold.</p>"
            + _img(plot_history(history, data.run_id, label), f"{label} by run", "history")
            + _table(["run", "status", "started", label], rows, classes))


def parameters_section(data: ReportData) -> str:
    parts = ["<h2>Parameters</h2>"]
    params = (data.store_run or {}).get("params")
    if params:
        shown = {key: (redact_url(value) if key == "db_url" and isinstance(value, str) else value)
                 for key, value in params.items()}
        parts.append("<h3>Settings recorded in the store</h3><p>The settings the publish stage ran with; "
                     "each stage report below records what that stage used.</p>"
                     + _table(["setting", "value"], [[key, value] for key, value in flatten(shown)], fmt=_plain))
    else:
        parts.append('<p class="note">The run has no settings in the store (it was not published).</p>')
    for stage, report in data.stage_reports.items():
        parts.append(f"<h3>Stage report: {_e(stage)}</h3>"
                     + _table(["key", "value"], [[key, value] for key, value in flatten(report)], fmt=_plain))
    return "".join(parts)


def render_html(data: ReportData, generated_at: str | None = None) -> str:
    generated_at = generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    run = data.store_run
    status = (f"{run['status']}{' (active)' if run.get('active') else ''}" if run else "not in the store")
    summary = _table(["", ""], [
        ["run", data.run_id], ["status in the store", status], ["metrics from", data.metrics_source],
        ["warehouse", data.warehouse], ["store", data.db_url], ["generated", generated_at]])
    sections = [metrics_section(data.metrics)]
    if data.curves is not None:
        sections.append(curves_section(data))
    if data.histograms is not None:
        sections.append(scores_section(data))
    sections.append(history_section(data))
    sections.append(parameters_section(data))
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in data.notes)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>movierec report: {_e(data.run_id)}</title><style>{STYLE}</style></head><body>"
            f"<h1>movierec evaluation report: {_e(data.run_id)}</h1>{summary}{notes}"
            + "".join(sections) + "</body></html>\n")


# ---------------------------------------------------------------- writing

def _write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a page."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_report(page: str, out_dir: str | Path, run_id: str) -> Path:
    """`<out_dir>/<run_id>.html`, and the same page as `<out_dir>/latest.html`; returns the first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{check_run_id(run_id)}.html"
    _write_atomically(target, page)
    _write_atomically(out / LATEST, page)
    return target


def make_report(spark, settings: Settings, run_id: str | None = None,
                out_dir: str | Path = DEFAULT_OUT_DIR) -> Path:
    data = collect(spark, settings, run_id)
    path = write_report(render_html(data), out_dir, data.run_id)
    log.info("report for run %s: %s", data.run_id, path)
    return path
