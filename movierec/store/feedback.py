"""Ratings given between runs: stored by the API (POST /users/<id>/ratings), read by the next ingest.

A row is checked by ingest's own rules before it is stored (`row_problem`: ids 1..MAX_ID, a
rating from 0.5 to 5.0 in half stars, a timestamp from 1995 to 2100, a movie of the catalogue), so
what the batch later reads from here is what it would have kept from ratings.csv.  One call
is one transaction: every row goes in or none does.  The key is (user, movie, timestamp), and
a row already there is left as it is (ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike),
so a client that repeats a call after a lost answer stores nothing twice.

The next run learns from it: its ingest reads the rows received up to a cut-off (`read_until`),
and publish records the cut-off with the run (`run_feedback`).  The API applies live only what
came later (`since_active_run`), so across the switch each rating is counted once, by the run
or by the live path.  The cut-off lies `SETTLE_SECONDS` before ingest starts: a row is stamped
when its call begins, and a call still open at the cut-off commits well within that.

    stored, already = add_feedback(engine, user_id, [(movie_id, rating, timestamp), ...])
    with engine.connect() as conn:
        rows = list_feedback(conn, user_id)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from movierec.config import redact_url
from movierec.data.movielens import FIRST_TIMESTAMP, LAST_TIMESTAMP, MAX_ID, MAX_RATING, MIN_RATING, rating_is_valid
from movierec.store.runs import CONNECT_TIMEOUT_S, BadRows, StoreError, _sqlite_engine, _writing, sqlite_file, utc_now
from movierec.store.tables import active_run, feedback, movies, run_feedback

# rows per INSERT statement: 5 parameters a row stays far below SQLite's 32,766 and PostgreSQL's 65,535
INSERT_BATCH = 1000

Row = tuple[int, float, int]  # (movie_id, rating, timestamp)

# seconds between ingest's cut-off and its start: far longer than a feedback call's transaction
# may stay open (the API's store_timeout bounds each statement), so none commits a row older
# than the cut-off after ingest read
SETTLE_SECONDS = 60


class BadFeedback(BadRows):
    """A row that ingest would set aside; nothing of the call was stored.

    `index` is the row's position in what was given (0-based), `reason` one of
    movierec.data.validation's reasons (bad_id, bad_rating, bad_timestamp, unknown_movie, duplicate)."""

    def __init__(self, index: int, reason: str, message: str):
        super().__init__(f"row {index}: {message}")
        self.index = index
        self.reason = reason


@dataclass(frozen=True)
class Added:
    stored: int  # rows written by this call
    already_stored: int  # rows that were there before (the same user, movie and timestamp)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def row_problem(movie_id: Any, rating: Any, timestamp: Any) -> tuple[str, str] | None:
    """(reason, message) when ingest would set this rating aside for its values, else None.

    The same rules as movierec.data.validation.check_ratings, in plain Python; the catalogue
    check needs the store and is made by `add_feedback`."""
    if not _is_id(movie_id):
        return "bad_id", f"movie_id must be an integer from 1 to {MAX_ID}"
    if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not math.isfinite(rating):
        return "bad_rating", "rating must be a number"
    if not rating_is_valid(float(rating)):
        return "bad_rating", f"rating must be from {MIN_RATING} to {MAX_RATING} in half stars, got {rating}"
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int)
        or not FIRST_TIMESTAMP <= timestamp < LAST_TIMESTAMP
    ):
        return (
            "bad_timestamp",
            f"timestamp must be whole unix seconds from {FIRST_TIMESTAMP} (1995) to {LAST_TIMESTAMP} (2100)",
        )
    return None


def check_rows(conn: Connection, user_id: int, rows: Sequence[Row]) -> None:
    """Raise BadFeedback for the first row ingest would not keep (values, catalogue, repeats)."""
    if not _is_id(user_id):
        raise BadFeedback(0, "bad_id", f"user_id must be an integer from 1 to {MAX_ID}")
    seen: dict[tuple[int, int], int] = {}
    for index, (movie_id, rating, timestamp) in enumerate(rows):
        problem = row_problem(movie_id, rating, timestamp)
        if problem is not None:
            raise BadFeedback(index, *problem)
        first = seen.setdefault((movie_id, timestamp), index)
        if first != index:
            raise BadFeedback(
                index, "duplicate", f"movie {movie_id} at timestamp {timestamp} is already given in row {first}"
            )
    known = known_movies(conn, {row[0] for row in rows})
    for index, (movie_id, _, _) in enumerate(rows):
        if movie_id not in known:
            raise BadFeedback(index, "unknown_movie", f"movie {movie_id} is not in the catalogue")


def known_movies(conn: Connection, movie_ids: Iterable[int]) -> set[int]:
    """Which of these movies the catalogue (the `movies` table) lists."""
    wanted = sorted(set(movie_ids))
    found: set[int] = set()
    for start in range(0, len(wanted), INSERT_BATCH):
        chunk = wanted[start : start + INSERT_BATCH]
        found.update(conn.execute(sa.select(movies.c.movie_id).where(movies.c.movie_id.in_(chunk))).scalars())
    return found


def _insert(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT (the key) DO NOTHING, in the dialect's own construct."""
    from sqlalchemy.dialects import postgresql, sqlite

    keys = [c.name for c in feedback.primary_key.columns]
    if dialect_name == "postgresql":
        return postgresql.insert(feedback).on_conflict_do_nothing(index_elements=keys)
    if dialect_name == "sqlite":
        return sqlite.insert(feedback).on_conflict_do_nothing(index_elements=keys)
    raise BadRows(f"the feedback store supports SQLite and PostgreSQL, not {dialect_name}")


def add_feedback(engine: Engine, user_id: int, rows: Sequence[Row], received_at: str | None = None) -> Added:
    """Check the rows by ingest's rules, then store them in one transaction; rows already there are kept.

    Raises BadFeedback (nothing stored) for the first row that is not a valid rating of a
    catalogued movie.  Committed when this returns."""
    received_at = received_at or utc_now()
    values = [
        {"user_id": user_id, "movie_id": m, "rating": float(r), "timestamp": t, "received_at": received_at}
        for m, r, t in rows
    ]
    with _writing(engine) as conn:
        check_rows(conn, user_id, rows)
        statement = _insert(conn.dialect.name)
        stored = 0
        for start in range(0, len(values), INSERT_BATCH):
            # one multi-row INSERT; RETURNING names the rows written (psycopg's rowcount says -1 here)
            chunk = statement.values(values[start : start + INSERT_BATCH]).returning(feedback.c.movie_id)
            stored += len(conn.execute(chunk).all())
    return Added(stored=stored, already_stored=len(values) - stored)


def since_active_run() -> sa.ColumnElement[bool]:
    """Feedback rows the active run was not trained on: received after its cut-off (all of
    them when it read none, or before the first publish)."""
    # correlate(None): self-contained, also inside statements that read active_run themselves
    until = (
        sa.select(run_feedback.c.received_until)
        .join(active_run, active_run.c.run_id == run_feedback.c.run_id)
        .where(active_run.c.id == 1)
        .correlate(None)
        .scalar_subquery()
    )
    return feedback.c.received_at > sa.func.coalesce(until, "")


def list_feedback(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    """The user's stored feedback beyond the active run, oldest rating first."""
    query = (
        sa.select(feedback.c.movie_id, feedback.c.rating, feedback.c.timestamp, feedback.c.received_at)
        .where(feedback.c.user_id == user_id, since_active_run())
        .order_by(feedback.c.timestamp, feedback.c.movie_id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def cutoff(now: datetime | None = None) -> str:
    """The received_at up to which a run starting `now` reads feedback (as utc_now writes it)."""
    at = (now or datetime.now(UTC)) - timedelta(seconds=SETTLE_SECONDS)
    return at.isoformat(timespec="microseconds")


class FeedbackUnreadable(StoreError):
    """The store holds feedback that cannot be read now: the run would miss it."""


def read_until(db_url: str, until: str, batch: int = 10_000) -> Iterator[list[tuple[int, int, float, int]]]:
    """Every feedback row received up to `until`, (user_id, movie_id, rating, timestamp), in
    batches, in the key's order.  Creates nothing: no store file, or a store without the
    feedback table yet, has no feedback.  A server that does not answer raises FeedbackUnreadable."""
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        database = sqlite_file(url)
        if database is None or not Path(database).is_file():
            return
        engine = _sqlite_engine(url)
    else:
        engine = sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    query = (
        sa.select(feedback.c.user_id, feedback.c.movie_id, feedback.c.rating, feedback.c.timestamp)
        .where(feedback.c.received_at <= until)
        .order_by(feedback.c.user_id, feedback.c.movie_id, feedback.c.timestamp)
    )
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(feedback.name):
                return
            result = conn.execution_options(yield_per=batch).execute(query)
            for rows in result.partitions():
                yield [(int(u), int(m), float(r), int(t)) for u, m, r, t in rows]
    except sa.exc.DBAPIError as err:
        raise FeedbackUnreadable(
            f"the store {redact_url(db_url)} cannot be read for its feedback: "
            f"{' '.join(str(err.orig or err).split())[:300]}; start it, or train on the files alone "
            f"with --no-learn-from-feedback"
        ) from None
    finally:
        engine.dispose()
