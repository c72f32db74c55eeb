"""Run paths: the run-id rule, each stage's folder under `<warehouse>/runs/<run_id>/`, and
local_path; every expected string is written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.spark.paths import BadRunId, RunPaths, check_run_id, local_path

# attribute -> path under <warehouse>/runs/<run_id>/: each stage writes only in its own folder
EXPECTED = {
    "ratings": "ingest/ratings",
    "movies": "ingest/movies",
    "tags": "ingest/tags",
    "rejects": "ingest/rejects",
    "ingest_report": "ingest/report",
    "movie_features": "featurize/movie_features",
    "user_profiles": "featurize/user_profiles",
    "content_pipeline": "featurize/content_pipeline",
    "als_model": "train_als/model",
    "als_report": "train_als/report",
    "rf_model": "train_rf/model",
    "rf_report": "train_rf/report",
    "user_scales": "score/user_scales",
    "recommendations": "score/recommendations",
    "popular": "score/popular",
    "similar": "score/similar",
    "score_report": "score/report",
    "metrics": "evaluate/metrics",
    "evaluation_details": "evaluate/details",
    "publish_report": "publish/report",
}


@pytest.mark.parametrize(
    "run_id",
    [
        "a",
        "7",
        "x" * 200,
        "manual__2026-11-29T10:00:00+00:00",
        "scheduled__2026-01-01T02:00:00.123456+00:00",
        "test-run-1",
        "r.1_2:3+4",
        "x..",
    ],
)
def test_accepted_run_ids_come_back_unchanged(run_id):
    assert check_run_id(run_id) == run_id
    assert RunPaths("/tmp/wh", run_id).root == f"file:///tmp/wh/runs/{run_id}"


@pytest.mark.parametrize(
    "run_id",
    [
        "../x",
        "..",
        ".",
        "a/b",
        "/abs",
        "a\\b",
        "",
        None,
        " x",
        "x y",
        "-x",
        "_x",
        ".hidden",
        "x" * 201,
        "ünïcode",
        "a~b",
        "~x",
        "abc\n",
        "a\nb",
        "a\x00b",
        "a\tb",
    ],
)
def test_unsafe_run_ids_are_refused(run_id):
    with pytest.raises(BadRunId, match="run id"):
        check_run_id(run_id)
    with pytest.raises(BadRunId):
        RunPaths("/tmp/wh", run_id)


def test_a_bad_run_id_is_a_value_error():
    # callers that validate user input catch ValueError
    assert issubclass(BadRunId, ValueError)


def test_every_stage_folder_under_a_local_warehouse():
    paths = RunPaths("/data/wh", "r1")
    assert paths.warehouse == "file:///data/wh"
    assert paths.root == "file:///data/wh/runs/r1"
    for attribute, tail in EXPECTED.items():
        assert getattr(paths, attribute) == f"file:///data/wh/runs/r1/{tail}", attribute
    assert paths.stage("ingest") == "file:///data/wh/runs/r1/ingest"


def test_every_path_property_is_listed_here():
    # a new output gets its folder checked above
    properties = {name for name, value in vars(RunPaths).items() if isinstance(value, property)}
    assert properties - {"root"} == set(EXPECTED)


@pytest.mark.parametrize(
    "warehouse, root",
    [
        ("s3a://bucket/wh", "s3a://bucket/wh/runs/r1"),
        ("s3a://bucket/wh/", "s3a://bucket/wh/runs/r1"),
        ("hdfs://namenode:8020/user/movierec/wh//", "hdfs://namenode:8020/user/movierec/wh/runs/r1"),
        ("file:///data/wh/", "file:///data/wh/runs/r1"),
        ("file:/data/wh", "file:/data/wh/runs/r1"),
        ("/data/wh/", "file:///data/wh/runs/r1"),
        ("/data/my wh 100%", "file:///data/my wh 100%/runs/r1"),  # not percent-encoded: Hadoop reads it as is
    ],
)
def test_uris_stay_as_given_and_plain_paths_become_file_uris(warehouse, root):
    paths = RunPaths(warehouse, "r1")
    assert paths.root == root
    assert paths.recommendations == root + "/score/recommendations"


def test_a_relative_warehouse_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert RunPaths("var/wh", "r1").root == f"file://{tmp_path.resolve()}/var/wh/runs/r1"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("file:///data/wh/runs/r1", Path("/data/wh/runs/r1")),
        ("file:/data/wh", Path("/data/wh")),
        ("/data/wh", Path("/data/wh")),
        ("data/ml-latest-small", Path("data/ml-latest-small")),
        ("hdfs://namenode:8020/wh", None),
        ("s3a://bucket/wh", None),
    ],
)
def test_local_path(uri, expected):
    assert local_path(uri) == expected


@pytest.mark.parametrize("folder", ["wh", "my wh 100%"])
def test_local_path_finds_the_folder_of_a_local_run(tmp_path, folder):
    paths = RunPaths(str(tmp_path / folder), "r1")
    assert local_path(paths.ratings) == tmp_path.resolve() / folder / "runs" / "r1" / "ingest" / "ratings"
