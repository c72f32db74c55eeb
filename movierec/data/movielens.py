"""Facts of the MovieLens CSV format, in plain Python (no pyspark), for every module that needs them.

The generator (`movierec synth`) and the API import these without loading Spark.
"""

from __future__ import annotations

from movierec.files import sha256_file
from movierec.spark.paths import local_path

NO_GENRES = "(no genres listed)"  # movies.csv's genres text for a movie without genres
MAX_ID = 2**31 - 1  # user and movie ids are positive 32-bit integers (ALS needs them to fit)
MIN_RATING, MAX_RATING = 0.5, 5.0  # ratings are half stars from 0.5 to 5.0 (ingest's bad_rating rule)
# Timestamps are seconds since 1970; MovieLens's first ratings are from January 1995, so an earlier one is a cut or
# garbled value (a timestamp cut short by one digit is a 1970s date), and one after 2100 is milliseconds or garbage.
FIRST_TIMESTAMP = 788_918_400  # 1995-01-01T00:00:00Z
LAST_TIMESTAMP = 4_102_444_800  # 2100-01-01T00:00:00Z


def rating_is_valid(value: float) -> bool:
    """A rating ingest keeps: from MIN_RATING to MAX_RATING in half-star steps (plain Python, no Spark)."""
    return MIN_RATING <= value <= MAX_RATING and value * 2 == round(value * 2)


# the files of a MovieLens directory that ingest reads (ratings and movies required)
INPUT_FILES = ("ratings.csv", "movies.csv", "tags.csv")


def fingerprint(data_dir: str | None) -> dict[str, dict[str, int | str]] | None:
    """{file: {"bytes", "sha256"}} of the input files found in a local MovieLens directory.

    A published run keeps it (runs.params) so the data it was made from can be checked
    again; None for a remote directory (s3a://, hdfs://), whose files are not read here."""
    folder = local_path(data_dir) if data_dir else None
    if folder is None:
        return None
    files = [folder / name for name in INPUT_FILES]
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files if p.is_file()}
