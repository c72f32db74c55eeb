"""The report's figures: matplotlib, drawn from the tables `movierec.report.build` gathers, each
returned as a PNG data URI so the page needs no other file.

No pyplot: a `Figure` of its own per plot (no GUI backend, no global state, safe in a thread).
The functions draw what they are given and compute nothing but positions.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

DPI = 100
MODEL_COLOURS = {"hybrid": "tab:blue", "als": "tab:orange", "content": "tab:green", "popularity": "tab:gray"}
COMPONENT_COLOURS = {"score": "tab:blue", "cf_score": "tab:orange", "cb_score": "tab:green"}
STATUS_MARKERS = {"published": "o", "rejected": "X", "loading": "^", "failed": "v"}


def png_data_uri(figure) -> str:
    """The figure as `data:image/png;base64,...`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 10.0, height: float = 4.0, rows: int = 1, columns: int = 1, **grid):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, **grid)
    return figure, axes


def _colour(name: str, palette: dict[str, str], index: int) -> str:
    return palette.get(name, f"C{(index + 4) % 10}")


def at_k_plot(at_k: pd.DataFrame, models: Sequence[str], metrics: Sequence[tuple[str, str]]) -> str:
    """One panel per (column, label) of `metrics`: each model's value against k.
    at_k: (model, k, <the metric columns>)."""
    figure, axes = _figure(width=11.0, height=3.8, columns=len(metrics))
    for ax, (column, label) in zip(axes[0], metrics):
        for index, model in enumerate(models):
            part = at_k[at_k["model"] == model].sort_values("k")
            ax.plot(
                part["k"],
                part[column],
                marker="o",
                markersize=3.5,
                linewidth=1.6,
                label=model,
                color=_colour(model, MODEL_COLOURS, index),
            )
        ax.set_xlabel("k (list length)")
        ax.set_title(label)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(models))  # off the curves
    return png_data_uri(figure)


def activity_plot(by_activity: pd.DataFrame, models: Sequence[str], metric: str, label: str) -> str:
    """Grouped bars: each model's `metric` per activity bucket, the bucket's users under its name.
    by_activity: (model, bucket, label, users, <metric>), buckets as the evaluation numbered them."""
    buckets = by_activity.drop_duplicates("bucket").sort_values("bucket")
    positions = {bucket: number for number, bucket in enumerate(buckets["bucket"])}
    width = 0.8 / max(1, len(models))
    figure, axes = _figure(width=10.0, height=4.0)
    ax = axes[0][0]
    for index, model in enumerate(models):
        part = by_activity[by_activity["model"] == model]
        x = np.array([positions[b] for b in part["bucket"]]) + (index - (len(models) - 1) / 2) * width
        ax.bar(x, part[metric], width=width, label=model, color=_colour(model, MODEL_COLOURS, index))
    users = by_activity.groupby("bucket")["users"].max()
    ax.set_xticks(range(len(buckets)), [f"{row.label}\n{int(users[row.bucket])} users" for row in buckets.itertuples()])
    ax.set_xlabel("ratings of the user in the training part")
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(ncols=len(models), loc="upper left")
    return png_data_uri(figure)


def calibration_plot(calibration: pd.DataFrame, components: Sequence[str], min_pairs: int) -> str:
    """Top: each component's observed share of liked movies against its mean predicted chance per
    bin (bins with at least `min_pairs` pairs and a share above 0, log-log), and the diagonal of a
    perfect calibration.  Bottom: the pairs of every bin, at the bin's mean prediction.
    calibration: the evaluation's bins (component, lower, upper, pairs, predicted, observed), totals left out."""
    figure, axes = _figure(width=10.0, height=6.0, rows=2, sharex=True, height_ratios=[3, 1.3])
    top, bottom = axes[0][0], axes[1][0]
    shown = calibration[(calibration["pairs"] >= min_pairs) & (calibration["observed"] > 0)]
    values = pd.concat([shown["predicted"], shown["observed"]])
    if not values.empty:
        lo, hi = values.min() / 1.5, min(1.0, values.max() * 1.5)
        top.plot([lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1, label="perfectly calibrated")
    for index, component in enumerate(components):
        colour = _colour(component, COMPONENT_COLOURS, index)
        part = shown[shown["component"] == component].sort_values("predicted")
        top.plot(part["predicted"], part["observed"], marker="o", linewidth=1.6, color=colour, label=component)
        every = calibration[calibration["component"] == component].sort_values("predicted")
        bottom.plot(every["predicted"], every["pairs"], marker=".", linewidth=1.2, color=colour)
    top.set_xscale("log")
    top.set_yscale("log")
    top.set_ylabel("observed share liked")
    top.grid(alpha=0.3, which="both")
    top.legend()
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted chance of a like (mean of the bin)")
    bottom.set_ylabel("pairs")
    bottom.grid(alpha=0.3, which="both")
    return png_data_uri(figure)


def score_histogram_plot(histograms: pd.DataFrame, components: Sequence[str], log_x: bool) -> str:
    """Each component's count per bin as a step line; histograms: (component, lower, upper, count)."""
    figure, axes = _figure(width=10.0, height=3.8)
    ax = axes[0][0]
    for index, component in enumerate(components):
        part = histograms[histograms["component"] == component].sort_values("lower")
        if part.empty:
            continue
        ax.stairs(
            part["count"].to_numpy(),
            [*part["lower"], part["upper"].iloc[-1]],
            label=component,
            linewidth=1.8,
            color=_colour(component, COMPONENT_COLOURS, index),
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("chance that the user likes the movie" + (" (log scale)" if log_x else ""))
    ax.set_ylabel("recommended pairs")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return png_data_uri(figure)


def history_plot(history: pd.DataFrame, models: Sequence[str], run_id: str, label: str) -> str:
    """`label` of each model per run over time (started_at), a marker per status, this run
    circled and the active run marked.  history: (run_id, status, started_at, active, <models>)."""
    figure, axes = _figure(width=10.0, height=4.0)
    ax = axes[0][0]
    times = pd.to_datetime(history["started_at"], utc=True, errors="coerce")
    x = times if times.notna().all() else pd.Series(range(len(history)), index=history.index)
    for index, model in enumerate(models):
        if model not in history or history[model].isna().all():
            continue
        colour = _colour(model, MODEL_COLOURS, index)
        ax.plot(
            x,
            history[model],
            color=colour,
            linewidth=1.2 if model == "hybrid" else 0.8,
            alpha=1.0 if model == "hybrid" else 0.6,
            label=model,
        )
        for status, marker in STATUS_MARKERS.items():
            mine = history["status"] == status
            if mine.any():
                ax.scatter(x[mine], history.loc[mine, model], marker=marker, color=colour, s=40, zorder=3)
    for status, marker in STATUS_MARKERS.items():
        if (history["status"] == status).any():
            ax.scatter([], [], marker=marker, color="0.3", label=status)
    this = history["run_id"] == run_id
    if this.any() and "hybrid" in history:
        ax.scatter(
            x[this],
            history.loc[this, "hybrid"],
            s=260,
            facecolors="none",
            edgecolors="black",
            linewidths=1.5,
            zorder=4,
            label="this run",
        )
    for i in history.index[history["active"].astype(bool)]:
        ax.annotate(
            "active",
            (x[i], history.loc[i, "hybrid"]),
            textcoords="offset points",
            xytext=(0, 10),
            ha="center",
            fontsize=9,
        )
    if x is times:
        import matplotlib.dates as mdates

        lo, hi = times.min(), times.max()
        pad = max((hi - lo) * 0.05, pd.Timedelta(hours=12))  # one run: a day around it, not years
        ax.set_xlim(lo - pad, hi + pad)
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        ax.set_xticks(list(x), list(history["run_id"]), rotation=30, ha="right")
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", ncols=3, fontsize=9)
    return png_data_uri(figure)
