"""Row-level validation of the MovieLens CSVs.

Each `check_*` function takes the raw text columns (named `raw_<csv column>`) and returns the typed columns plus a
`reason` column: null for a good row, else why the row was set aside.  The reasons:

- truncated_row: the file's last line has no line end, so the file was cut off (in writing, a download or a copy) and
  that line may be cut short although it looks whole (genres "Action" cut to "Act")
- malformed_row: the CSV line did not parse into the expected fields
- bad_encoding: a field is not UTF-8 text (Spark decodes such bytes to U+FFFD, which would end up in a title)
- missing_value: a required field is empty
- bad_id: a user or movie id that is not a positive 32-bit integer
- bad_timestamp: not a whole number of seconds from 1995 (MovieLens's first ratings) to 2100: a timestamp cut short
  by a digit is a 1970s date, one in milliseconds is after 2100
- bad_rating: not a number from 0.5 to 5.0 in half-star steps
- unknown_movie: a rating or tag of a movie that movies.csv does not list
- duplicate: the same user rated the same movie again; the latest rating is kept
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from movierec.data.movielens import FIRST_TIMESTAMP, LAST_TIMESTAMP, MAX_ID, MAX_RATING, MIN_RATING, NO_GENRES
from movierec.data.schemas import GENRES, MOVIE, RATING, REASON, TAG, TIMESTAMP, TITLE, USER

CORRUPT = "_corrupt_record"
TRUNCATED = "_truncated"  # true on the last line of a file that does not end with a line end


class DataQualityError(RuntimeError):
    """The input data cannot be used: a file is empty or lacks a column, or too much of it is invalid to trust a
    model trained on it.  Its message is one line for an operator (the stage runner prints no traceback for it)."""


def _positive_int(col: str):
    value = F.expr(f"try_cast(trim({col}) as bigint)")
    return F.when((value > 0) & (value <= MAX_ID), value.cast("int"))


def _blank(col: str):
    return F.col(col).isNull() | (F.trim(F.col(col)) == "")


def _flag(raw: DataFrame, column: str):
    """A boolean column the reader adds (CORRUPT, TRUNCATED), or false where the raw rows have none."""
    if column == CORRUPT:
        return F.col(CORRUPT).isNotNull() if CORRUPT in raw.columns else F.lit(False)
    return F.coalesce(F.col(column), F.lit(False)) if column in raw.columns else F.lit(False)


def _file_checks(raw: DataFrame, columns: list[str]) -> list:
    """The checks every file's rows share, in order: the line was cut off, did not parse, or is not UTF-8."""
    not_utf8 = F.lit(False)
    for col in columns:
        not_utf8 = not_utf8 | F.coalesce(F.col(col).contains("\ufffd"), F.lit(False))
    return [
        (_flag(raw, TRUNCATED), "truncated_row"),
        (_flag(raw, CORRUPT), "malformed_row"),
        (not_utf8, "bad_encoding"),
    ]


def _bad_timestamp(col: str):
    return F.col(col).isNull() | (F.col(col) < FIRST_TIMESTAMP) | (F.col(col) >= LAST_TIMESTAMP)


def _first_reason(*checks):
    """The first failing check names the reason (a row is set aside for one reason)."""
    expr = F.lit(None).cast("string")
    for condition, reason in reversed(checks):
        expr = F.when(condition, F.lit(reason)).otherwise(expr)
    return expr


def check_ratings(raw: DataFrame) -> DataFrame:
    """Raw ratings (text columns raw_userId, raw_movieId, raw_rating, raw_timestamp, _corrupt_record) → typed,
    with the reason a row is set aside."""
    rating = F.expr("try_cast(trim(raw_rating) as double)")
    timestamp = F.expr("try_cast(trim(raw_timestamp) as bigint)")
    typed = raw.select(
        "*",
        _positive_int("raw_userId").alias(USER),
        _positive_int("raw_movieId").alias(MOVIE),
        rating.alias(RATING),
        timestamp.alias(TIMESTAMP),
    )
    reason = _first_reason(
        *_file_checks(raw, ["raw_userId", "raw_movieId", "raw_rating", "raw_timestamp"]),
        (
            _blank("raw_userId") | _blank("raw_movieId") | _blank("raw_rating") | _blank("raw_timestamp"),
            "missing_value",
        ),
        (F.col(USER).isNull() | F.col(MOVIE).isNull(), "bad_id"),
        (_bad_timestamp(TIMESTAMP), "bad_timestamp"),
        (
            F.col(RATING).isNull()
            | (F.col(RATING) < MIN_RATING)
            | (F.col(RATING) > MAX_RATING)
            | (F.col(RATING) * 2 != F.round(F.col(RATING) * 2)),
            "bad_rating",
        ),
    )
    return typed.withColumn(REASON, reason)


def check_movies(raw: DataFrame) -> DataFrame:
    """Raw movies (movieId, title, genres) → movie_id, title, genres (array), reason."""
    genres = F.when(
        _blank("raw_genres") | (F.trim(F.col("raw_genres")) == NO_GENRES), F.array().cast("array<string>")
    ).otherwise(F.split(F.trim(F.col("raw_genres")), r"\|"))
    typed = raw.select(
        "*",
        _positive_int("raw_movieId").alias(MOVIE),
        F.trim(F.col("raw_title")).alias(TITLE),
        genres.alias(GENRES),
    )
    reason = _first_reason(
        *_file_checks(raw, ["raw_movieId", "raw_title", "raw_genres"]),
        (_blank("raw_movieId") | _blank("raw_title"), "missing_value"),
        (F.col(MOVIE).isNull(), "bad_id"),
    )
    return typed.withColumn(REASON, reason)


def check_tags(raw: DataFrame) -> DataFrame:
    """Raw tags (userId, movieId, tag, timestamp) → typed + reason."""
    timestamp = F.expr("try_cast(trim(raw_timestamp) as bigint)")
    typed = raw.select(
        "*",
        _positive_int("raw_userId").alias(USER),
        _positive_int("raw_movieId").alias(MOVIE),
        F.lower(F.trim(F.col("raw_tag"))).alias(TAG),
        timestamp.alias(TIMESTAMP),
    )
    reason = _first_reason(
        *_file_checks(raw, ["raw_userId", "raw_movieId", "raw_tag", "raw_timestamp"]),
        (_blank("raw_userId") | _blank("raw_movieId") | _blank("raw_tag") | _blank("raw_timestamp"), "missing_value"),
        (F.col(USER).isNull() | F.col(MOVIE).isNull(), "bad_id"),
        (_bad_timestamp(TIMESTAMP), "bad_timestamp"),
    )
    return typed.withColumn(REASON, reason)


def mark_unknown_movies(checked: DataFrame, known_movies: DataFrame) -> DataFrame:
    """Rows still good but naming a movie not in the catalogue get reason unknown_movie."""
    known = known_movies.select(F.col(MOVIE).alias("_known")).distinct()
    joined = checked.join(known, checked[MOVIE] == known["_known"], "left")
    return joined.withColumn(
        REASON,
        F.when(F.col(REASON).isNull() & F.col("_known").isNull(), F.lit("unknown_movie")).otherwise(F.col(REASON)),
    ).drop("_known")


def mark_duplicates(checked: DataFrame, keys: list[str], order: list) -> DataFrame:
    """Among good rows with the same keys, keep the first by `order`; the others are duplicates."""
    good = F.col(REASON).isNull()
    window = Window.partitionBy(*keys, good.alias("_good")).orderBy(*order)
    return (
        checked.withColumn("_good", good)
        .withColumn("_n", F.row_number().over(window))
        .withColumn(REASON, F.when(F.col("_good") & (F.col("_n") > 1), F.lit("duplicate")).otherwise(F.col(REASON)))
        .drop("_good", "_n")
    )


def dedupe_ratings(checked: DataFrame) -> DataFrame:
    """The latest rating of a user-movie pair wins (ties: the later line of the file)."""
    return mark_duplicates(checked, [USER, MOVIE], [F.col(TIMESTAMP).desc(), F.col("_line").desc()])


def row_counts(checked: DataFrame) -> tuple[int, dict[str, int]]:
    """(all rows, rows set aside by reason), in one pass."""
    rows = checked.groupBy(REASON).count().collect()
    reasons = {
        row[REASON]: int(row["count"]) for row in sorted(rows, key=lambda r: r[REASON] or "") if row[REASON] is not None
    }
    return sum(int(row["count"]) for row in rows), reasons


def reason_counts(checked: DataFrame) -> dict[str, int]:
    return row_counts(checked)[1]


def bad_share(total: int, reasons: dict[str, int]) -> float:
    """Share of rows that are invalid; re-ratings (duplicate) are legitimate data, not counted."""
    bad = sum(n for reason, n in reasons.items() if reason != "duplicate")
    return bad / total if total else 0.0


def enforce_threshold(what: str, total: int, reasons: dict[str, int], max_share: float) -> None:
    if total == 0:
        raise DataQualityError(f"{what}: a header and no rows; the file was cut off or is not this data set's")
    share = bad_share(total, reasons)
    if share > max_share:
        detail = ", ".join(f"{reason} {n}" for reason, n in reasons.items())
        raise DataQualityError(
            f"{what}: {share:.2%} of {total} rows are invalid ({detail}); at most {max_share:.2%} is allowed "
            f"(MOVIEREC_MAX_BAD_SHARE / --max-bad-share). The rejected rows are under the run's ingest/rejects."
        )
