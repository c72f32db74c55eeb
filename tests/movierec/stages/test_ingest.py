"""The ingest stage on tiny files: what it keeps, what it sets aside, when it refuses."""

import pytest

from movierec.data.movielens import FIRST_TIMESTAMP
from movierec.data.validation import DataQualityError
from movierec.spark.paths import RunPaths
from movierec.spark.warehouse import read_json, read_table
from movierec.stages.ingest import ingest

pytestmark = pytest.mark.spark

MOVIES = [
    ("1", "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    ("2", "Jumanji (1995)", "Adventure|Children|Fantasy"),
    ("3", "Grumpier Old Men, The (1995)", "Comedy|Romance"),
]  # written quoted: it has a comma


T0 = FIRST_TIMESTAMP + 10_000_000  # timestamps from 1995 on: an earlier one is bad_timestamp


def good_ratings(n_users=30):
    return [(u, m, 3.5, T0 + u * 10 + m) for u in range(1, n_users + 1) for m in (1, 2, 3)]


def run_ingest(spark, settings, data_dir, run_id, **changes):
    s = settings.replace(data_dir=str(data_dir), **changes)
    paths = RunPaths(s.warehouse, run_id)
    return ingest(spark, s, paths), paths


def test_bad_rows_are_counted_by_reason_and_set_aside(spark, settings, make_dataset):
    bad = [("1", "1", "4.2", T0), ("1", "9", "3.0", T0), ("x", "1", "3.0", T0), ("2", "1", "3.0", "")]
    rerated = [(1, 1, 5.0, T0 + 999999)]  # user 1 rated movie 1 again, later: this one wins
    tags = [(1, 1, "pixar", T0), (1, 77, "ghost", T0), ("", 1, "x", T0)]
    data = make_dataset(good_ratings() + bad + rerated, movies=MOVIES, tags=tags)
    report, paths = run_ingest(spark, settings, data, "ingest-bad", max_bad_share=0.1)

    assert report["ratings"]["rows"] == 90 + 4 + 1
    assert report["ratings"]["rejected"] == {
        "bad_id": 1,
        "bad_rating": 1,
        "duplicate": 1,
        "missing_value": 1,
        "unknown_movie": 1,
    }
    assert report["tags"]["rejected"] == {"missing_value": 1, "unknown_movie": 1}
    ratings = read_table(spark, paths.ratings)
    assert ratings.count() == 90
    assert ratings.where("user_id = 1 and movie_id = 1").collect()[0]["rating"] == 5.0
    rejects = read_table(spark, paths.rejects)
    assert sorted(r["reason"] for r in rejects.where("source = 'ratings.csv'").collect()) == [
        "bad_id",
        "bad_rating",
        "duplicate",
        "missing_value",
        "unknown_movie",
    ]
    assert read_json(spark, paths.ingest_report)["ratings"]["rows"] == 95
    titles = {r["movie_id"]: r["title"] for r in read_table(spark, paths.movies).collect()}
    assert titles[3] == "Grumpier Old Men, The (1995)"


def test_too_many_bad_rows_fail_the_run_with_the_reasons(spark, settings, make_dataset):
    bad = [(u, 1, 9.0, T0) for u in range(1, 4)]  # 3 of 93 rows: 3.2% > 1%
    data = make_dataset(good_ratings() + bad, movies=MOVIES)
    with pytest.raises(DataQualityError, match=r"ratings.csv: 3.23% of 93 rows are invalid \(bad_rating 3\)"):
        run_ingest(spark, settings, data, "ingest-over")


def test_missing_input_names_the_file_and_the_fix(spark, settings, tmp_path):
    with pytest.raises(FileNotFoundError, match="no ratings.csv or movies.csv.*movierec download"):
        run_ingest(spark, settings, tmp_path, "ingest-missing")


def test_rerun_gives_the_same_rows_without_duplicates(spark, settings, make_dataset):
    data = make_dataset(good_ratings(), movies=MOVIES)  # no tags.csv: tags are optional
    _, paths = run_ingest(spark, settings, data, "ingest-twice")
    first = sorted(read_table(spark, paths.ratings).collect())
    _, paths = run_ingest(spark, settings, data, "ingest-twice")
    assert sorted(read_table(spark, paths.ratings).collect()) == first
    assert len(first) == 90
    assert read_table(spark, paths.tags).count() == 0
