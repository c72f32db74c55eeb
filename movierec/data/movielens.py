"""Facts of the MovieLens CSV format, in plain Python (no pyspark), for every module that needs them.

The generator (`movierec synth`) and the API import these without loading Spark.
"""

from __future__ import annotations

NO_GENRES = "(no genres listed)"  # movies.csv's genres text for a movie without genres
MAX_ID = 2**31 - 1  # user and movie ids are positive 32-bit integers (ALS needs them to fit)
# Timestamps are seconds since 1970; MovieLens's first ratings are from January 1995, so an earlier one is a cut or
# garbled value (a timestamp cut short by one digit is a 1970s date), and one after 2100 is milliseconds or garbage.
FIRST_TIMESTAMP = 788_918_400  # 1995-01-01T00:00:00Z
LAST_TIMESTAMP = 4_102_444_800  # 2100-01-01T00:00:00Z
