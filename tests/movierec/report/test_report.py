"""The HTML report: the precision/recall curve against hand-computed values, the histogram
and history helpers, and a page made from a tiny fake run (Spark-written warehouse folder
and a SQLite store) without running the pipeline."""
from __future__ import annotations

import base64
import random
import re

import pandas as pd
import pytest

from movierec.store import runs as store
from movierec.evaluation.metrics import EmptyEvaluation, ranking_metrics
from movierec.report.build import (
    LATEST,
    NoMetrics,
    NoRun,
    curve_check,
    make_report,
    metric_history,
    precision_recall_curve,
    score_histograms,
)

LIST_COLUMNS = ["model", "user_id", "rank", "movie_id"]
TEST_COLUMNS = ["user_id", "movie_id", "rating"]

# the tiny case: 2 users, lists of 3
HELD_OUT = [
    (1, 10, 5.0), (1, 12, 4.0), (1, 11, 3.0),    # user 1: R = {10, 12}; 11 is below 4.0
    (2, 22, 4.0), (2, 23, 4.5), (2, 20, 2.5),    # user 2: R = {22, 23}; 23 never recommended
]
LISTS = {
    "hybrid": {1: [10, 11, 12], 2: [20, 21, 22]},      # hits: user 1 at 1 and 3, user 2 at 3
    "als": {1: [12, 10, 11], 2: [23, 22, 21]},         # hits: user 1 at 1, 2; user 2 at 1, 2
    "content": {1: [13, 14, 10], 2: [24, 25, 26]},     # hits: user 1 at 3
    "popularity": {1: [11, 13, 14], 2: [20, 21, 24]},  # no hits
}


def _lists(lists) -> pd.DataFrame:
    return pd.DataFrame([(model, user, rank, movie) for model, users in lists.items()
                         for user, movies in users.items() for rank, movie in enumerate(movies, start=1)],
                        columns=LIST_COLUMNS)


def _test(rows=HELD_OUT) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def _as_dict(curves: pd.DataFrame) -> dict:
    return {(row.model, row.k): (row.precision, row.recall) for row in curves.itertuples()}


# ---------------------------------------------------------------- the curve

def test_curve_hand_computed_two_users_lists_of_three():
    curves = precision_recall_curve(_lists({"hybrid": LISTS["hybrid"]}), _test(), ks=[1, 2, 3])
    # hybrid: user 1 hits at positions 1 and 3 of [10, 11, 12], |R| = 2;
    #         user 2 hits at position 3 of [20, 21, 22], |R| = 2
    # k=1: user 1 1 hit -> P 1/1, R 1/2; user 2 0 -> 0, 0.  mean P (1 + 0)/2 = 0.5,    R (1/2 + 0)/2 = 0.25
    # k=2: user 1 1 hit -> P 1/2, R 1/2; user 2 0 -> 0, 0.  mean P (1/2 + 0)/2 = 0.25, R (1/2 + 0)/2 = 0.25
    # k=3: user 1 2 hits -> P 2/3, R 1; user 2 1 -> 1/3, 1/2. mean P (2/3 + 1/3)/2 = 0.5, R (1 + 1/2)/2 = 0.75
    expected = {("hybrid", 1): (0.5, 0.25), ("hybrid", 2): (0.25, 0.25), ("hybrid", 3): (0.5, 0.75)}
    got = _as_dict(curves)
    assert got.keys() == expected.keys()
    for key, (precision, recall) in expected.items():
        assert got[key] == pytest.approx((precision, recall), abs=1e-12), key
    assert list(curves.columns) == ["model", "k", "precision", "recall", "users"]
    assert set(curves["users"]) == {2}


def test_curve_models_in_table_order_and_missing_lists_count_zero():
    lists = _lists(LISTS)
    lists = lists[~((lists["model"] == "content") & (lists["user_id"] == 2))]   # content has no list for user 2
    curves = precision_recall_curve(lists.iloc[::-1], _test(), ks=[3, 1])        # rows and ks in any order
    assert list(dict.fromkeys(curves["model"])) == ["hybrid", "als", "content", "popularity"]
    got = _as_dict(curves)
    # als k=1: both users hit at 1 -> P 1, R 1/2 each -> (1, 0.5); k=3: 2 hits each -> P 2/3, R 1
    assert got[("als", 1)] == pytest.approx((1.0, 0.5))
    assert got[("als", 3)] == pytest.approx((2 / 3, 1.0))
    # content k=3: user 1 hit at 3 -> P 1/3, R 1/2; user 2 (no list) 0 -> mean (1/6, 1/4)
    assert got[("content", 3)] == pytest.approx((1 / 6, 0.25))
    assert got[("popularity", 3)] == (0.0, 0.0)


def test_curve_reads_rank_order_not_row_order_and_a_short_list_divides_by_k():
    # ranks 5, 9, 2 with a gap: the list is [12, 10, 11]
    lists = pd.DataFrame([("m", 1, 5, 10), ("m", 1, 9, 11), ("m", 1, 2, 12)], columns=LIST_COLUMNS)
    got = _as_dict(precision_recall_curve(lists, _test([(1, 10, 5.0), (1, 12, 4.0)]), ks=[1, 4]))
    # k=1: [12] hits -> P 1, R 1/2; k=4: [12, 10, 11] 2 hits -> P 2/4, R 2/2
    assert got == {("m", 1): pytest.approx((1.0, 0.5)), ("m", 4): pytest.approx((0.5, 1.0))}


def test_curve_without_threshold_counts_every_held_out_movie():
    got = _as_dict(precision_recall_curve(_lists({"hybrid": LISTS["hybrid"]}), _test(), ks=[3],
                                          relevant_threshold=None))
    # user 1: R = {10, 11, 12}, all 3 recommended -> P 1, R 1; user 2: R = {20, 22, 23}, 20 and 22 -> P 2/3, R 2/3
    assert got[("hybrid", 3)] == pytest.approx(((1 + 2 / 3) / 2, (1 + 2 / 3) / 2))


def test_curve_rejects_bad_ks_and_nothing_relevant():
    with pytest.raises(ValueError, match="ks"):
        precision_recall_curve(_lists(LISTS), _test(), ks=[])
    with pytest.raises(ValueError, match="ks"):
        precision_recall_curve(_lists(LISTS), _test(), ks=[0, 1])
    with pytest.raises(EmptyEvaluation):
        precision_recall_curve(_lists(LISTS), _test([(1, 10, 2.0)]), ks=[1])


def test_curve_check_names_each_disagreement():
    curves = precision_recall_curve(_lists({"hybrid": LISTS["hybrid"]}), _test(), ks=[3])
    # at k = 3 the hybrid has precision 0.5 and recall 0.75 (hand-computed above)
    assert curve_check(curves, {"hybrid": {"precision": 0.5, "recall": 0.75}}, k=3) == []
    assert curve_check(curves, {"hybrid": {"precision": 0.5, "recall": 0.7}}, k=3) == [
        "hybrid recall@3: curve 0.750000, metrics 0.700000"]
    assert curve_check(curves, {"als": {"precision": 0.1}}, k=3) == []     # nothing to compare


@pytest.mark.spark
def test_curve_agrees_with_the_spark_metrics(spark):
    rng = random.Random(3)
    lists = {"m": {u: rng.sample(range(30), 8) for u in range(1, 21)}}
    held = [(u, m, rng.choice([2.0, 3.5, 4.0, 5.0])) for u in range(1, 24) for m in rng.sample(range(30), 5)]
    curves = _as_dict(precision_recall_curve(_lists(lists), _test(held), ks=range(1, 11)))
    recs = spark.createDataFrame(_lists(lists).drop(columns="model"))
    test = spark.createDataFrame(_test(held))
    for k in (3, 10):
        spark_metrics = ranking_metrics(recs, test, k=k, relevant_threshold=4.0)
        assert curves[("m", k)] == pytest.approx((spark_metrics["precision"], spark_metrics["recall"]), abs=1e-12)


# ---------------------------------------------------------------- histograms and history

@pytest.mark.spark
def test_score_histograms_bins_by_hand(spark):
    recs = spark.createDataFrame([(0.0, 0.1), (0.04, 0.1), (0.5, 0.95), (0.99, 0.2), (1.0, 0.3)],
                                 "cf_score double, cb_score double")
    h = score_histograms(recs, bins=10)
    counts = {(row.component, round(row.lower, 2)): row.count for row in h.itertuples() if row.count}
    # cf: 0.0, 0.04 -> [0, 0.1); 0.5 -> [0.5, 0.6); 0.99 and 1.0 (the last bin is closed) -> [0.9, 1]
    # cb: 0.1, 0.1 -> [0.1, 0.2); 0.2 -> [0.2, 0.3); 0.3 -> [0.3, 0.4); 0.95 -> [0.9, 1]
    assert counts == {("cf_score", 0.0): 2, ("cf_score", 0.5): 1, ("cf_score", 0.9): 2,
                      ("cb_score", 0.1): 2, ("cb_score", 0.2): 1, ("cb_score", 0.3): 1, ("cb_score", 0.9): 1}
    assert len(h) == 20 and h["upper"].max() == 1.0


def test_metric_history_oldest_first_published_and_rejected_only():
    runs = [  # as list_runs gives them: newest first
        {"run_id": "r5", "status": "failed", "metrics": None, "active": False, "started_at": "5"},
        {"run_id": "r4", "status": "published", "active": True, "started_at": "4",
         "metrics": {"models": {"hybrid": {"ndcg": 0.31}}}},
        {"run_id": "r3", "status": "rejected", "active": False, "started_at": "3",
         "metrics": {"models": {"hybrid": {"ndcg": 0.2}}}},
        {"run_id": "r2", "status": "published", "active": False, "started_at": "2", "metrics": {}},
        {"run_id": "r1", "status": "published", "active": False, "started_at": "1",
         "metrics": {"models": {"hybrid": {"ndcg": 0.3}}}},
    ]
    history = metric_history(runs)
    assert history.to_dict("records") == [
        {"run_id": "r1", "status": "published", "started_at": "1", "active": False, "value": 0.3},
        {"run_id": "r3", "status": "rejected", "started_at": "3", "active": False, "value": 0.2},
        {"run_id": "r4", "status": "published", "started_at": "4", "active": True, "value": 0.31},
    ]


# ---------------------------------------------------------------- a page from a fake run

RUN = "run-3"
METRICS = {
    "protocol": {"holdout_share": 0.2, "k": 10, "relevant": "held-out rating >= 4.0",
                 "train_ratings": 24, "test_ratings": 6, "catalogue": 31},
    # precision@10 and recall@10 are what LISTS give at k = 10 (lists of 3, so hits / 10):
    # hybrid 2 and 1 hits -> P (0.2 + 0.1)/2 = 0.15, R (1 + 1/2)/2 = 0.75; als 2 and 2 -> 0.2, 1.0;
    # content 1 and 0 -> 0.05, 0.25; popularity none -> 0, 0.  The other values are arbitrary.
    "models": {
        "hybrid": {"ndcg": 0.6123, "precision": 0.15, "recall": 0.75, "map": 0.5432, "hit_rate": 1.0,
                   "coverage": 0.0321, "ndcg_all": 0.7012, "precision_all": 0.25, "users": 2},
        "als": {"ndcg": 0.8765, "precision": 0.2, "recall": 1.0, "map": 0.8111, "hit_rate": 1.0,
                "coverage": 0.0645, "ndcg_all": 0.8222, "precision_all": 0.2, "users": 2},
        "content": {"ndcg": 0.1532, "precision": 0.05, "recall": 0.25, "map": 0.0833, "hit_rate": 0.5,
                    "coverage": 0.0968, "ndcg_all": 0.1444, "precision_all": 0.05, "users": 2,
                    "rmse": 0.9137, "mae": 0.7011},
        "popularity": {"ndcg": 0.0, "precision": 0.0, "recall": 0.0, "map": 0.0, "hit_rate": 0.0,
                       "coverage": 0.0097, "ndcg_all": 0.0789, "precision_all": 0.1, "users": 2},
    },
}


def _ratings():
    """12 early ratings per user, then the 3 latest: floor(0.2 * 15) = 3 are held out = HELD_OUT."""
    rows = []
    for user in (1, 2):
        rows += [(user, 100 * user + i, 3.0, 1000 + i) for i in range(12)]
        rows += [(u, movie, rating, 2000 + i) for i, (u, movie, rating) in enumerate(HELD_OUT) if u == user]
    return rows


def _write_run(spark, settings, run_id, metrics=True):
    from movierec.spark.paths import RunPaths
    from movierec.data.schemas import RATINGS, RECOMMENDATIONS
    from movierec.spark.warehouse import write_json, write_table

    paths = RunPaths(settings.warehouse, run_id)
    write_table(spark.createDataFrame(_ratings(), RATINGS), paths.ratings)
    write_json(spark, paths.ingest_report, {"data_dir": "tiny", "ratings": {"rows": 30, "rejected": {}}})
    if not metrics:
        return paths
    write_json(spark, paths.metrics, METRICS)
    write_table(spark.createDataFrame(_lists(LISTS)), paths.evaluation_details)
    recs = [(1, 1, 13, 0.9, 0.95, 0.8), (1, 2, 14, 0.5, 0.55, 0.4), (2, 1, 24, 0.7, 0.75, 0.6),
            (2, 2, 25, 0.3, 0.05, 0.85)]
    write_table(spark.createDataFrame(recs, RECOMMENDATIONS), paths.recommendations)
    write_json(spark, paths.als_report, {"rank": 8, "reg": 0.1, "alpha": 5.0, "iterations": 5})
    return paths


def _publish(engine, run_id, started, ndcg, params):
    store.begin_run(engine, run_id, params, started)
    store.load_rows(engine, "recommendations", run_id, [[(1, 1, 13, 0.9, 0.95, 0.8)]])
    store.activate_run(engine, run_id, {"models": {"hybrid": {"ndcg": ndcg}}}, started)


@pytest.fixture()
def fake_run(spark, settings, tmp_path):
    """A warehouse folder for RUN and a store in which RUN is active after r-old (published)
    and r-bad (rejected)."""
    settings = settings.replace(warehouse=str(tmp_path / "warehouse"), db_url=f"sqlite:///{tmp_path / 'store.db'}")
    _write_run(spark, settings, RUN)
    engine = store.engine_for(settings.db_url)
    params = {**settings.to_dict(), "db_url": "postgresql+psycopg://movierec:secret@db.example:5432/movierec"}
    _publish(engine, "r-old", "2024-01-01T00:00:00+00:00", 0.58, params)
    store.begin_run(engine, "r-bad", params, "2024-01-02T00:00:00+00:00")
    store.reject_run(engine, "r-bad", "hybrid NDCG@10 below the active run's",
                     {"models": {"hybrid": {"ndcg": 0.4321}}})
    store.begin_run(engine, RUN, params, "2024-01-03T00:00:00+00:00")
    store.load_rows(engine, "recommendations", RUN, [[(1, 1, 13, 0.9, 0.95, 0.8)]])
    store.activate_run(engine, RUN, METRICS, "2024-01-03T01:00:00+00:00")
    engine.dispose()
    return settings


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.spark
def test_report_of_the_active_run_is_self_contained(spark, fake_run, tmp_path):
    out = tmp_path / "reports"
    path = make_report(spark, fake_run, None, out)           # no run id: the store's active run

    assert path == out / f"{RUN}.html"
    page = path.read_text(encoding="utf-8")
    assert (out / LATEST).read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>")

    # the metrics table and protocol, as the metrics JSON has them (4 decimals)
    for value in ("0.6123", "0.5432", "0.0321", "0.7012", "0.8765", "0.1532", "0.9137", "0.7011", "0.0789"):
        assert value in page, value
    for heading in ("NDCG@10", "MAP@10", "hit rate@10", "coverage@10", "NDCG@10, all held-out relevant",
                    "content RMSE", "content MAE"):
        assert f"<th>{heading}</th>" in page, heading
    assert "held-out rating &gt;= 4.0" in page and "holdout_share" in page and "<td>31</td>" in page

    # the curves were recomputed from the lists and the re-derived hold-out, and match the metrics
    assert "the curves agree with the metrics table" in page
    curve_rows = re.findall(r"<tr><td class=text>(\w+)</td>((?:<td>[^<]*</td>){10})</tr>", page)
    table = {model: re.findall(r"<td>([^<]*)</td>", cells) for model, cells in curve_rows}
    # hybrid precision@1, 5, 10, 20, 50 then recall@ the same: at k = 1 (0.5, 0.25) by hand above,
    # k >= 3 all hits are in: precision 1.5/k (0.3, 0.15, 0.075, 0.03), recall 0.75
    assert table["hybrid"] == ["0.5000", "0.3000", "0.1500", "0.0750", "0.0300",
                               "0.2500", "0.7500", "0.7500", "0.7500", "0.7500"]

    # one inline PNG per plot, nothing fetched from elsewhere
    images = re.findall(r'<img id="plot-(\w+)"[^>]* src="([^"]+)"', page)
    assert [name for name, _ in images] == ["precision", "recall", "scores", "history"]
    for _, src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert len(re.findall(r"<img\b", page)) == 4
    assert not EXTERNAL.search(page)
    assert "<script" not in page and "<link" not in page

    # history: oldest first, the rejected run marked; the active run in bold
    history = re.findall(r"<tr(?: class=\"active\")?><td class=text>(r-old|r-bad|run-3)</td><td class=text>(\w+)</td>",
                         page)
    assert history == [("r-old", "published"), ("r-bad", "rejected"), (RUN, "published")]
    assert '<tr class="active"><td class=text>run-3</td>' in page and "0.4321" in page

    # score distributions: 4 pairs; cf 0.95, 0.55, 0.75, 0.05 -> mean 2.3/4 = 0.575;
    # cb 0.8, 0.4, 0.6, 0.85 -> mean 2.65/4 = 0.6625
    assert "<td class=text>cf_score</td><td>4</td><td>0.5750</td><td>0.0500</td><td>0.9500</td>" in page
    assert "<td class=text>cb_score</td><td>4</td><td>0.6625</td><td>0.4000</td><td>0.8500</td>" in page

    # parameters: the settings from the store (password hidden) and the stage reports
    assert "als_rank" in page and "Stage report: train_als" in page and "Stage report: ingest" in page
    assert "secret" not in page and "***" in page
    assert "<td class=text>quality_tolerance</td><td>0.05</td>" in page
    assert "status in the store</td><td class=text>published (active)" in page


@pytest.mark.spark
def test_report_cli_writes_the_named_run(spark, fake_run, tmp_path, capsys):
    from movierec.cli import main

    out = tmp_path / "cli-reports"
    code = main(["report", "--run-id", "r-old", "--out-dir", str(out),
                 "--warehouse", fake_run.warehouse, "--db-url", fake_run.db_url])
    # r-old has metrics only in the store (no warehouse folder): a page without curves or scores
    assert code == 0, capsys.readouterr().err
    page = (out / "r-old.html").read_text(encoding="utf-8")
    assert (out / LATEST).read_text(encoding="utf-8") == page
    assert "metrics from</td><td class=text>the store" in page and "0.5800" in page
    assert "No precision/recall curves" in page and "No score distributions" in page
    assert re.findall(r'<img id="plot-(\w+)"', page) == ["history"]
    assert str(out / "r-old.html") in capsys.readouterr().out
    assert spark.range(1).count() == 1          # the shared session still runs


@pytest.mark.spark
def test_run_without_metrics_is_a_clear_error(spark, settings, tmp_path, capsys):
    from movierec.cli import main

    settings = settings.replace(warehouse=str(tmp_path / "warehouse"), db_url=f"sqlite:///{tmp_path / 'store.db'}")
    _write_run(spark, settings, "no-metrics", metrics=False)
    with pytest.raises(NoMetrics, match=r"run no-metrics has no evaluation metrics.*evaluate"):
        make_report(spark, settings, "no-metrics", tmp_path / "reports")
    with pytest.raises(NoRun, match="no active run"):
        make_report(spark, settings, None, tmp_path / "reports")

    code = main(["report", "--run-id", "no-metrics", "--out-dir", str(tmp_path / "reports"),
                 "--warehouse", settings.warehouse, "--db-url", settings.db_url])
    assert code == 1
    assert "movierec report: run no-metrics has no evaluation metrics" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
