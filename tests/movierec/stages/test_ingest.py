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


def feedback_store(tmp_path, movies=(1, 2, 3, 4)):
    """A store whose catalogue lists `movies`, for feedback; returns (db_url, engine)."""
    from movierec.store.runs import engine_for, upsert_movies

    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    engine = engine_for(url)
    upsert_movies(engine, [[(m, f"Movie {m} (2000)", 2000, "Drama") for m in movies]])
    return url, engine


def test_feedback_up_to_the_cut_off_joins_the_ratings_by_the_same_rules(spark, settings, make_dataset, tmp_path):
    from movierec.store.feedback import add_feedback, cutoff

    url, engine = feedback_store(tmp_path)  # the store's catalogue has movie 4, movies.csv does not
    before = "2000-01-01T00:00:00.000000+00:00"  # long before the cut-off
    add_feedback(engine, 1, [(2, 5.0, T0 + 999_999)], received_at=before)  # later than ratings.csv's: wins
    add_feedback(engine, 3, [(1, 1.0, T0 + 31)], received_at=before)  # ratings.csv's own timestamp: wins the tie
    add_feedback(engine, 31, [(1, 4.0, T0 + 5), (3, 0.5, T0 + 6)], received_at=before)  # a user the files lack
    add_feedback(engine, 2, [(4, 4.0, T0)], received_at=before)  # movie 4 is not in movies.csv
    add_feedback(engine, 1, [(3, 1.5, T0 + 999_999)])  # received now: after the cut-off, for the next run
    engine.dispose()

    data = make_dataset(good_ratings(), movies=MOVIES)
    first_until = cutoff()
    report, paths = run_ingest(spark, settings, data, "ingest-feedback", db_url=url, max_bad_share=0.05)
    note = report["inputs"]["feedback"]
    assert note["rows"] == 5 and first_until <= note["received_until"] <= cutoff()
    assert report["ratings"]["rows"] == 90 + 5
    assert report["ratings"]["rejected"] == {"duplicate": 2, "unknown_movie": 1}
    ratings = {(r["user_id"], r["movie_id"]): r["rating"] for r in read_table(spark, paths.ratings).collect()}
    assert len(ratings) == 92
    assert (ratings[(1, 2)], ratings[(3, 1)], ratings[(31, 1)], ratings[(31, 3)]) == (5.0, 1.0, 4.0, 0.5)
    assert ratings[(1, 3)] == 3.5  # the rating received after the cut-off is not read
    rejects = read_table(spark, paths.rejects).where("source = 'feedback'").collect()
    assert [(r["reason"], r["raw"]) for r in rejects] == [("unknown_movie", f"2,4,4.0,{T0}")]


def test_feedback_is_left_out_when_asked_and_a_missing_store_is_not_made(spark, settings, make_dataset, tmp_path):
    from movierec.store.feedback import add_feedback

    url, engine = feedback_store(tmp_path)
    add_feedback(engine, 31, [(1, 4.0, T0)], received_at="2000-01-01T00:00:00.000000+00:00")
    engine.dispose()
    data = make_dataset(good_ratings(), movies=MOVIES)
    report, paths = run_ingest(spark, settings, data, "ingest-no-feedback", db_url=url, learn_from_feedback=False)
    assert "feedback" not in report["inputs"] and report["ratings"]["rows"] == 90
    assert read_table(spark, paths.ratings).where("user_id = 31").count() == 0

    missing = tmp_path / "no" / "store.db"
    report, _ = run_ingest(spark, settings, data, "ingest-no-store", db_url=f"sqlite:///{missing}")
    assert report["inputs"]["feedback"]["rows"] == 0 and report["ratings"]["rows"] == 90
    assert not missing.parent.exists()


def test_a_store_that_does_not_answer_stops_the_run_with_what_to_do():
    from movierec.store.feedback import FeedbackUnreadable, read_until

    url = "postgresql+psycopg://movierec:s3cret-pw@127.0.0.1:9/movierec"  # port 9: nothing listens
    with pytest.raises(FeedbackUnreadable, match="--no-learn-from-feedback") as caught:
        list(read_until(url, "2100-01-01"))
    assert "s3cret-pw" not in str(caught.value)
