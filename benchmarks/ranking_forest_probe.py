"""A probe for issue 13: does a forest trained on a ranking label lift the hybrid?

Today's forest regresses the rating of pairs the user already rated, which says little about
which unrated movie the user will rate next, and like.  This probe trains the same forest
(the same features, trees, depth and seed) on the question the ranking asks instead:

1. an inner split is carved out of the training part (`benchmarks/peers.py`'s `splits_of`:
   each user's latest 20% of training for the temporal split, a random 25% for the random one);
2. every model is fitted on the inner fit part (`protocol.fit_models`), and each validation
   user's candidates are drawn by the batch's rule (`protocol.candidate_scores`: ALS top-n ∪
   content top-n, none rated);
3. a candidate is labelled 1 if the user rated it >= 4 in the inner validation part, else 0,
   and the forest regresses that label on the pair's features from the fit part;
4. that forest replaces the rating forest in the models fitted on the whole training part,
   and `protocol.measure_split` measures the hybrid on the test part, with the default
   calibration and with one refitted on the inner validation part (the forest of half the
   validation users, calibrated on the other half's candidates, so the calibration does not
   see the labels its forest was trained on).

No choice sees the test part.  Prints NDCG@10 (relevant = rating >= 4) of the hybrid, ALS
alone, content alone and most popular, and the hybrid's top-10 coverage, for the rating
forest (the baseline) and the ranking forest.

    python benchmarks/ranking_forest_probe.py --data-dir ../shared/data/ml-latest-small --split both --seed 42
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import click
from pyspark.ml.regression import RandomForestRegressionModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (benchmarks/peers.py: the splits and the ingest)

from movierec import config  # noqa: E402
from movierec import features as FE  # noqa: E402
from movierec.config import Settings  # noqa: E402
from movierec.data.schemas import MOVIE, RATING, USER  # noqa: E402
from movierec.evaluation import metrics as M  # noqa: E402
from movierec.evaluation import protocol as P  # noqa: E402
from movierec.evaluation.tuning import calibrate_components  # noqa: E402
from movierec.models.forest import rf_estimator  # noqa: E402

LIKED = "liked"


def labelled_candidates(inner: P.FittedModels, fit: DataFrame, valid: DataFrame, settings: Settings) -> DataFrame:
    """The validation users' candidates under the inner models, with their pair features from the
    fit part and liked = 1.0 if the user rated the movie >= 4 in `valid`, else 0.0 (materialised)."""
    users = valid.select(USER).distinct()
    found = P.candidate_scores(inner, fit.join(users, USER, "left_semi"), users, settings, P.K)
    liked = valid.where(F.col(RATING) >= P.RELEVANT_THRESHOLD).select(USER, MOVIE, F.lit(1.0).alias(LIKED))
    pairs = found.raw.select(USER, MOVIE).join(liked, [USER, MOVIE], "left").fillna({LIKED: 0.0})
    seen = inner.movie_feats.where(F.col(FE.N_RATINGS) > 0)
    return FE.pair_features(pairs, seen, inner.profiles).localCheckpoint()


def fit_ranking_forest(pairs: DataFrame, settings: Settings) -> RandomForestRegressionModel:
    """The content model's forest (movierec.models.forest.rf_estimator) on the liked label."""
    layout = pairs.repartition(8, USER).sortWithinPartitions(USER, MOVIE)  # a fixed layout: see fit_rf
    return rf_estimator(settings).setLabelCol(LIKED).fit(layout.select(FE.FEATURES, LIKED))


def measured(movies, train, test, known, settings: Settings, forest=None) -> dict:
    """protocol.measure_split's models, with `forest` in place of the rating forest when given."""
    if forest is None:
        return P.measure_split(movies, train, test, known, settings).metrics["models"]
    fit_models = P.fit_models
    P.fit_models = lambda *args: dataclasses.replace(fit_models(*args), forest=forest)
    try:
        return P.measure_split(movies, train, test, known, settings).metrics["models"]
    finally:
        P.fit_models = fit_models


def line(kind: str, label: str, models: dict) -> str:
    ndcg = ", ".join(f"{name} {row[M.NDCG]:.4f}" for name, row in models.items())
    return f"{kind:8} {label:34} NDCG@10 {ndcg}; hybrid coverage {models['hybrid'][M.COVERAGE]:.4f}"


@click.command(help=__doc__.splitlines()[0])
@click.option("--split", type=click.Choice(["temporal", "random", "both"]), default="both", show_default=True)
@click.option("--seed", default=42, show_default=True)
@config.setting_options("data_dir", *config.SPARK_SETTINGS)
def main(split: str, seed: int, settings: Settings) -> int:
    from movierec.spark.session import build_session

    logging.basicConfig(level=logging.WARNING)
    settings = settings.replace(seed=seed, warehouse=str(Path(tempfile.mkdtemp(prefix="movierec-probe-")) / "wh"))
    spark = build_session("ranking-forest-probe", settings)
    started = time.perf_counter()
    lines = []
    try:
        movies, ratings, tags = peers.load(spark, settings)
        for kind in peers.SPLITS if split == "both" else (split,):
            train, test, known, fit, valid = peers.splits_of(kind, ratings, tags, seed)
            lines.append(line(kind, "rating forest (today's)", measured(movies, train, test, known, settings)))
            peers.say(lines[-1])
            inner = P.fit_models(movies, fit, P.tags_before_cutoff(known, fit, valid), settings)
            pairs = labelled_candidates(inner, fit, valid, settings)
            forest = fit_ranking_forest(pairs, settings)
            half = F.abs(F.hash(F.col(USER))) % 2
            half_forest = fit_ranking_forest(pairs.where(half == 0), settings)
            calibration = calibrate_components(
                dataclasses.replace(inner, forest=half_forest), fit, valid.where(half == 1), settings
            )
            peers.say(f"{kind}: calibration on the inner validation part: {calibration}")
            for label, chosen in (
                ("ranking forest, default calibration", settings),
                ("ranking forest, refitted calibration", settings.replace(**calibration)),
            ):
                lines.append(line(kind, label, measured(movies, train, test, known, chosen, forest)))
                peers.say(lines[-1])
    finally:
        spark.stop()
    print(f"data {settings.data_dir}; seed {seed}; {time.perf_counter() - started:.0f} s\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
