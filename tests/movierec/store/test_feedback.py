"""movierec.store.feedback: ratings posted between runs, stored by ingest's rules, once each, all or none;
on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from movierec.data.movielens import FIRST_TIMESTAMP, LAST_TIMESTAMP, MAX_ID
from movierec.store import feedback as fb
from movierec.store.runs import engine_for, upsert_movies
from movierec.store.tables import feedback as feedback_table

# ratings' times in the MovieLens era (ingest's rule: 1995 to 2100)
T = 1_600_000_000

CATALOGUE = [(m, f"Movie {m} (2000)", 2000, "Drama") for m in range(1, 11)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'feedback.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = engine_for(url)
    with engine.begin() as conn:  # the PostgreSQL database is the session's: start from no feedback
        conn.execute(sa.delete(feedback_table))
    upsert_movies(engine, [CATALOGUE])
    yield engine
    engine.dispose()


def _listed(engine, user_id):
    with engine.connect() as conn:
        return fb.list_feedback(conn, user_id)


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(feedback_table)).scalar_one()


def test_rows_are_stored_and_listed_oldest_first(engine):
    added = fb.add_feedback(
        engine, 7, [(3, 4.5, T + 200), (1, 2.0, T + 100), (3, 1.0, T + 150)], received_at="2026-03-01T00:00Z"
    )
    assert added == fb.Added(stored=3, already_stored=0)
    assert _listed(engine, 7) == [
        {"movie_id": 1, "rating": 2.0, "timestamp": T + 100, "received_at": "2026-03-01T00:00Z"},
        {"movie_id": 3, "rating": 1.0, "timestamp": T + 150, "received_at": "2026-03-01T00:00Z"},
        {"movie_id": 3, "rating": 4.5, "timestamp": T + 200, "received_at": "2026-03-01T00:00Z"},
    ]
    assert _listed(engine, 8) == []


def test_a_repeated_call_stores_nothing_twice(engine):
    rows = [(1, 4.0, T + 100), (2, 3.5, T + 100)]
    assert fb.add_feedback(engine, 7, rows, received_at="first") == fb.Added(2, 0)
    assert fb.add_feedback(engine, 7, rows, received_at="second") == fb.Added(0, 2)
    # the same key with another rating is the same event: the first one stays
    assert fb.add_feedback(engine, 7, [(1, 0.5, T + 100), (3, 5.0, T + 100)], received_at="third") == fb.Added(1, 1)
    assert [(r["movie_id"], r["rating"], r["received_at"]) for r in _listed(engine, 7)] == [
        (1, 4.0, "first"),
        (2, 3.5, "first"),
        (3, 5.0, "third"),
    ]
    assert _count(engine) == 3


def test_more_rows_than_one_statement_holds(engine):
    rows = [(1 + t % 10, 3.0, T + t) for t in range(2 * fb.INSERT_BATCH + 17)]
    assert fb.add_feedback(engine, 9, rows) == fb.Added(len(rows), 0)
    assert fb.add_feedback(engine, 9, rows) == fb.Added(0, len(rows))
    assert _count(engine) == len(rows)


@pytest.mark.parametrize(
    "bad_row,reason",
    [
        ((0, 4.0, T + 1), "bad_id"),
        ((MAX_ID + 1, 4.0, T + 1), "bad_id"),
        ((True, 4.0, T + 1), "bad_id"),
        ((2, 4.3, T + 1), "bad_rating"),
        ((2, 0.0, T + 1), "bad_rating"),
        ((2, 5.5, T + 1), "bad_rating"),
        ((2, math.nan, T + 1), "bad_rating"),
        ((2, "4", T + 1), "bad_rating"),
        ((2, 4.0, -1), "bad_timestamp"),
        ((2, 4.0, 1.5), "bad_timestamp"),
        ((2, 4.0, 160_000_000), "bad_timestamp"),  # a digit short: 1975
        ((99, 4.0, T + 1), "unknown_movie"),
        ((1, 2.0, T + 100), "duplicate"),  # row 0 gives movie 1 at 100 already
    ],
)
def test_a_bad_row_stores_nothing_of_the_call(engine, bad_row, reason):
    rows = [(1, 4.0, T + 100), (2, 3.0, T + 100), bad_row]
    with pytest.raises(fb.BadFeedback) as caught:
        fb.add_feedback(engine, 7, rows)
    assert (caught.value.index, caught.value.reason) == (2, reason)
    assert str(caught.value).startswith("row 2: ")
    assert _count(engine) == 0


def test_a_bad_user_id_stores_nothing(engine):
    with pytest.raises(fb.BadFeedback) as caught:
        fb.add_feedback(engine, 0, [(1, 4.0, T + 100)])
    assert caught.value.reason == "bad_id" and _count(engine) == 0


def test_the_rules_are_ingests():
    """Known answers of movierec.data.validation's rating rules (ids 1..MAX_ID, half stars 0.5..5, 1995..2100)."""
    good = [(1, 0.5, T + 0), (MAX_ID, 5.0, LAST_TIMESTAMP - 1), (5, 3, FIRST_TIMESTAMP), (5, 2.5, 1_700_000_000)]
    assert [fb.row_problem(*row) for row in good] == [None] * len(good)
    bad = {
        (-1, 3.0, T + 0): "bad_id",
        (5, 0.25, T + 0): "bad_rating",
        (5, 5.01, T + 0): "bad_rating",
        (5, math.inf, T + 0): "bad_rating",
        (5, False, T + 0): "bad_rating",
        (5, 3.0, None): "bad_timestamp",
        (5, 3.0, FIRST_TIMESTAMP - 1): "bad_timestamp",  # a timestamp cut short by a digit lands in the 1970s
        (5, 3.0, LAST_TIMESTAMP): "bad_timestamp",  # milliseconds, not seconds
        (5, 3.0, True): "bad_timestamp",
    }
    assert {row: (fb.row_problem(*row) or ("",))[0] for row in bad} == bad
