"""Measure model settings on the inner validation part of either split (issue 13's re-tuning).

`movierec tune` searches on the temporal validation split only.  This measures a given list
of settings on the inner split that `benchmarks/peers.py` tunes its peers on, for the
temporal split, the random one or both: each point's models are fitted on the inner fit part
(`movierec.evaluation.tuning`'s shared fits: content features once, an ALS model or forest
per distinct combination) and measured on the inner validation part by
`tuning.validation_metrics` (hybrid, ALS alone and content alone NDCG@10, relevant = rating
>= 4, and the hybrid's top-10 coverage).  The test part is never read.

    python benchmarks/validation_grid.py --data-dir ../shared/data/ml-latest-small --split both \\
        --grid 'als_rank=48,als_reg=0.1; als_rank=128,als_reg=0.3'
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (benchmarks/peers.py: the splits and the ingest)

from movierec import config  # noqa: E402
from movierec.config import Settings  # noqa: E402
from movierec.data.schemas import MOVIE  # noqa: E402
from movierec.evaluation import protocol as P  # noqa: E402
from movierec.evaluation import tuning  # noqa: E402

METRICS = ("hybrid", "als", "content", "coverage")


def parse_grid(text: str) -> list[dict[str, Any]]:
    """'als_rank=48,als_reg=0.1; als_rank=128' -> one dict of Settings overrides per point,
    each value of its field's type (validated by Settings itself when applied)."""
    kinds = {f.name: type(f.default) for f in dataclasses.fields(Settings)}
    points = []
    for chunk in (c.strip() for c in text.split(";")):
        if not chunk:
            continue
        point: dict[str, Any] = {}
        for item in chunk.split(","):
            name, sep, value = (part.strip() for part in item.partition("="))
            if not sep or name not in kinds:
                raise click.BadParameter(f"{item.strip()!r} is not SETTING=VALUE with a movierec setting")
            try:
                point[name] = kinds[name](value) if kinds[name] is not bool else value.lower() in ("1", "true")
            except ValueError:
                raise click.BadParameter(f"{name}={value!r}: not a {kinds[name].__name__}") from None
        points.append(point)
    if not points:
        raise click.BadParameter("give at least one point")
    return points


def run(spark, settings: Settings, splits: list[str], points: list[dict[str, Any]], seed: int) -> list[dict]:
    """One row per split and point: the split, the point's overrides, METRICS and the seconds it took."""
    movies, ratings, tags = peers.load(spark, settings)
    rows = []
    for kind in splits:
        _, _, known, fit, valid = peers.splits_of(kind, ratings, tags, seed)
        catalogue = fit.select(MOVIE).distinct().count()
        models = tuning._Models(movies, fit, P.tags_before_cutoff(known, fit, valid))
        for point in points:
            chosen = settings.replace(seed=seed, **point)
            started = time.perf_counter()
            metrics = tuning.validation_metrics(models.for_settings(chosen), fit, valid, chosen, catalogue)
            rows.append({"split": kind, **point, **metrics, "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)  # kept in the log should a later point fail
    return rows


def markdown_table(rows: list[dict], points: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(name for point in points for name in point))
    lines = ["| split | " + " | ".join(names) + " | hybrid | ALS | content | coverage | s |"]
    lines.append("|" + "---|" * (len(names) + 6))
    for row in rows:
        cells = [str(row.get(name, "")) for name in names] + [f"{row[m]:.4f}" for m in METRICS]
        lines.append(f"| {row['split']} | " + " | ".join(cells) + f" | {row['seconds']:.0f} |")
    return "\n".join(lines)


@click.command(help=__doc__.splitlines()[0])
@click.option("--split", type=click.Choice(["temporal", "random", "both"]), default="both", show_default=True)
@click.option("--grid", required=True, help="points separated by ';', each SETTING=VALUE pairs separated by ','")
@click.option("--seed", default=42, show_default=True, help="draws the random split and seeds every fit")
@config.setting_options("data_dir", *config.SPARK_SETTINGS)
def main(split: str, grid: str, seed: int, settings: Settings) -> int:
    from movierec.spark.session import build_session

    logging.basicConfig(level=logging.WARNING)
    points = parse_grid(grid)
    kinds = ["temporal", "random"] if split == "both" else [split]
    settings = settings.replace(warehouse=str(Path(tempfile.mkdtemp(prefix="movierec-grid-")) / "warehouse"))
    spark = build_session("validation-grid", settings)
    try:
        rows = run(spark, settings, kinds, points, seed)
    finally:
        spark.stop()
    print(f"\ndata {settings.data_dir}; seed {seed}; inner validation of each split\n")
    print(markdown_table(rows, points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
