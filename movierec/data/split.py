"""Per-user temporal hold-out: each user's latest ratings are the future the models must predict.

The rule (one rule for the test split and for the validation split carved from training):

- a user's rows are ordered by (timestamp, movie id), ascending; ties in timestamp are
  broken by movie id, so the split is deterministic whatever order the rows arrive in
  (of two ratings made in the same second, the one with the higher movie id counts as later);
- a user with n ratings sends their last ``max(1, floor(share * n))`` rows to the hold-out;
- a user with a single rating stays entirely in the training part: holding out their only
  rating would leave nothing to learn their taste from, and the hold-out could only test
  the cold-start fallback (which is evaluated separately);
- ``0 < share < 1`` guarantees every user with two or more ratings keeps at least one
  training row (``floor(share * n) <= n - 1``).

Input: any DataFrame with at least ``user_id``, ``movie_id`` and ``timestamp`` (the ingest
output, `schemas.RATINGS`); every column is kept, and the two parts are disjoint and
together equal the input.  Both parts are derived from one window over the input, so a
caller that uses both may want to ``persist()`` the input first.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from movierec.data.schemas import MOVIE, TIMESTAMP, USER

HELD_OUT = "_held_out"
# share * n is computed in floating point: 0.29 * 100 == 28.999999999999996, whose floor
# would hold out one row too few; a nudge far below 1/n for any real n fixes that
_FLOOR_EPSILON = 1e-9


def _check_share(share: float) -> None:
    if not 0 < share < 1:
        raise ValueError(f"hold-out share must be strictly between 0 and 1, got {share!r}")


def holdout_size(n: Column, share: float) -> Column:
    """How many of a user's n latest rows are held out: 0 if n == 1, else max(1, floor(share*n))."""
    return F.when(n <= 1, F.lit(0)).otherwise(
        F.greatest(F.lit(1), F.floor(n * F.lit(share) + F.lit(_FLOOR_EPSILON)).cast("int"))
    )


def mark_holdout(ratings: DataFrame, share: float = 0.2) -> DataFrame:
    """`ratings` plus a boolean column `_held_out`, true for each user's latest rows."""
    _check_share(share)
    by_user = Window.partitionBy(USER)
    latest_first = by_user.orderBy(F.col(TIMESTAMP).desc(), F.col(MOVIE).desc())
    return (
        ratings.withColumn("_n", F.count(F.lit(1)).over(by_user))
        .withColumn("_from_end", F.row_number().over(latest_first))
        .withColumn(HELD_OUT, F.col("_from_end") <= holdout_size(F.col("_n"), share))
        .drop("_n", "_from_end")
    )


def temporal_split(ratings: DataFrame, holdout_share: float = 0.2) -> tuple[DataFrame, DataFrame]:
    """(train, test): each user's latest `holdout_share` of ratings (at least one) go to test.

    Users with a single rating are kept entirely in train (see the module docstring).
    """
    marked = mark_holdout(ratings, holdout_share)
    train = marked.filter(~F.col(HELD_OUT)).drop(HELD_OUT)
    test = marked.filter(F.col(HELD_OUT)).drop(HELD_OUT)
    return train, test


def validation_split(train: DataFrame, share: float = 0.2) -> tuple[DataFrame, DataFrame]:
    """(fit, validation) carved from the training part only, by the same rule as the test split.

    Tuning on `validation` never sees the test rows, and since every validation row is
    older than every test row of the same user, tuning still predicts the future from the past.
    """
    return temporal_split(train, share)


def random_split(ratings: DataFrame, holdout_share: float = 0.25, seed: int = 42) -> tuple[DataFrame, DataFrame]:
    """(train, test): a random `holdout_share` of each user's ratings (at least one) go to test.

    The other protocol the peers benchmark (benchmarks/peers.py) measures beside the temporal
    one, so that a model's lead does not hinge on one kind of split.  Same sizes as
    `temporal_split` (``max(1, floor(share * n))`` per user; a single-rating user stays in
    train), but the held-out rows are the user's first by a seeded hash of (user, movie, seed)
    instead of the latest: pure and deterministic whatever order or partitioning the rows
    arrive in (Spark's `rand` is not), and another seed draws another split.
    """
    _check_share(holdout_share)
    by_user = Window.partitionBy(USER)
    drawn = by_user.orderBy(F.xxhash64(F.col(USER), F.col(MOVIE), F.lit(int(seed))), F.col(MOVIE))
    marked = (
        ratings.withColumn("_n", F.count(F.lit(1)).over(by_user))
        .withColumn("_drawn", F.row_number().over(drawn))
        .withColumn(HELD_OUT, F.col("_drawn") <= holdout_size(F.col("_n"), holdout_share))
        .drop("_n", "_drawn")
    )
    return marked.filter(~F.col(HELD_OUT)).drop(HELD_OUT), marked.filter(F.col(HELD_OUT)).drop(HELD_OUT)


# ---------------------------------------------------------------- seeded samples

HASH_BITS = 53  # a hash's low 53 bits, as a share of 2**53, are exactly a double in [0, 1)


def seeded_share(columns: Sequence[str], seed: int) -> Column:
    """A number in [0, 1) drawn from a hash of the row's `columns` and `seed`: the same for the
    same values and seed whatever partitions or order the rows arrive in (Spark's `rand` is not)."""
    hashed = F.xxhash64(*[F.col(c) for c in columns], F.lit(int(seed)))
    return hashed.bitwiseAND(F.lit((1 << HASH_BITS) - 1)) / F.lit(float(1 << HASH_BITS))


def seeded_sample(df: DataFrame, columns: Sequence[str], fraction: float, seed: int) -> DataFrame:
    """The rows of `df` whose `seeded_share` is below `fraction`: each kept with that chance,
    independently of the others, the same rows for the same seed (`fraction` 1 keeps every row)."""
    return df if fraction >= 1 else df.where(seeded_share(columns, seed) < F.lit(float(fraction)))


def capped_sample(df: DataFrame, columns: Sequence[str], max_rows: int, seed: int) -> tuple[DataFrame, int, float]:
    """(about `max_rows` rows of `df` by `seeded_sample`, its row count, the chance each was kept):
    every row, chance 1.0, when there are no more than `max_rows`."""
    rows = df.count()
    fraction = 1.0 if rows <= max_rows else max_rows / rows
    return seeded_sample(df, columns, fraction, seed), rows, fraction
