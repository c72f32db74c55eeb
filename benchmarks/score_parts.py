"""Wall time of each part of the score stage on a finished run's tables: the candidates alone
(with their cf_raw), the candidates with their content evidence (pair features and the forest,
in the same per-user pass: what the stage runs), the per-user scales and the blend with its
top-K.  Each part is materialised once (Spark's no-op writer) and timed alone; the difference of
the first two is the content evidence's cost.

    python benchmarks/score_parts.py --warehouse /tmp/scale/wh --run-id RUN

Settings come from MOVIEREC_* as everywhere (the candidate counts, the pool, top_k); the run must
have passed featurize, train_als and train_rf.  The figures of the candidates' rewrite are in
benchmarks/candidates.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402


@click.command()
@click.option("--warehouse", required=True, help="the run's warehouse folder")
@click.option("--run-id", required=True, help="a run that has passed train_rf")
def main(warehouse: str, run_id: str) -> None:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.ml.regression import RandomForestRegressionModel

    from movierec import config
    from movierec.data.schemas import MOVIE, USER
    from movierec.ranking import scoring
    from movierec.ranking.candidates import candidates
    from movierec.spark.paths import RunPaths
    from movierec.spark.session import build_session
    from movierec.spark.warehouse import load_model, read_table

    settings = config.from_env(warehouse=warehouse)
    spark = build_session("score-parts", settings)
    paths = RunPaths(settings.warehouse, run_id)
    ratings = read_table(spark, paths.ratings).cache()
    movie_feats = read_table(spark, paths.movie_features)
    profiles = read_table(spark, paths.user_profiles)
    als = load_model(ALSModel, spark, paths.als_model)
    forest = load_model(RandomForestRegressionModel, spark, paths.rf_model)
    print(f"run {run_id}: {ratings.count():,} ratings", flush=True)

    def timed(part: str, frame) -> None:
        started = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        print(f"{part:<12} {time.perf_counter() - started:7.1f} s", flush=True)

    s = settings
    counts = (s.als_candidates, s.content_candidates, s.content_pool)
    timed("candidates", candidates(als, ratings, movie_feats, profiles, *counts))
    pairs = candidates(als, ratings, movie_feats, profiles, *counts, forest=forest)
    raw = pairs.select(USER, MOVIE, *scoring.EVIDENCE.values()).persist()
    timed("+evidence", raw)
    print(f"{'':<12} {raw.count():,} pairs", flush=True)
    scales = scoring.user_scales(raw).persist()
    timed("scales", scales)
    timed("blend+top-k", scoring.top_k(scoring.blend(raw, scales, scoring.Blend.from_settings(s)), s.top_k))
    spark.stop()


if __name__ == "__main__":
    main()
