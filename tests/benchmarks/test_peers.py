"""benchmarks/peers.py: the peers' closed forms against hand-computed values (numpy only), the
search's widening, and one quick run on generated data whose every figure is the metrics module's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("implicit", reason="the bench extra: pip install -e '.[bench]'")
from scipy import sparse  # noqa: E402

from benchmarks import peers as B  # noqa: E402


def test_ease_two_items_by_hand():
    # users: 1 and 2 liked both items, 3 liked item 0 only -> XᵀX = [[3, 2], [2, 2]]
    # with λ = 1, B_ij (item i's weight in predicting item j) is the ridge coefficient
    # x_i·x_j / (x_i·x_i + λ): B_01 = 2 / (3 + 1), B_10 = 2 / (2 + 1)
    liked = sparse.csr_matrix(np.array([[1, 1], [1, 1], [1, 0]], dtype=float))
    weights = B.ease_weights(liked, 1.0)
    np.testing.assert_allclose(weights, [[0.0, 0.5], [2 / 3, 0.0]])


def test_ease_is_ridge_on_the_other_items_and_ranks_co_liked_first():
    # items a b c d; a is co-liked with b twice, never with c or d
    x = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], dtype=float)
    lam = 2.0
    weights = B.ease_weights(sparse.csr_matrix(x), lam)
    for j in range(4):  # column j: ridge regression of item j on the other items (diag(B) = 0)
        others = [i for i in range(4) if i != j]
        xo = x[:, others]
        ridge = np.linalg.solve(xo.T @ xo + lam * np.eye(3), xo.T @ x[:, j])
        np.testing.assert_allclose(weights[others, j], ridge, atol=1e-12)
        assert weights[j, j] == 0.0
    scores = B.ease_scores(sparse.csr_matrix(x), lam)
    ranking = B.top_k(scores[4:5], sparse.csr_matrix(x[4:5]), 3)[0]
    assert ranking[0] == 1  # the user who liked only a: b first; a itself never recommended
    assert 0 not in ranking


def test_top_k_never_recommends_rated_and_breaks_ties_by_column_order():
    scores = np.array([[0.0, 5.0, 0.0, 1.0, 0.0]])
    rated = sparse.csr_matrix(np.array([[0, 1, 0, 0, 0]]))
    # 1 is rated: 3 first, then the zeros in column order (most popular first)
    assert B.top_k(scores, rated, 3).tolist() == [[3, 0, 2]]


def test_spark_confidence():
    # Spark's implicit ALS: preference 1 if v > 0, confidence 1 + alpha |v|; implicit reads sign and size
    np.testing.assert_allclose(B.spark_confidence(np.array([2.0, -0.5, 0.0]), 4.0), [9.0, -3.0, 0.0])


def test_coordinate_search_widens_until_the_best_is_inside():
    calls = []

    def measure(points):
        calls.append(len(points))
        return [-((np.log2(p["x"]) - 6) ** 2) - (p["y"] - 1) ** 2 for p in points]  # best x = 64, y = 1

    axes = {"x": B.Axis((1.0, 2.0, 4.0)), "y": B.Axis((0.0, 1.0, 2.0), ratio=1.0)}
    found = B.coordinate_search(measure, axes, {"x": 2.0, "y": 0.0}, widen=True)
    assert found.best == {"x": 64.0, "y": 1.0}
    assert found.on_edge == []
    # the x grid widened to 128 (one past the best) and no point was measured twice
    assert B.key({"x": 128.0, "y": 0.0}) in found.scores and B.key({"x": 256.0, "y": 0.0}) not in found.scores
    assert sum(calls) == len(found.scores)


def test_coordinate_search_reports_a_best_value_it_could_not_widen_past():
    axes = {"x": B.Axis((1.0, 2.0, 4.0), high=4.0)}
    found = B.coordinate_search(lambda ps: [p["x"] for p in ps], axes, {"x": 1.0}, widen=True)
    assert found.best == {"x": 4.0} and found.on_edge == ["x"]


@pytest.mark.spark
@pytest.mark.slow
def test_quick_run_every_peer_and_the_metrics_modules_figures(spark, settings, small_data, tmp_path):
    from movierec.evaluation import metrics as M

    run_settings = settings.replace(data_dir=str(small_data), warehouse=str(tmp_path / "warehouse"))
    # one split: the random one goes through the same code (its split is tests/movierec/data/test_split.py's)
    results = B.run(spark, run_settings, ["temporal"], [42], quick=True)

    assert [(r.split, r.seed) for r in results] == [("temporal", 42)]
    peer_names = ["most popular", "EASE^R", "implicit ALS, binary", "implicit ALS, rating", "implicit ALS, centred"]
    for r in results:
        rows = list(r.metrics)
        assert rows[:6] == [
            *B.MOVIEREC_ROWS.values(),
            "seed's configuration: hybrid",
            "seed's configuration: ALS alone",
        ]
        assert rows[6:] == peer_names
        assert set(r.chosen) == set(peer_names)
        assert r.chosen["EASE^R"].best["lam"] in (10.0, 100.0)
        for name in peer_names:
            assert 0.0 < r.metrics[name][M.NDCG] <= 1.0, (r.split, name)

    # the peers' figures are the metrics module's on the same lists and the same hold-out
    temporal = results[0]
    train, test, *_ = B.splits_of("temporal", *_ratings_and_tags(spark, run_settings), 42)
    lists = spark.createDataFrame(temporal.lists, B.LISTS_SCHEMA)
    ease = lists.where(f"{B.P.MODEL} = 'EASE^R'")
    expected = M.ranking_metrics(ease, test, k=10, relevant_threshold=4.0)
    catalogue = train.select("movie_id").distinct().count()
    for metric in (M.NDCG, M.PRECISION, M.RECALL):
        assert temporal.metrics["EASE^R"][metric] == pytest.approx(expected[metric], abs=1e-12)
    assert temporal.metrics["EASE^R"][M.COVERAGE] == pytest.approx(M.catalogue_coverage(ease, catalogue, k=10))
    # already-rated movies are never recommended
    assert lists.join(train, ["user_id", "movie_id"], "left_semi").count() == 0

    table = B.markdown_table(results)
    for name in peer_names:
        assert f"| {name} |" in table


def _ratings_and_tags(spark, settings):
    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import read_table

    paths = RunPaths(settings.warehouse, "peers")
    return read_table(spark, paths.ratings), read_table(spark, paths.tags)
