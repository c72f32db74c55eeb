"""benchmarks/ranking_forest_probe.py: the ranking label is exactly "rated >= 4 in the inner
validation part", on candidates the fit part never rated, and the forest learns a chance."""

from __future__ import annotations

import pytest

pytest.importorskip("implicit", reason="the bench extra: pip install -e '.[bench]'")

from benchmarks import ranking_forest_probe as R  # noqa: E402


def test_candidates_are_labelled_by_the_validation_likes_and_the_forest_predicts_a_chance(
    spark, settings, small_data, tmp_path
):
    from pyspark.sql import functions as F

    from movierec.evaluation import protocol as P

    run_settings = settings.replace(data_dir=str(small_data), warehouse=str(tmp_path / "warehouse"))
    movies, ratings, tags = R.peers.load(spark, run_settings)
    train, test, known, fit, valid = R.peers.splits_of("temporal", ratings, tags, 42)
    inner = P.fit_models(movies, fit, P.tags_before_cutoff(known, fit, valid), run_settings)

    pairs = R.labelled_candidates(inner, fit, valid, run_settings)

    labels = {(r.user_id, r.movie_id): r.liked for r in pairs.select("user_id", "movie_id", R.LIKED).collect()}
    assert len(labels) == pairs.count()  # one row per candidate pair
    likes = {(r.user_id, r.movie_id) for r in valid.where(F.col("rating") >= 4).collect()}
    assert {pair for pair, liked in labels.items() if liked == 1.0} == likes & set(labels)
    assert set(labels.values()) == {0.0, 1.0}
    rated = {(r.user_id, r.movie_id) for r in fit.select("user_id", "movie_id").collect()}
    assert not rated & set(labels)
    assert {user for user, _ in labels} == {r.user_id for r in valid.select("user_id").distinct().collect()}

    forest = R.fit_ranking_forest(pairs, run_settings)
    chances = [r[0] for r in forest.transform(pairs).select(forest.getPredictionCol()).collect()]
    assert 0.0 <= min(chances) and max(chances) <= 1.0 and max(chances) > min(chances)
