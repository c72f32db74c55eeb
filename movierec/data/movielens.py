"""Facts of the MovieLens CSV format, in plain Python (no pyspark), for every module that needs them.

The generator (`movierec synth`) and the API import these without loading Spark.
"""

from __future__ import annotations

NO_GENRES = "(no genres listed)"  # movies.csv's genres text for a movie without genres
MAX_ID = 2**31 - 1  # user and movie ids are positive 32-bit integers (ALS needs them to fit)
MIN_RATING, MAX_RATING = 0.5, 5.0  # ratings are half stars from 0.5 to 5.0 (ingest's bad_rating rule)


def rating_is_valid(value: float) -> bool:
    """A rating ingest keeps: from MIN_RATING to MAX_RATING in half-star steps (plain Python, no Spark)."""
    return MIN_RATING <= value <= MAX_RATING and value * 2 == round(value * 2)
