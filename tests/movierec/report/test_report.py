"""The HTML report: its pure helpers by hand, the page rendered from hand-made data (sections,
images, escaping), a page made from a tiny fake run (a Spark-written warehouse folder and a
SQLite store) including where the warehouse comes from and what happens when the run's data is
not there, the template loaded from the --py-files zip, and the report of a real pipeline run."""

from __future__ import annotations

import base64
import math
import re
import subprocess
import sys

import pandas as pd
import pytest

from movierec.report.build import (
    DEFAULT_WAREHOUSE,
    LATEST,
    IncompleteEvaluation,
    NoMetrics,
    NoRun,
    ReportData,
    choose_warehouse,
    histogram_edges,
    make_report,
    metric_history,
    render_html,
    score_histograms,
    warehouse_given,
)
from movierec.store import runs as store

HOSTILE = "<script>alert('x')</script>"
IMAGES = ["at-k", "activity", "calibration", "scores", "history"]
SECTIONS = ["glance", "metrics", "at-k", "activity", "calibration", "scores", "history", "parameters"]
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


# ---------------------------------------------------------------- pure helpers


def test_metric_history_every_run_with_metrics_oldest_first():
    runs = [  # as list_runs gives them: newest first
        {"run_id": "r5", "status": "failed", "metrics": {}, "active": False, "started_at": "5"},
        {
            "run_id": "r4",
            "status": "published",
            "active": True,
            "started_at": "4",
            "metrics": {"models": {"hybrid": {"ndcg": 0.31}, "als": {"ndcg": 0.29}}},
        },
        {
            "run_id": "r3",
            "status": "rejected",
            "active": False,
            "started_at": "3",
            "metrics": {"models": {"hybrid": {"ndcg": 0.2}, "popularity": {"ndcg": 0.25}}},
        },
        {
            "run_id": "r2",
            "status": "loading",
            "active": False,
            "started_at": "2",
            "metrics": {"models": {"hybrid": {"ndcg": 0.1}}},
        },
        {"run_id": "r1", "status": "published", "active": False, "started_at": "1", "metrics": None},
    ]
    history = metric_history(runs, models=("hybrid", "als", "popularity"))
    assert list(history["run_id"]) == ["r2", "r3", "r4"]  # r1, r5: no metrics
    assert list(history["status"]) == ["loading", "rejected", "published"]
    assert list(history["active"]) == [False, False, True]
    assert list(history["hybrid"]) == [0.1, 0.2, 0.31]
    assert math.isnan(history["als"][0]) and history["als"][2] == 0.29 and history["popularity"][1] == 0.25


def test_histogram_edges_over_the_observed_range():
    # 0.01 .. 1.0 spans 100x: log-spaced, 0.01, 0.1, 1.0
    edges, log_scale = histogram_edges(0.01, 1.0, bins=2)
    assert log_scale and edges == pytest.approx([0.01, 0.1, 1.0]) and edges[0] == 0.01 and edges[-1] == 1.0
    # 0.2 .. 0.8 spans 4x: equal width
    assert histogram_edges(0.2, 0.8, bins=3) == (pytest.approx([0.2, 0.4, 0.6, 0.8]), False)
    # a zero: equal width from it
    assert histogram_edges(0.0, 0.5, bins=2) == (pytest.approx([0.0, 0.25, 0.5]), False)
    assert histogram_edges(0.3, 0.3) == (pytest.approx([0.285, 0.315]), False)
    with pytest.raises(ValueError):
        histogram_edges(0.5, 0.1)


def test_warehouse_given_and_chosen(settings):
    default = settings.replace(warehouse=DEFAULT_WAREHOUSE)
    assert warehouse_given(settings, environ={})  # not the default: given
    assert not warehouse_given(default, environ={})
    assert warehouse_given(default, environ={"MOVIEREC_WAREHOUSE": DEFAULT_WAREHOUSE})

    run = {"params": {"warehouse": "hdfs://nn/movierec"}}
    assert choose_warehouse(settings, run, given=True) == (settings.warehouse, "the warehouse setting")
    assert choose_warehouse(default, run, given=False) == ("hdfs://nn/movierec", "the warehouse recorded with the run")
    assert choose_warehouse(default, {"params": {}}, given=False)[0] == DEFAULT_WAREHOUSE
    assert choose_warehouse(default, None, given=False)[0] == DEFAULT_WAREHOUSE
    masked = choose_warehouse(default, {"params": {"warehouse": "s3a://key:***@bucket/w"}}, given=False)
    assert masked[0] == DEFAULT_WAREHOUSE and "masked" in masked[1]


def test_warehouse_uris_are_shown_without_their_secret():
    from movierec.config import redact_url

    assert redact_url("s3a://key:secret@bucket/w") == "s3a://key:***@bucket/w"
    assert redact_url("file:/tmp/w") == "file:/tmp/w" and redact_url("hdfs://nn:8020/w") == "hdfs://nn:8020/w"


# ---------------------------------------------------------------- a page from hand-made data

AT_KS = (1, 5, 10, 20, 50)
MODEL_NDCG = {"hybrid": 0.3123, "als": 0.2876, "content": 0.1111, "popularity": 0.2222}
METRICS = {
    "protocol": {
        "holdout_share": 0.2,
        "k": 10,
        "relevant": "held-out rating >= 4.0",
        "train_ratings": 24,
        "test_ratings": 6,
        "catalogue": 31,
    },
    "models": {
        model: {
            "ndcg": ndcg,
            "precision": 0.15,
            "recall": 0.75,
            "map": 0.5432,
            "hit_rate": 1.0,
            "coverage": 0.0321,
            "ndcg_all": 0.7012,
            "precision_all": 0.25,
            "users": 2,
        }
        for model, ndcg in MODEL_NDCG.items()
    },
}
METRICS["models"]["content"].update(rmse=0.9137, mae=0.7011)


RANKING = ["ndcg", "precision", "recall", "map", "hit_rate", "users"]


def _rows(columns, tuples) -> list[dict]:
    return [dict(zip(columns, values)) for values in tuples]


def _at_k_rows() -> list[dict]:
    # precision@k = 0.1 + k/1000 and recall@k = 0.5 + k/1000 for the hybrid, so each cell is known
    return _rows(
        ["model", "k", *RANKING],
        [
            (
                m,
                k,
                0.2,
                (0.1 if m == "hybrid" else 0.05) + k / 1000,
                (0.5 if m == "hybrid" else 0.4) + k / 1000,
                0.1,
                0.5,
                2,
            )
            for m in MODEL_NDCG
            for k in AT_KS
        ],
    )


def _activity_rows() -> list[dict]:
    return _rows(
        ["model", "bucket", "label", "lower", "upper", *RANKING],
        [(m, 0, "0–19", 0, 20, 0.1357 if m == "hybrid" else 0.1, 0.1, 0.1, 0.1, 0.5, 7) for m in MODEL_NDCG]
        + [(m, 6, "1000+", 1000, None, 0.2468 if m == "hybrid" else 0.2, 0.1, 0.1, 0.1, 0.5, 3) for m in MODEL_NDCG],
    )


def _calibration_rows() -> list[dict]:
    rows = []
    for component, observed in (("score", 0.0345), ("cf_score", 0.0456), ("cb_score", 0.0234)):
        rows += [
            (component, 0, 0.0, 0.02, 400, 0.011, observed / 2, 0.02),
            (component, 1, 0.02, 0.05, 300, 0.031, observed, 0.03),
            (component, 2, 0.05, 0.1, 100, 0.07, observed * 2, 0.06),
            (component, None, None, None, 800, 0.0271, observed, 0.0312),
        ]
    return _rows(["component", "bin", "lower", "upper", "pairs", "predicted", "observed", "brier"], rows)


TABLE_ROWS = {"at_k": _at_k_rows, "by_activity": _activity_rows, "calibration": _calibration_rows}


def _data(**changes) -> ReportData:
    runs = [
        {
            "run_id": "run-3",
            "status": "published",
            "active": True,
            "started_at": "2024-01-03T00:00:00+00:00",
            "metrics": METRICS,
        },
        {
            "run_id": "r-bad",
            "status": "rejected",
            "active": False,
            "started_at": "2024-01-02T00:00:00+00:00",
            "metrics": {"models": {"hybrid": {"ndcg": 0.4321}}},
        },
    ]
    histograms = pd.DataFrame(
        [(c, 0.01 * 2**i, 0.01 * 2 ** (i + 1), 10 * i) for c in ("score", "cf_score", "cb_score") for i in range(5)],
        columns=["component", "lower", "upper", "count"],
    )
    stats = pd.DataFrame(
        [("score", 4, 0.575, 0.05, 0.95), ("cf_score", 4, 0.5, 0.01, 0.9), ("cb_score", 4, 0.6625, 0.4, 0.85)],
        columns=["component", "pairs", "mean", "min", "max"],
    )
    values = dict(
        run_id="run-3",
        metrics=METRICS,
        at_k=pd.DataFrame(_at_k_rows()),
        by_activity=pd.DataFrame(_activity_rows()),
        calibration=pd.DataFrame(_calibration_rows()),
        warehouse="file:/w",
        warehouse_source="the warehouse setting",
        db_url="sqlite:///s.db",
        metrics_path="file:/w/runs/run-3/evaluate/metrics",
        store_run={
            "status": "published",
            "active": True,
            "message": None,
            "params": {"als_rank": 8, "quality_tolerance": 0.05},
        },
        history=metric_history(runs),
        histograms=histograms,
        score_stats=stats,
        score_log_scale=True,
        stage_reports={"train_als": {"rank": 8}},
    )
    values.update(changes)
    return ReportData(**values)


def _images(page: str) -> list[str]:
    images = re.findall(r'<img id="plot-([\w-]+)"[^>]* src="([^"]+)"', page)
    for _, src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert len(re.findall(r"<img\b", page)) == len(images)
    return [name for name, _ in images]


def _cells(page: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    row = re.search(rf"<tr[^>]*><td class=\"text\">{re.escape(first)}</td>(.*?)</tr>", page)
    assert row, first
    return re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))


def test_a_sampled_evaluation_says_so_at_a_glance():
    import copy

    from movierec.report.build import glance

    sampled = copy.deepcopy(METRICS)
    sampled["protocol"].update(
        evaluated_users={"held_out_users": 40_000, "sample_fraction": 0.25, "max_users": 10_000, "seed": 42},
        hybrid_ndcg_ci95=0.0041,
    )
    lines = dict(glance(_data(metrics=sampled)))
    assert lines["hybrid NDCG@10"].startswith("0.3123 ± 0.0041 (95% interval over users); against als 0.2876")
    assert (
        "2 users with a liked held-out movie (a seeded sample of the 40000 held-out users, each kept with chance 0.250"
        in (lines["evaluated"])
    )
    # every user measured: no sample named
    assert "sample" not in dict(glance(_data()))["evaluated"]


def test_page_holds_every_section_and_image():
    page = render_html(_data(), generated_at="2024-01-04T00:00:00+00:00")
    assert page.startswith("<!DOCTYPE html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert _images(page) == IMAGES
    assert not EXTERNAL.search(page)
    assert "<script" not in page and "<link" not in page

    # at a glance: the hybrid against each baseline (0.3123 / 0.2876 - 1 = +8.6%)
    assert "0.3123; against als 0.2876 (+8.6%), content 0.1111 (+181.1%), popularity 0.2222 (+40.5%)" in page
    assert "lowest 0.1357 for users with 0–19 training ratings (7 users), highest 0.2468 for 1000+ (3)" in page
    assert "mean predicted chance 0.0271, observed share liked 0.0345 over 800 candidate pairs; Brier 0.0312" in page
    # the tables, as read: the metrics, at k, by activity, calibration totals, scores, history
    for heading in ("NDCG@10", "MAP@10", "hit rate@10", "coverage@10", "content RMSE", "content MAE"):
        assert f"<th>{heading}</th>" in page, heading
    assert "0.9137" in page and "0.7011" in page and "held-out rating &gt;= 4.0" in page
    assert _cells(page, "hybrid")[:1] == ["0.3123"]
    at_k = re.search(r'<table id="at-k-table">(.*?)</table>', page, re.S).group(1)
    assert _cells(at_k, "hybrid") == [
        "0.1010",
        "0.1050",
        "0.1100",
        "0.1200",
        "0.1500",
        "0.5010",
        "0.5050",
        "0.5100",
        "0.5200",
        "0.5500",
    ]
    assert _cells(page, "0–19") == ["7", "0.1357", "0.1000", "0.1000", "0.1000"]
    assert _cells(page, "1000+") == ["3", "0.2468", "0.2000", "0.2000", "0.2000"]
    summary = re.search(r'<table id="calibration-summary">(.*?)</table>', page, re.S).group(1)
    assert _cells(summary, "cf_score") == ["800", "0.0271", "0.0456", "0.0312"]
    scores = re.search(r'<table id="scores-table">(.*?)</table>', page, re.S).group(1)
    assert _cells(scores, "cb_score") == ["4", "0.6625", "0.4000", "0.8500"]
    assert "log-spaced" in page and "chance that the user likes the movie" in page
    history = re.search(r'<table id="history-table">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'<tr(?: class="[\w ]+")?><td class="text">([\w-]+)</td>', history) == ["r-bad", "run-3"]
    assert '<tr class="active this"><td class="text">run-3</td>' in history and "0.4321" in history
    assert '<td class="text">quality_tolerance</td><td>0.05</td>' in page and "Stage report: train_als" in page


def test_page_escapes_hostile_text():
    data = _data(
        store_run={"status": "rejected", "active": False, "message": HOSTILE, "params": {"data_dir": HOSTILE}},
        stage_reports={"ingest": {HOSTILE: HOSTILE}},
        notes=[HOSTILE],
        warehouse=HOSTILE,
    )
    data.metrics = {**METRICS, "protocol": {**METRICS["protocol"], "relevant": HOSTILE}}
    page = render_html(data)
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 6


def test_page_without_score_output_or_history_says_so():
    page = render_html(_data(histograms=None, score_stats=None, history=metric_history([]), store_run=None))
    assert _images(page) == ["at-k", "activity", "calibration"]
    assert "The run has no score output." in page and "No run in the store has metrics." in page
    assert "not in the store (not published)" in page


def test_the_template_loads_from_the_zip(jobs_zip):
    """An interpreter that imports movierec from the --py-files zip (jinja2 from site-packages)
    finds the template inside the zip."""
    code = (
        "import sys; sys.path.insert(0, {zip!r}); import movierec.report.build as b; "
        "assert b.__file__.startswith({zip!r}), b.__file__; env = b.environment(); "
        "t = env.get_template(b.TEMPLATE); print(t.filename); "
        "print('movierec evaluation report' in env.loader.get_source(env, b.TEMPLATE)[0])"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code.format(zip=str(jobs_zip))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    filename, found = done.stdout.split()
    assert filename.startswith(str(jobs_zip)) and filename.endswith("templates/report.html")
    assert found == "True"


# ---------------------------------------------------------------- Spark: histograms and a fake run


@pytest.mark.spark
def test_score_histograms_bins_by_hand(spark):
    recs = spark.createDataFrame(
        [(0.0, 0.1), (0.04, 0.1), (0.5, 0.95), (0.99, 0.2), (1.0, 0.3), (None, 0.6)], "cf_score double, cb_score double"
    )
    h = score_histograms(recs, [0.0, 0.25, 0.5, 1.0], columns=("cf_score", "cb_score"))
    counts = {(row.component, row.lower): row.count for row in h.itertuples()}
    # cf: 0.0, 0.04 -> [0, 0.25); 0.5 (at the edge), 0.99, 1.0 (the last bin is closed) -> [0.5, 1]; null left out
    # cb: 0.1, 0.1, 0.2 -> [0, 0.25); 0.3 -> [0.25, 0.5); 0.6, 0.95 -> [0.5, 1]
    assert counts == {
        ("cf_score", 0.0): 2,
        ("cf_score", 0.25): 0,
        ("cf_score", 0.5): 3,
        ("cb_score", 0.0): 3,
        ("cb_score", 0.25): 1,
        ("cb_score", 0.5): 2,
    }
    assert list(h["upper"])[-1] == 1.0


RUN = "run-3"


def _write_run(spark, warehouse, run_id, tables=True):
    from movierec.data.schemas import RATINGS, RECOMMENDATIONS
    from movierec.evaluation.protocol import TABLE_SCHEMAS
    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import write_json, write_table

    paths = RunPaths(warehouse, run_id)
    write_table(spark.createDataFrame([(1, 10, 4.0, 1000)], RATINGS), paths.ratings)
    write_json(spark, paths.ingest_report, {"data_dir": "tiny", "ratings": {"rows": 30, "rejected": {}}})
    write_json(spark, paths.metrics, METRICS)
    if tables:
        for name, schema in TABLE_SCHEMAS.items():  # as the evaluate stage writes them
            write_table(spark.createDataFrame(TABLE_ROWS[name](), schema), paths.evaluation_table(name))
    recs = [
        (1, 1, 13, 0.05, 0.04, 0.07),
        (1, 2, 14, 0.03, 0.02, 0.05),
        (2, 1, 24, 0.3, 0.34, 0.2),
        (2, 2, 25, 0.01, 0.004, 0.03),
    ]
    write_table(spark.createDataFrame(recs, RECOMMENDATIONS), paths.recommendations)
    write_json(spark, paths.als_report, {"rank": 8, "reg": 0.1, "alpha": 5.0, "iterations": 5})
    return paths


@pytest.fixture()
def fake_run(spark, settings, tmp_path):
    """A warehouse folder for RUN and a store in which RUN is active after r-old (published, no
    warehouse folder) and r-bad (rejected); every run records the warehouse in its params."""
    settings = settings.replace(warehouse=str(tmp_path / "warehouse"), db_url=f"sqlite:///{tmp_path / 'store.db'}")
    _write_run(spark, settings.warehouse, RUN)
    engine = store.engine_for(settings.db_url)
    params = {**settings.to_dict(), "db_url": "postgresql+psycopg://movierec:secret@db.example:5432/movierec"}
    store.begin_run(engine, "r-old", params, "2024-01-01T00:00:00+00:00")
    store.load_rows(engine, "recommendations", "r-old", [[(1, 1, 13, 0.9, 0.95, 0.8)]])
    store.activate_run(engine, "r-old", {"models": {"hybrid": {"ndcg": 0.58}}}, "2024-01-01T01:00:00+00:00")
    store.begin_run(engine, "r-bad", params, "2024-01-02T00:00:00+00:00")
    store.reject_run(engine, "r-bad", "hybrid NDCG@10 below the active run's", {"models": {"hybrid": {"ndcg": 0.4321}}})
    store.begin_run(engine, RUN, params, "2024-01-03T00:00:00+00:00")
    store.load_rows(engine, "recommendations", RUN, [[(1, 1, 13, 0.9, 0.95, 0.8)]])
    store.activate_run(engine, RUN, METRICS, "2024-01-03T01:00:00+00:00")
    engine.dispose()
    return settings


@pytest.mark.spark
def test_report_of_the_active_run(spark, fake_run, tmp_path):
    out = tmp_path / "reports"
    path = make_report(spark, fake_run, None, out)  # no run id: the store's active run

    assert path == out / f"{RUN}.html"
    page = path.read_text(encoding="utf-8")
    assert (out / LATEST).read_text(encoding="utf-8") == page
    assert _images(page) == IMAGES
    assert not EXTERNAL.search(page) and "<script" not in page
    # the tables as the evaluation wrote them
    assert _cells(page, "0–19") == ["7", "0.1357", "0.1000", "0.1000", "0.1000"]
    summary = re.search(r'<table id="calibration-summary">(.*?)</table>', page, re.S).group(1)
    assert _cells(summary, "score") == ["800", "0.0271", "0.0345", "0.0312"]
    # score distributions of the 4 pairs: cf 0.04, 0.02, 0.34, 0.004 -> mean 0.404 / 4 = 0.101; the scores span
    # 0.004 .. 0.34 (85x): log-spaced bins
    scores = re.search(r'<table id="scores-table">(.*?)</table>', page, re.S).group(1)
    assert _cells(scores, "cf_score") == ["4", "0.1010", "0.0040", "0.3400"]
    assert "log-spaced" in page
    # history: every run with metrics, oldest first, over time; parameters with the password hidden
    history = re.search(r'<table id="history-table">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'<td class="text">(r-old|r-bad|run-3)</td><td class="text">(\w+)</td>', history) == [
        ("r-old", "published"),
        ("r-bad", "rejected"),
        (RUN, "published"),
    ]
    assert "secret" not in page and "***" in page
    assert "Stage report: train_als" in page and "Stage report: ingest" in page
    assert "published (active)" in page and "(the warehouse setting)" in page


@pytest.mark.spark
def test_warehouse_comes_from_the_run_when_not_given(spark, fake_run, tmp_path, monkeypatch):
    monkeypatch.delenv("MOVIEREC_WAREHOUSE", raising=False)
    monkeypatch.chdir(tmp_path)  # the default var/warehouse is relative: an empty folder here
    default = fake_run.replace(warehouse=DEFAULT_WAREHOUSE)
    out = tmp_path / "reports"
    path = make_report(spark, default, None, out)
    page = path.read_text(encoding="utf-8")
    assert _images(page) == IMAGES
    assert "(the warehouse recorded with the run)" in page and str(tmp_path / "warehouse") in page

    # given explicitly (here: the keyword; the command line's --warehouse is a value other than the
    # default), the setting wins: the default folder has no such run, so it is an error and
    # latest.html keeps the last good page
    with pytest.raises(
        NoMetrics,
        match=r"^run run-3 has no evaluation metrics in the warehouse .*var/warehouse "
        r"\(the warehouse setting\).*--warehouse",
    ):
        make_report(spark, default, None, out, warehouse_explicit=True)
    assert (out / LATEST).read_text(encoding="utf-8") == page


@pytest.mark.spark
def test_a_run_without_its_data_is_an_error_and_nothing_is_written(spark, fake_run, tmp_path, capsys):
    from movierec.cli import main

    out = tmp_path / "reports"
    out.mkdir()
    (out / LATEST).write_text("the last good page", encoding="utf-8")
    # r-old is in the store (metrics too) but has no warehouse folder: no page without plots any more
    with pytest.raises(NoMetrics, match="run r-old has no evaluation metrics in the warehouse"):
        make_report(spark, fake_run, "r-old", out)
    code = main(
        [
            "report",
            "--run-id",
            "r-old",
            "--out-dir",
            str(out),
            "--warehouse",
            fake_run.warehouse,
            "--db-url",
            fake_run.db_url,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("movierec report: run r-old has no evaluation metrics in the warehouse")
    # metrics, but not the tables (evaluated by an older version)
    _write_run(spark, fake_run.warehouse, "r-older", tables=False)
    with pytest.raises(IncompleteEvaluation, match="r-older's evaluation .* has no at_k table .*evaluate stage again"):
        make_report(spark, fake_run, "r-older", out)
    assert sorted(p.name for p in out.iterdir()) == [LATEST]
    assert (out / LATEST).read_text(encoding="utf-8") == "the last good page"
    assert spark.range(1).count() == 1  # the shared session still runs


@pytest.mark.spark
def test_report_cli_writes_the_named_run(spark, fake_run, tmp_path, capsys):
    from movierec.cli import main

    out = tmp_path / "cli-reports"
    code = main(
        [
            "report",
            "--run-id",
            RUN,
            "--out-dir",
            str(out),
            "--warehouse",
            fake_run.warehouse,
            "--db-url",
            fake_run.db_url,
        ]
    )
    assert code == 0, capsys.readouterr().err
    page = (out / f"{RUN}.html").read_text(encoding="utf-8")
    assert (out / LATEST).read_text(encoding="utf-8") == page and _images(page) == IMAGES
    assert str(out / f"{RUN}.html") in capsys.readouterr().out


@pytest.mark.spark
def test_no_run_id_and_no_active_run(spark, settings, tmp_path):
    settings = settings.replace(db_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(NoRun, match="no active run"):
        make_report(spark, settings, None, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


# ---------------------------------------------------------------- the report of a real pipeline run


@pytest.mark.spark
@pytest.mark.slow
def test_report_of_a_pipeline_run(spark, pipeline_run, tmp_path):
    from movierec.evaluation.protocol import AT_KS, TABLE_SCHEMAS
    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import read_json, read_table

    settings, run_id = pipeline_run
    paths = RunPaths(settings.warehouse, run_id)
    metrics = read_json(spark, paths.metrics)
    tables = {name: read_table(spark, paths.evaluation_table(name)).toPandas() for name in TABLE_SCHEMAS}

    # the evaluation's tables agree with its headline metrics (the same implementation)
    at_k = tables["at_k"]
    assert sorted(set(at_k["k"])) == list(AT_KS) and set(at_k["model"]) == set(metrics["models"])
    for model, values in metrics["models"].items():
        row = at_k[(at_k["model"] == model) & (at_k["k"] == 10)].iloc[0]
        for name in ("ndcg", "precision", "recall", "map", "hit_rate"):
            assert row[name] == pytest.approx(values[name], abs=1e-12), (model, name)
        buckets = tables["by_activity"][tables["by_activity"]["model"] == model]
        assert buckets["users"].sum() == values["users"]
        assert (buckets["ndcg"] * buckets["users"]).sum() / values["users"] == pytest.approx(values["ndcg"], abs=1e-12)
    calibration = tables["calibration"]
    totals = calibration[calibration["bin"].isna()].set_index("component")
    assert list(totals.index) == ["score", "cf_score", "cb_score"]
    assert totals["pairs"].nunique() == 1  # the same candidate pairs for each
    bins = calibration[calibration["bin"].notna()]
    assert bins.groupby("component")["pairs"].sum().to_dict() == totals["pairs"].to_dict()
    assert 0 < totals.loc["score", "observed"] < 0.5 and 0 < totals.loc["score", "predicted"] < 0.5

    path = make_report(spark, settings, None, tmp_path / "reports")
    page = path.read_text(encoding="utf-8")
    assert path.name == f"{run_id}.html"
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert _images(page) == IMAGES
    assert f"{metrics['models']['hybrid']['ndcg']:.4f}" in page
