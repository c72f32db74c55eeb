"""Warehouse reads and writes on tiny frames: round trips, overwrite on rewrite (a retried
stage leaves no duplicates), the empty-result rule, JSON reports, exists and delete."""

from __future__ import annotations

import datetime

import pytest

from movierec.spark.paths import RunPaths, local_path
from movierec.spark.warehouse import EmptyResult, delete, exists, read_json, read_table, write_json, write_table

pytestmark = pytest.mark.spark

SCHEMA = "user_id int, movie_id int, rating double, timestamp long"
ROWS = [(1, 10, 4.5, 100), (1, 11, 3.0, 101), (2, 10, 0.5, 200)]


def rows_of(df) -> list[tuple]:
    return sorted(tuple(row) for row in df.collect())


def part_files(uri: str) -> list[str]:
    return sorted(p.name for p in local_path(uri).iterdir() if p.name.startswith("part-"))


@pytest.fixture
def paths(tmp_path):
    return RunPaths(str(tmp_path / "warehouse"), "r1")


def test_a_table_round_trips(spark, paths):
    df = spark.createDataFrame(ROWS, SCHEMA)
    write_table(df, paths.ratings)
    back = read_table(spark, paths.ratings)
    assert back.columns == ["user_id", "movie_id", "rating", "timestamp"]
    assert [f.dataType.simpleString() for f in back.schema.fields] == ["int", "int", "double", "bigint"]
    assert rows_of(back) == ROWS


def test_rewriting_overwrites_so_a_retry_leaves_no_duplicates(spark, paths):
    df = spark.createDataFrame(ROWS, SCHEMA)
    write_table(df, paths.ratings)
    write_table(df, paths.ratings)  # the retry
    assert rows_of(read_table(spark, paths.ratings)) == ROWS
    write_table(spark.createDataFrame([(9, 99, 5.0, 900)], SCHEMA), paths.ratings)
    assert rows_of(read_table(spark, paths.ratings)) == [(9, 99, 5.0, 900)]


def test_partitions_sets_the_number_of_files(spark, paths):
    df = spark.createDataFrame(ROWS * 2, SCHEMA).repartition(3)
    write_table(df, paths.ratings)
    assert len(part_files(paths.ratings)) == 3
    write_table(df, paths.ratings, partitions=1)
    assert len(part_files(paths.ratings)) == 1
    assert rows_of(read_table(spark, paths.ratings)) == sorted(ROWS * 2)


def test_an_empty_result_is_refused_and_leaves_no_table(spark, paths):
    write_table(spark.createDataFrame(ROWS, SCHEMA), paths.recommendations)
    empty = spark.createDataFrame([], SCHEMA)
    with pytest.raises(EmptyResult, match="empty table"):
        write_table(empty, paths.recommendations)
    # neither the empty table nor the earlier attempt's rows are left for a later stage to read
    assert not exists(spark, paths.recommendations)
    assert not local_path(paths.recommendations).exists()


def test_an_empty_table_is_written_when_rows_are_not_required(spark, paths):
    write_table(spark.createDataFrame([], SCHEMA), paths.rejects, require_rows=False)
    back = read_table(spark, paths.rejects)
    assert back.count() == 0 and back.columns == ["user_id", "movie_id", "rating", "timestamp"]


def test_json_round_trip_and_rewrite(spark, paths):
    report = {"rows": 3, "b": [1, 2.5, None], "a": {"x": "y"}, "when": datetime.date(2026, 1, 2)}
    write_json(spark, paths.ingest_report, report)
    assert read_json(spark, paths.ingest_report) == {
        "rows": 3,
        "b": [1, 2.5, None],
        "a": {"x": "y"},
        "when": "2026-01-02",
    }
    # one file of one line, keys sorted
    [name] = part_files(paths.ingest_report)
    text = (local_path(paths.ingest_report) / name).read_text()
    assert text == '{"a": {"x": "y"}, "b": [1, 2.5, null], "rows": 3, "when": "2026-01-02"}\n'
    write_json(spark, paths.ingest_report, {"rows": 4})
    assert read_json(spark, paths.ingest_report) == {"rows": 4}


def test_reading_json_from_an_empty_folder(spark, paths):
    spark.createDataFrame([], "value string").write.mode("overwrite").text(paths.score_report)
    with pytest.raises(FileNotFoundError, match="no JSON document"):
        read_json(spark, paths.score_report)


def test_exists_and_delete_for_uris_and_plain_paths(spark, paths, tmp_path):
    for path in (paths.similar, str(tmp_path / "plain" / "table")):
        assert not exists(spark, path)
        write_table(spark.createDataFrame(ROWS, SCHEMA), path)
        assert exists(spark, path)
        delete(spark, path)
        assert not exists(spark, path) and not local_path(path).exists()
        delete(spark, path)  # deleting what is not there is no error


def test_a_local_warehouse_is_the_folder_that_was_named(spark, tmp_path):
    # characters a URI would escape: the data must land in this very folder, where
    # local_path (and anyone looking) finds it
    warehouse = tmp_path / "my warehouse 100%"
    paths = RunPaths(str(warehouse), "r1")
    write_table(spark.createDataFrame(ROWS, SCHEMA), paths.ratings)
    assert (warehouse / "runs" / "r1" / "ingest" / "ratings").is_dir()
    assert local_path(paths.ratings) == warehouse / "runs" / "r1" / "ingest" / "ratings"
    assert rows_of(read_table(spark, paths.ratings)) == ROWS
