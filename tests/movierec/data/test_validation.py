"""Row validation: each reason on hand-made raw rows."""

import pytest

from movierec.data import validation as V

pytestmark = pytest.mark.spark

RAW_RATINGS = (
    "raw_userId string, raw_movieId string, raw_rating string, raw_timestamp string, _corrupt_record string, _line long"
)


def reasons_of(df):
    return {row["_line"]: row["reason"] for row in df.select("_line", "reason").collect()}


def test_each_rating_reason(spark):
    rows = [
        ("1", "10", "4.5", "1100000100", None, 1),  # good
        ("1", "11", "3", "1100000100", "1,11,3,1100000100,x", 2),  # malformed line
        ("", "12", "3.0", "1100000100", None, 3),  # missing user
        ("abc", "12", "3.0", "1100000100", None, 4),  # user id not a number
        ("-2", "12", "3.0", "1100000100", None, 5),  # negative id
        ("3000000000", "12", "3.0", "1100000100", None, 6),  # over 32 bits
        ("1", "13", "3.0", "yesterday", None, 7),  # bad timestamp
        ("1", "14", "4.3", "1100000100", None, 8),  # not a half step
        ("1", "15", "0.0", "1100000100", None, 9),  # below 0.5
        ("1", "16", "5.5", "1100000100", None, 10),  # above 5
        ("1", "17", "five", "1100000100", None, 11),  # not a number
        ("2", "10", " 0.5 ", "1100000007", None, 12),  # good, spaces trimmed
    ]
    checked = V.check_ratings(spark.createDataFrame(rows, RAW_RATINGS))
    assert reasons_of(checked) == {
        1: None,
        2: "malformed_row",
        3: "missing_value",
        4: "bad_id",
        5: "bad_id",
        6: "bad_id",
        7: "bad_timestamp",
        8: "bad_rating",
        9: "bad_rating",
        10: "bad_rating",
        11: "bad_rating",
        12: None,
    }
    good = {
        r["_line"]: (r["user_id"], r["movie_id"], r["rating"], r["timestamp"])
        for r in checked.collect()
        if r["reason"] is None
    }
    assert good == {1: (1, 10, 4.5, 1100000100), 12: (2, 10, 0.5, 1100000007)}


def test_unknown_movie_and_duplicates_keep_latest(spark):
    rows = [
        ("1", "10", "2.0", "1100000100", None, 1),
        ("1", "10", "4.0", "1100000300", None, 2),  # latest: kept
        ("1", "10", "5.0", "1100000200", None, 3),
        ("1", "99", "3.0", "1100000100", None, 4),  # movie 99 is not in the catalogue
        ("2", "10", "1.0", "1100000100", None, 5),
    ]
    movies = spark.createDataFrame([(10,)], "movie_id int")
    checked = V.dedupe_ratings(V.mark_unknown_movies(V.check_ratings(spark.createDataFrame(rows, RAW_RATINGS)), movies))
    assert reasons_of(checked) == {1: "duplicate", 2: None, 3: "duplicate", 4: "unknown_movie", 5: None}
    assert V.reason_counts(checked) == {"duplicate": 2, "unknown_movie": 1}


def test_movie_rows(spark):
    rows = [
        ("1", "Toy Story (1995)", "Adventure|Animation", None, 1),
        ("2", "No Genre (2001)", "(no genres listed)", None, 2),
        ("x", "Bad (2000)", "Drama", None, 3),
        ("4", "", "Drama", None, 4),
    ]
    checked = V.check_movies(
        spark.createDataFrame(
            rows, "raw_movieId string, raw_title string, raw_genres string, _corrupt_record string, _line long"
        )
    )
    assert reasons_of(checked) == {1: None, 2: None, 3: "bad_id", 4: "missing_value"}
    genres = {r["_line"]: r["genres"] for r in checked.collect()}
    assert genres[1] == ["Adventure", "Animation"] and genres[2] == []


def test_reasons_of_cut_garbled_and_out_of_era_rows(spark):
    """A cut-off last line, bytes that were not UTF-8, a timestamp cut short (a 1970s date) or in milliseconds."""
    schema = RAW_RATINGS + ", _truncated boolean"
    rows = [
        ("1", "10", "4.5", "964982703", None, 1, False),  # good: 2000-07-30
        ("1", "11", "4.5", "96498", None, 2, False),  # cut short: 1970
        ("1", "12", "4.5", "788918399", None, 3, False),  # one second before 1995
        ("1", "13", "4.5", "788918400", None, 4, False),  # 1995-01-01: kept
        ("1", "14", "4.5", "964982703000", None, 5, False),  # milliseconds
        ("1", "15", "4.\ufffd", "964982703", None, 6, False),  # not UTF-8
        ("1", "16", "4.5", "9649827", None, 7, True),  # the file's last line, without a line end
        ("1", "17", "4.5", "964982703", None, 8, None),  # no flag: not cut
    ]
    checked = V.check_ratings(spark.createDataFrame(rows, schema))
    assert reasons_of(checked) == {
        1: None,
        2: "bad_timestamp",
        3: "bad_timestamp",
        4: None,
        5: "bad_timestamp",
        6: "bad_encoding",
        7: "truncated_row",
        8: None,
    }
    movies = spark.createDataFrame(
        [("1", "Am\ufffdlie (2001)", "Comedy", None, 1, False), ("2", "Heat (1995)", "Act", None, 2, True)],
        "raw_movieId string, raw_title string, raw_genres string, _corrupt_record string, _line long, "
        "_truncated boolean",
    )
    assert reasons_of(V.check_movies(movies)) == {1: "bad_encoding", 2: "truncated_row"}
    tags = spark.createDataFrame(
        [("1", "1", "caf\ufffd", "1100000000", None, 1), ("1", "1", "pixar", "5", None, 2)],
        "raw_userId string, raw_movieId string, raw_tag string, raw_timestamp string, _corrupt_record string, "
        "_line long",
    )
    assert reasons_of(V.check_tags(tags)) == {1: "bad_encoding", 2: "bad_timestamp"}


def test_threshold_counts_invalid_rows_but_not_re_ratings():
    assert V.bad_share(1000, {"duplicate": 500, "bad_rating": 10}) == pytest.approx(0.01)
    V.enforce_threshold("ratings.csv", 1000, {"duplicate": 500, "bad_rating": 10}, 0.01)  # exactly 1%: allowed
    with pytest.raises(V.DataQualityError, match=r"ratings.csv: 1.10% of 1000 rows are invalid \(bad_rating 11\)"):
        V.enforce_threshold("ratings.csv", 1000, {"bad_rating": 11}, 0.01)
    with pytest.raises(V.DataQualityError, match="no rows"):
        V.enforce_threshold("ratings.csv", 0, {}, 0.01)
