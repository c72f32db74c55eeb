"""serving.store's queries against a store filled through movierec.store.runs' own writer,
once on SQLite and once on PostgreSQL.  Every expected answer follows from the rows written
below (by their formula), never from reading the store back.

Catalogue: the genre names are chosen so that a filter that is not exact would match
another one (LIKE wildcards `%` and `_`, the escape character, names inside other names);
plus movies 1001..1700 ("Bulk <id>", 1900 + id % 100, Comedy) for lookups of many ids.

Two published runs, "run-b" active, "run-a" the one before:
    run-b: user 1 ranks 1..9 -> movie 10 - rank (b_row); user 2 ranks 1..3 -> 1001..1003;
           trained on users 1, 2, 5 (5: no stored rows); popular POPULAR_B (score 100 - rank);
           similar: movie 1 -> 2, 3, 4, 5 (score 1 - rank / 8)
    run-a: user 1 ranks 1..9 -> movie rank (a_row); user 3 ranks 1..2 -> 1, 2;
           trained on users 1, 3; popular 1, 2 (score 10 - rank); similar: movie 1 -> 9 (0.5)
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
import sqlalchemy as sa

from movierec.store import runs
from serving import store

RUN_A, RUN_B = "run-a", "run-b"
GENRED = [
    (1, "Alpha (2001)", 2001, "Sci_Fi"),
    (2, "Beta (2002)", 2002, "SciXFi"),  # what "Sci_Fi" matches if _ is a wildcard
    (3, "Gamma (2003)", 2003, "100%"),
    (4, "Delta (2004)", 2004, "100 Proof|Drama"),  # what "100%" matches if % is a wildcard
    (5, "Epsilon", None, "Drama|Sci_Fi"),
    (6, "Zeta (2006)", 2006, "Dramatic"),  # "Drama" inside a longer name
    (7, "Eta (2007)", 2007, "Melodrama|A\\B"),  # the escape character itself
    (8, "Theta (2008)", 2008, "AB"),  # what "A\B" matches if \ escapes B
    (9, "Iota (2009)", 2009, ""),  # no genres
]
BULK = [(m, f"Bulk {m}", 1900 + m % 100, "Comedy") for m in range(1001, 1701)]
POPULAR_B = [5, 3, 1, 9, 4, 2]


def b_row(rank: int) -> tuple:
    """run-b, user 1: (user, rank, movie, score, cf_score, cb_score); binary fractions, exact in both stores."""
    return (1, rank, 10 - rank, 1 - rank / 16, 0.5 + rank / 64, 0.25 + rank / 128)


def a_row(rank: int) -> tuple:
    return (1, rank, rank, 0.5 - rank / 32, 0.25, 0.125)


def load(engine: sa.Engine) -> None:
    runs.upsert_movies(engine, [GENRED, BULK[:350], BULK[350:]])
    runs.begin_run(engine, RUN_A, {"top_k": 9}, "2026-03-01T00:00:00+00:00")
    runs.load_run(
        engine,
        RUN_A,
        {
            "recommendations": [
                [a_row(r) for r in range(1, 10)] + [(3, 1, 1, 0.3, 0.3, 0.3), (3, 2, 2, 0.2, 0.2, 0.2)]
            ],
            "run_users": [[(1, 30), (3, 7)]],
            "popular_movies": [[(1, 1, 9.0), (2, 2, 8.0)]],
            "similar_movies": [[(1, 1, 9, 0.5)]],
        },
    )
    runs.activate_run(engine, RUN_A, {}, "2026-03-01T01:00:00+00:00")
    runs.begin_run(engine, RUN_B, {"top_k": 9}, "2026-03-02T00:00:00+00:00")
    runs.load_run(
        engine,
        RUN_B,
        {
            "recommendations": [
                [b_row(r) for r in range(1, 6)],
                [b_row(r) for r in range(6, 10)] + [(2, r, 1000 + r, 0.5, 0.5, 0.5) for r in range(1, 4)],
            ],
            "run_users": [[(1, 40), (2, 12), (5, 3)]],
            "popular_movies": [[(r, m, 100.0 - r) for r, m in enumerate(POPULAR_B, start=1)]],
            "similar_movies": [[(1, r, 1 + r, 1 - r / 8) for r in range(1, 5)]],
        },
    )
    runs.activate_run(engine, RUN_B, {}, "2026-03-02T01:00:00+00:00")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_url(request, tmp_path_factory):
    """Makes URLs of fresh, empty stores of one kind: new_url(name)."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("store_queries")
        return lambda name: f"sqlite:///{folder / name}.db"
    server = request.getfixturevalue("postgres_server")
    return lambda name: server.create_database(f"store_queries_{name}")


@pytest.fixture(scope="module")
def engine(new_url):
    engine = runs.engine_for(new_url("known"))
    load(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(engine):
    with engine.connect() as conn:
        yield conn


def page_ids(answer) -> tuple:
    run_id, rows, _ = answer
    return run_id, [row["movie_id"] for row in rows]


# ---------------------------------------------------------------- pure helpers


def test_split_genres():
    assert store.split_genres("Drama|Sci_Fi") == ["Drama", "Sci_Fi"]
    assert store.split_genres("") == [] and store.split_genres(None) == []
    assert store.split_genres("A||B|") == ["A", "B"]


@pytest.mark.parametrize(
    "genre, pattern",
    [
        ("Drama", "%|Drama|%"),
        ("Sci_Fi", "%|Sci\\_Fi|%"),
        ("100%", "%|100\\%|%"),
        ("A\\B", "%|A\\\\B|%"),
    ],
)
def test_genre_pattern_escapes_like_wildcards(genre, pattern):
    assert store.genre_pattern(genre) == pattern


# ---------------------------------------------------------------- the active run and the hot path


def test_active_run_and_its_key(engine, conn):
    active = store.get_active_run(conn)
    assert active["run_id"] == RUN_B
    assert datetime.fromisoformat(active["activated_at"]).utcoffset().total_seconds() == 0
    assert store.get_active_run_key(engine) == (RUN_B, active["activated_at"])
    assert store.get_active_run_id(conn) == RUN_B


def test_stored_page_rows_with_movie_details(engine):
    run_id, rows, rated_since = store.get_stored_page(engine, 1, k=5)
    assert run_id == RUN_B
    assert [row["movie_id"] for row in rows] == [9, 8, 7, 6, 5]
    assert rows[4] == {
        "rank": 5,
        "movie_id": 5,
        "title": "Epsilon",
        "year": None,
        "genres": ["Drama", "Sci_Fi"],
        "score": 1 - 5 / 16,
        "cf_score": 0.5 + 5 / 64,
        "cb_score": 0.25 + 5 / 128,
    }
    assert rows[0]["genres"] == [] and rows[0]["title"] == "Iota (2009)" and rows[0]["year"] == 2009


@pytest.mark.parametrize(
    "k, offset, expected",
    [
        (3, 0, [9, 8, 7]),
        (3, 2, [7, 6, 5]),
        (5, 8, [1]),  # the last row only
        (100, 0, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
    ],
)
def test_stored_page_offsets(engine, k, offset, expected):
    run_id, rows, _ = store.get_stored_page(engine, 1, k=k, offset=offset)
    assert run_id == RUN_B and [row["movie_id"] for row in rows] == expected
    assert [row["rank"] for row in rows] == [10 - m for m in expected]


@pytest.mark.parametrize("user_id, offset", [(1, 9), (5, 0), (3, 0), (999, 0)])
def test_no_stored_rows_gives_no_run_id(engine, user_id, offset):
    # past the end; trained on but not stored; stored only in the older run; unknown
    assert store.get_stored_page(engine, user_id, k=10, offset=offset) == (None, [], False)


@pytest.mark.parametrize(
    "genre, expected",
    [
        ("Sci_Fi", [5, 1]),
        ("SciXFi", [2]),
        ("100%", [3]),
        ("100 Proof", [4]),
        ("Drama", [5, 4]),
        ("Dramatic", [6]),
        ("A\\B", [7]),
        ("AB", [8]),
        ("Sci%", []),
        ("%", []),
        ("_", []),
        ("Dram", []),
    ],
)
def test_stored_page_genre_filter_is_exact(engine, genre, expected):
    run_id, rows, _ = store.get_stored_page(engine, 1, k=20, genre=genre)
    assert [row["movie_id"] for row in rows] == expected
    assert run_id == (RUN_B if expected else None)


def test_stored_page_genre_filter_then_offset(engine):
    # the offset counts rows of the genre, not of the whole list
    assert page_ids(store.get_stored_page(engine, 1, k=10, offset=1, genre="Drama")) == (RUN_B, [4])
    assert page_ids(store.get_stored_page(engine, 1, k=1, genre="Drama")) == (RUN_B, [5])
    assert store.get_stored_page(engine, 1, k=10, offset=2, genre="Drama") == (None, [], False)


# ---------------------------------------------------------------- per-run queries


def test_stored_list_is_the_given_runs_whole_list(conn):
    assert store.get_stored_list(conn, RUN_B, 1) == [
        dict(zip(("rank", "movie_id", "score", "cf_score", "cb_score"), b_row(r)[1:])) for r in range(1, 10)
    ]
    assert [row["movie_id"] for row in store.get_stored_list(conn, RUN_A, 1)] == list(range(1, 10))
    assert store.get_stored_list(conn, RUN_B, 3) == []
    assert [row["movie_id"] for row in store.get_stored_list(conn, RUN_A, 3)] == [1, 2]


@pytest.mark.parametrize(
    "run_id, user_id, expected",
    [
        (RUN_B, 1, True),
        (RUN_B, 5, True),
        (RUN_B, 3, False),
        (RUN_A, 3, True),
        (RUN_A, 2, False),
        ("nope", 1, False),
    ],
)
def test_is_run_user(conn, run_id, user_id, expected):
    assert store.is_run_user(conn, run_id, user_id) is expected


def test_stored_pairs_of_each_run(conn):
    pairs = store.get_stored_pairs(conn, RUN_B, 1, [1, 5, 42])
    assert pairs == {
        1: {"movie_id": 1, "score": 1 - 9 / 16, "cf_score": 0.5 + 9 / 64, "cb_score": 0.25 + 9 / 128},
        5: {"movie_id": 5, "score": 1 - 5 / 16, "cf_score": 0.5 + 5 / 64, "cb_score": 0.25 + 5 / 128},
    }
    assert store.get_stored_pairs(conn, RUN_A, 1, iter([1, 5])) == {
        1: {"movie_id": 1, "score": 0.5 - 1 / 32, "cf_score": 0.25, "cb_score": 0.125},
        5: {"movie_id": 5, "score": 0.5 - 5 / 32, "cf_score": 0.25, "cb_score": 0.125},
    }
    assert store.get_stored_pairs(conn, RUN_B, 1, []) == {}


@pytest.mark.parametrize(
    "run_id, k, offset, genre, expected",
    [
        (RUN_B, 3, 0, None, [(1, 5), (2, 3), (3, 1)]),
        (RUN_B, 2, 2, None, [(3, 1), (4, 9)]),
        (RUN_B, 10, 5, None, [(6, 2)]),
        (RUN_B, 10, 6, None, []),
        (RUN_B, 10, 0, "Sci_Fi", [(1, 5), (3, 1)]),
        (RUN_B, 10, 1, "Sci_Fi", [(3, 1)]),
        (RUN_B, 10, 0, "100%", [(2, 3)]),
        (RUN_B, 10, 0, "Drama", [(1, 5), (5, 4)]),
        (RUN_A, 10, 0, None, [(1, 1), (2, 2)]),
    ],
)
def test_popular(conn, run_id, k, offset, genre, expected):
    rows = store.get_popular(conn, run_id, k, offset, genre)
    assert [(row["rank"], row["movie_id"]) for row in rows] == expected
    top = 100.0 if run_id == RUN_B else 10.0
    for row in rows:
        assert row["score"] == top - row["rank"] and row["cf_score"] is None and row["cb_score"] is None


def test_popular_row_has_movie_details(conn):
    assert store.get_popular(conn, RUN_B, 1) == [
        {
            "rank": 1,
            "movie_id": 5,
            "title": "Epsilon",
            "year": None,
            "genres": ["Drama", "Sci_Fi"],
            "score": 99.0,
            "cf_score": None,
            "cb_score": None,
        }
    ]


def test_popular_scores(conn):
    assert store.get_popular_scores(conn, RUN_B, [1, 9, 7]) == {1: 97.0, 9: 96.0}
    assert store.get_popular_scores(conn, RUN_A, [1, 9]) == {1: 9.0}


def test_similar(conn):
    rows = store.get_similar(conn, RUN_B, 1, 3)
    assert rows == [
        {"rank": 1, "movie_id": 2, "title": "Beta (2002)", "year": 2002, "genres": ["SciXFi"], "score": 0.875},
        {"rank": 2, "movie_id": 3, "title": "Gamma (2003)", "year": 2003, "genres": ["100%"], "score": 0.75},
        {
            "rank": 3,
            "movie_id": 4,
            "title": "Delta (2004)",
            "year": 2004,
            "genres": ["100 Proof", "Drama"],
            "score": 0.625,
        },
    ]
    assert [row["movie_id"] for row in store.get_similar(conn, RUN_B, 1, 10)] == [2, 3, 4, 5]
    assert [row["movie_id"] for row in store.get_similar(conn, RUN_A, 1, 10)] == [9]
    assert store.get_similar(conn, RUN_B, 2, 10) == []


# ---------------------------------------------------------------- the catalogue


def test_movie(conn):
    assert store.get_movie(conn, 5) == {"movie_id": 5, "title": "Epsilon", "year": None, "genres": ["Drama", "Sci_Fi"]}
    assert store.get_movie(conn, 9) == {"movie_id": 9, "title": "Iota (2009)", "year": 2009, "genres": []}
    assert store.get_movie(conn, 4242) is None


def test_movies_beyond_one_in_list(conn):
    # more ids than one IN list holds (500), in any order, with repeats and unknown ids
    ids = list(range(1700, 1000, -1)) + [7, 7, 4242, 0]
    found = store.get_movies(conn, ids)
    assert set(found) == set(range(1001, 1701)) | {7}
    assert found[1001] == {"movie_id": 1001, "title": "Bulk 1001", "year": 1901, "genres": ["Comedy"]}
    assert found[1500] == {"movie_id": 1500, "title": "Bulk 1500", "year": 1900, "genres": ["Comedy"]}
    assert found[1700] == {"movie_id": 1700, "title": "Bulk 1700", "year": 1900, "genres": ["Comedy"]}
    assert found[7]["genres"] == ["Melodrama", "A\\B"]
    assert store.get_movies(conn, []) == {}


def test_catalogue_genres(conn):
    assert store.get_catalogue_genres(conn) == {
        "Sci_Fi",
        "SciXFi",
        "100%",
        "100 Proof",
        "Drama",
        "Dramatic",
        "Melodrama",
        "A\\B",
        "AB",
        "Comedy",
    }


# ---------------------------------------------------------------- never a mix of two runs


def test_a_page_never_mixes_two_runs_while_the_pointer_moves(engine):
    """A writer flips the active run back and forth; every page read meanwhile is wholly one run's."""
    expected = {RUN_B: [b_row(r)[2:] for r in range(1, 10)], RUN_A: [a_row(r)[2:] for r in range(1, 10)]}
    stop = threading.Event()
    errors: list[BaseException] = []

    def flip() -> None:
        try:
            while not stop.is_set():
                for run_id in (RUN_A, RUN_B):
                    runs.rollback(engine, to_run_id=run_id)
        except BaseException as err:  # reported by the test, not lost in the thread
            errors.append(err)

    writer = threading.Thread(target=flip, daemon=True)
    writer.start()
    seen: dict[str, int] = {RUN_A: 0, RUN_B: 0}
    deadline = time.monotonic() + 20
    try:
        while (min(seen.values()) < 20 or sum(seen.values()) < 200) and time.monotonic() < deadline and not errors:
            run_id, rows, _ = store.get_stored_page(engine, 1, k=9)
            assert [(row["movie_id"], row["score"], row["cf_score"], row["cb_score"]) for row in rows] == expected[
                run_id
            ], run_id
            seen[run_id] += 1
    finally:
        stop.set()
        writer.join(30)
        runs.rollback(engine, to_run_id=RUN_B)
    assert not errors, errors
    assert min(seen.values()) >= 20, f"the pointer did not move often enough to test anything: {seen}"
    assert store.get_active_run_key(engine)[0] == RUN_B


def test_after_a_rollback_the_page_is_the_older_runs(engine):
    try:
        runs.rollback(engine)
        assert page_ids(store.get_stored_page(engine, 1, k=3)) == (RUN_A, [1, 2, 3])
        assert page_ids(store.get_stored_page(engine, 3, k=3)) == (RUN_A, [1, 2])
        assert store.get_stored_page(engine, 2, k=3) == (None, [], False)
    finally:
        runs.rollback(engine, to_run_id=RUN_B)
    assert page_ids(store.get_stored_page(engine, 2, k=3)) == (RUN_B, [1001, 1002, 1003])


# ---------------------------------------------------------------- an empty store, a store without tables


def test_before_the_first_publish(new_url):
    engine = runs.engine_for(new_url("empty"))
    try:
        with engine.connect() as conn:
            assert store.get_active_run(conn) is None
        assert store.get_active_run_key(engine) is None
        assert store.get_stored_page(engine, 1, k=10) == (None, [], False)
        assert store.get_stored_page(engine, 1, k=10, genre="Drama") == (None, [], False)
        assert store.get_live_inputs(engine, 1) == (None, False, [])
    finally:
        engine.dispose()


def test_a_driver_error_is_sqlalchemys_and_leaves_the_pool_usable(new_url):
    engine = sa.create_engine(new_url("bare"))  # no tables yet
    try:
        with pytest.raises(sa.exc.DBAPIError):
            store.get_stored_page(engine, 1, k=10)
        with pytest.raises(sa.exc.DBAPIError):
            store.get_active_run_key(engine)
        runs.apply_schema(engine)
        # the failed statement's connection went back to the pool rolled back: the next ones work
        assert store.get_stored_page(engine, 1, k=10) == (None, [], False)
        assert store.get_active_run_key(engine) is None
    finally:
        engine.dispose()


def test_ratings_given_since_the_run_show_in_the_hot_paths_statements(new_url):
    """The stored page and the cache key say whether the user rated anything since the run."""
    from movierec.store.feedback import add_feedback

    engine = runs.engine_for(new_url("rated_since"))
    try:
        load(engine)
        assert store.get_stored_page(engine, 1, k=5)[2] is False
        assert store.get_active_run_key_of_user(engine, 1)[1] is False
        add_feedback(engine, 1, [(3, 4.5, 1_600_000_100), (7, 2.0, 1_600_000_000)])
        run_id, rows, rated_since = store.get_stored_page(engine, 1, k=5)
        assert (run_id, len(rows), rated_since) == (RUN_B, 5, True)
        key, rated_since = store.get_active_run_key_of_user(engine, 1)
        assert key == store.get_active_run_key(engine) and rated_since is True
        assert store.get_active_run_key_of_user(engine, 2)[1] is False  # only that user's
        assert store.get_stored_page(engine, 2, k=3)[2] is False
        # the live list's one statement: the run, whether it knows the user, the ratings oldest first
        assert store.get_live_inputs(engine, 1) == (RUN_B, True, [(7, 2.0), (3, 4.5)])
        assert store.get_live_inputs(engine, 2) == (RUN_B, True, [])  # nothing rated since
        assert store.get_live_inputs(engine, 3) == (RUN_B, False, [])  # not a user of RUN_B
        add_feedback(engine, 3, [(7, 1.0, 1_600_000_000)])
        assert store.get_live_inputs(engine, 3) == (RUN_B, False, [(7, 1.0)])  # new to the run, rated since
    finally:
        engine.dispose()


def test_feedback_up_to_the_active_runs_cut_off_is_the_runs_not_live(new_url):
    """A run trained on feedback received up to its cut-off (run_feedback): only what came later
    is given since the run, in the hot path, in get_live_inputs and in the route's list; a rollback to
    a run that read no feedback makes all of it live again.  Each rating is counted once."""
    from movierec.store.feedback import add_feedback, list_feedback

    engine = runs.engine_for(new_url("cut_off"))
    try:
        load(engine)  # RUN_B active; it read no feedback
        add_feedback(engine, 1, [(3, 4.5, 1_600_000_100)], received_at="2026-03-03T00:00:00.000000+00:00")
        add_feedback(engine, 2, [(5, 3.0, 1_600_000_200)], received_at="2026-03-03T00:00:00.000000+00:00")
        add_feedback(engine, 1, [(7, 2.0, 1_600_000_300)], received_at="2026-03-04T00:00:00.000000+00:00")
        runs.begin_run(engine, "run-c", {"top_k": 9}, "2026-03-03T12:00:00+00:00")
        runs.load_run(
            engine,
            "run-c",
            {
                "recommendations": [[b_row(r) for r in range(1, 4)] + [(2, 1, 1001, 0.5, 0.5, 0.5)]],
                "run_users": [[(1, 41), (2, 13)]],
                "run_feedback": [[("2026-03-03T06:00:00.000000+00:00", 2)]],
            },
        )
        assert store.get_live_inputs(engine, 1)[2] == [(3, 4.5), (7, 2.0)]  # run-c is not active yet
        runs.activate_run(engine, "run-c", {}, "2026-03-04T01:00:00+00:00")
        assert store.get_stored_page(engine, 1, k=3)[2] is True
        assert store.get_stored_page(engine, 2, k=3)[2] is False  # user 2's one rating is in run-c
        assert store.get_active_run_key_of_user(engine, 2)[1] is False
        assert store.get_live_inputs(engine, 1) == ("run-c", True, [(7, 2.0)])
        assert store.get_live_inputs(engine, 2) == ("run-c", True, [])
        with engine.connect() as conn:
            assert [row["movie_id"] for row in list_feedback(conn, 1)] == [7]
        runs.rollback(engine, RUN_B)
        assert store.get_stored_page(engine, 2, k=3)[2] is True
        assert store.get_live_inputs(engine, 1)[2] == [(3, 4.5), (7, 2.0)]
    finally:
        engine.dispose()
