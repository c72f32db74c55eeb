"""Facts of the MovieLens CSV format, in plain Python (no pyspark), for every module that needs them.

The generator (`movierec synth`) and the API import these without loading Spark.
"""

from __future__ import annotations

NO_GENRES = "(no genres listed)"  # movies.csv's genres text for a movie without genres
MAX_ID = 2**31 - 1  # user and movie ids are positive 32-bit integers (ALS needs them to fit)
