"""A stage refuses an input that is not completely written (what a crash inside Spark's commit leaves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec.spark.warehouse import IncompleteOutput, load_model, read_json, read_table, write_json, write_table

pytestmark = pytest.mark.spark


def _table(spark, path: Path) -> str:
    df = spark.createDataFrame([(i, float(i)) for i in range(40)], "movieId int, score double").repartition(4)
    write_table(df, str(path))
    return str(path)


def test_a_complete_table_reads_back(spark, tmp_path):
    path = _table(spark, tmp_path / "similar")
    assert sorted(r.movieId for r in read_table(spark, path).collect()) == list(range(40))


def test_a_table_without_its_success_marker_is_refused(spark, tmp_path):
    path = _table(spark, tmp_path / "similar")
    (Path(path) / "_SUCCESS").unlink()
    with pytest.raises(IncompleteOutput, match="not completely written"):
        read_table(spark, path)


def test_half_the_part_files_and_no_marker_is_refused(spark, tmp_path):
    """The reported case: publish served half the similar-movie table."""
    path = _table(spark, tmp_path / "similar")
    parts = sorted(Path(path).glob("part-*"))
    assert len(parts) >= 2
    for part in parts[: len(parts) // 2]:
        part.unlink()
    (Path(path) / "_SUCCESS").unlink()
    with pytest.raises(IncompleteOutput):
        read_table(spark, path)


def test_a_missing_output_names_the_stage_to_run(spark, tmp_path):
    with pytest.raises(IncompleteOutput, match="does not exist"):
        read_table(spark, str(tmp_path / "never-written"))


def test_json_documents_are_checked_too(spark, tmp_path):
    path = str(tmp_path / "report")
    write_json(spark, path, {"rows": 3})
    assert read_json(spark, path) == {"rows": 3}
    (Path(path) / "_SUCCESS").unlink()
    with pytest.raises(IncompleteOutput):
        read_json(spark, path)


def test_a_model_with_one_part_uncommitted_is_refused(spark, tmp_path):
    from pyspark.ml.feature import StandardScaler, StandardScalerModel
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame([(Vectors.dense([1.0, 2.0]),), (Vectors.dense([3.0, 5.0]),)], ["features"])
    path = str(tmp_path / "model")
    StandardScaler(inputCol="features", outputCol="scaled").fit(df).write().overwrite().save(path)
    assert load_model(StandardScalerModel, spark, path).mean.toArray().tolist() == [2.0, 3.5]
    (Path(path) / "data" / "_SUCCESS").unlink()
    with pytest.raises(IncompleteOutput, match="data"):
        load_model(StandardScalerModel, spark, path)
