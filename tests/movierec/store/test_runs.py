"""movierec/store/runs.py against a real SQLite file and a real PostgreSQL server (tests/postgres.py).

Expected values are written out by hand or built by small generators whose output is known
from their formula, never read back from the store.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest
import sqlalchemy as sa

from movierec import cli
from movierec.store import runs as store

TABLES = (
    "runs",
    "movies",
    "recommendations",
    "run_users",
    "popular_movies",
    "similar_movies",
    "run_feedback",
    "active_run",
)
_databases = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty store URL: a SQLite file in a folder that does not exist yet, or a new PG database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'not-yet' / 'store.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"store_{next(_databases)}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture
def engine(db_url):
    engine = store.engine_for(db_url)
    yield engine
    engine.dispose()


# ---------------------------------------------------------------- data whose content is known


def recs(users: int, per_user: int, salt: int) -> list[tuple]:
    """(user_id, rank, movie_id, score, cf_score, cb_score); salt makes two runs' rows differ."""
    return [
        (u, r, salt * 100_000 + u * 50 + r, salt + 1.0 / r, 0.5 / r, 0.25 * salt + r / 1000)
        for u in range(1, users + 1)
        for r in range(1, per_user + 1)
    ]


def batched(rows: list, size: int) -> list[list]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


RUN_USERS = [(1, 31), (2, 5), (3, 120)]
POPULAR = [(1, 356, 0.98), (2, 318, 0.75), (3, 296, 0.5)]
SIMILAR = [(356, 1, 318, 0.9), (356, 2, 296, 0.125), (318, 1, 356, 0.9)]
MOVIES = [
    (356, "Forrest Gump (1994)", 1994, "Comedy|Drama|Romance|War"),
    (318, "Shawshank Redemption, The (1994)", 1994, ["Crime", "Drama"]),
    (296, "Pulp Fiction (1994)", None, ""),
]


def publish(engine, run_id: str, rows: list[tuple], keep_runs: int = 3, metrics=None, **tables) -> list[str]:
    store.begin_run(engine, run_id, {"top_k": 20, "seed": 42}, "2025-01-01T00:00:00")
    store.load_run(engine, run_id, {"recommendations": batched(rows, 1000), **tables})
    return store.activate_run(
        engine, run_id, metrics or {"hybrid": {"ndcg@10": 0.25}}, "2025-01-01T01:00:00", keep_runs=keep_runs
    )


def rows_of(engine, table: str, run_id: str) -> list[tuple]:
    columns = ", ".join(store.RUN_TABLES[table])
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(f"SELECT {columns} FROM {table} WHERE run_id = :r ORDER BY {columns}"), {"r": run_id}
        )
        return [tuple(row) for row in result]


def count(engine, table: str, run_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": run_id}).scalar()


def active(engine) -> str | None:
    with engine.connect() as conn:
        return store.active_run_id(conn)


def serving(engine, user_id: int) -> list[tuple]:
    """What a reader gets for a user: the active run's rows, in one statement."""
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT r.run_id, r.rank, r.movie_id FROM recommendations r "
                    "JOIN active_run a ON a.run_id = r.run_id WHERE a.id = 1 AND r.user_id = :u ORDER BY r.rank"
                ),
                {"u": user_id},
            )
        ]


# ---------------------------------------------------------------- schema


def test_schema_applies_twice(db_url):
    for _ in range(2):
        engine = store.engine_for(db_url)
        with engine.connect() as conn:
            assert set(TABLES) <= set(sa.inspect(conn).get_table_names())
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store.SQLITE_BUSY_TIMEOUT_MS
        engine.dispose()


# ---------------------------------------------------------------- publishing


def test_publish_and_read_back_exactly(engine):
    rows = recs(3, 4, salt=1)
    store.upsert_movies(engine, [MOVIES[:2], MOVIES[2:]])
    store.begin_run(engine, "r1", {"top_k": 4, "weights": [0.7, 0.3]}, "2025-01-01T00:00:00")
    counts = store.load_run(
        engine,
        "r1",
        {
            "recommendations": batched(rows, 5),
            "run_users": [RUN_USERS],
            "popular_movies": [POPULAR],
            "similar_movies": [SIMILAR[:1], [], SIMILAR[1:]],
        },
    )
    assert counts == {"recommendations": 12, "run_users": 3, "popular_movies": 3, "similar_movies": 3}
    with engine.connect() as conn:
        assert store.active_run_id(conn) is None  # loaded, not yet serving
        assert store.get_run(conn, "r1")["status"] == "loading"

    assert (
        store.activate_run(engine, "r1", {"hybrid": {"ndcg@10": 0.3125}, "coverage": 0.5}, "2025-01-01T01:00:00") == []
    )

    assert rows_of(engine, "recommendations", "r1") == [
        (1, 1, 100051, 2.0, 0.5, 0.251),
        (1, 2, 100052, 1.5, 0.25, 0.252),
        (1, 3, 100053, 1 + 1 / 3, 0.5 / 3, 0.253),
        (1, 4, 100054, 1.25, 0.125, 0.254),
        (2, 1, 100101, 2.0, 0.5, 0.251),
        (2, 2, 100102, 1.5, 0.25, 0.252),
        (2, 3, 100103, 1 + 1 / 3, 0.5 / 3, 0.253),
        (2, 4, 100104, 1.25, 0.125, 0.254),
        (3, 1, 100151, 2.0, 0.5, 0.251),
        (3, 2, 100152, 1.5, 0.25, 0.252),
        (3, 3, 100153, 1 + 1 / 3, 0.5 / 3, 0.253),
        (3, 4, 100154, 1.25, 0.125, 0.254),
    ]
    assert rows_of(engine, "run_users", "r1") == [(1, 31), (2, 5), (3, 120)]
    assert rows_of(engine, "popular_movies", "r1") == [(1, 356, 0.98), (2, 318, 0.75), (3, 296, 0.5)]
    assert rows_of(engine, "similar_movies", "r1") == [(318, 1, 356, 0.9), (356, 1, 318, 0.9), (356, 2, 296, 0.125)]
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text("SELECT * FROM movies ORDER BY movie_id"))] == [
            (296, "Pulp Fiction (1994)", None, ""),
            (318, "Shawshank Redemption, The (1994)", 1994, "Crime|Drama"),
            (356, "Forrest Gump (1994)", 1994, "Comedy|Drama|Romance|War"),
        ]
        run = store.get_run(conn, "r1")
        published_at = run.pop("published_at")
        assert run == {
            "run_id": "r1",
            "status": "published",
            "started_at": "2025-01-01T00:00:00",
            "finished_at": "2025-01-01T01:00:00",
            "params": {"top_k": 4, "weights": [0.7, 0.3]},
            "metrics": {"hybrid": {"ndcg@10": 0.3125}, "coverage": 0.5},
            "message": None,
            "active": True,
        }
        assert published_at.startswith("20") and published_at.endswith("+00:00")
        assert store.active_run_id(conn) == "r1"
        assert store.get_run(conn, "nope") is None


def test_upsert_movies_corrects_the_catalogue(engine):
    assert store.upsert_movies(engine, [MOVIES]) == 3
    store.upsert_movies(
        engine, [[(296, "Pulp Fiction (1994)", 1994, "Crime|Thriller"), (1, "Toy Story (1995)", 1995, [])]]
    )
    with engine.connect() as conn:
        assert [
            tuple(r) for r in conn.execute(sa.text("SELECT movie_id, year, genres FROM movies ORDER BY movie_id"))
        ] == [
            (1, 1995, ""),
            (296, 1994, "Crime|Thriller"),
            (318, 1994, "Crime|Drama"),
            (356, 1994, "Comedy|Drama|Romance|War"),
        ]
    with pytest.raises(store.BadRows, match="expected 4: movie_id, title, year, genres"):
        store.upsert_movies(engine, [[(2, "Jumanji (1995)", 1995, "Adventure", "extra")]])


def test_retried_load_gives_no_duplicates(engine):
    rows = recs(50, 10, salt=1)
    # attempt 1: the rows went in, then the task died before activation
    store.begin_run(engine, "r1", {}, "t0")
    store.load_run(engine, "r1", {"recommendations": batched(rows, 100), "run_users": [RUN_USERS]})
    assert count(engine, "recommendations", "r1") == 500

    # attempt 2 dies half-way through the load: the transaction leaves nothing
    def dies_half_way():
        yield rows[:200]
        raise RuntimeError("executor lost")

    store.begin_run(engine, "r1", {}, "t1")
    with pytest.raises(RuntimeError, match="executor lost"):
        store.load_run(engine, "r1", {"run_users": [RUN_USERS], "recommendations": dies_half_way()})
    assert count(engine, "recommendations", "r1") == 0
    assert count(engine, "run_users", "r1") == 0

    # attempt 3 succeeds: exactly one copy of every row
    store.begin_run(engine, "r1", {}, "t2")
    store.load_run(engine, "r1", {"recommendations": batched(rows, 100), "run_users": [RUN_USERS]})
    store.activate_run(engine, "r1", {}, "t3")
    assert rows_of(engine, "recommendations", "r1") == sorted(rows)
    assert rows_of(engine, "run_users", "r1") == RUN_USERS
    with engine.connect() as conn:
        assert store.get_run(conn, "r1")["started_at"] == "t2"


def test_bad_rows_are_refused_and_lose_nothing(engine):
    publish(engine, "good", recs(5, 3, salt=1))
    store.begin_run(engine, "bad", {}, "t0")
    too_short = recs(5, 3, salt=2) + [(6, 1, 7, 0.5)]
    with pytest.raises(
        store.BadRows, match="row of 4 values.*expected 6: user_id, rank, movie_id, score, cf_score, cb_score"
    ):
        store.load_run(engine, "bad", {"run_users": [RUN_USERS], "recommendations": batched(too_short, 4)})
    with pytest.raises(store.BadRows, match="'ratings' is not a per-run table"):
        store.load_run(engine, "bad", {"recommendations": [recs(1, 1, salt=2)], "ratings": [[(1, 2)]]})
    with pytest.raises(store.BadRows, match="recommendations: .*(UNIQUE|duplicate key)"):
        store.load_rows(engine, "recommendations", "bad", [recs(1, 2, salt=2), recs(1, 1, salt=2)])
    assert count(engine, "recommendations", "bad") == 0
    assert count(engine, "run_users", "bad") == 0
    assert active(engine) == "good"
    assert serving(engine, 5) == [("good", 1, 100251), ("good", 2, 100252), ("good", 3, 100253)]


def test_activate_switches_the_active_run(engine):
    publish(engine, "r1", recs(2, 3, salt=1))
    assert serving(engine, 2) == [("r1", 1, 100101), ("r1", 2, 100102), ("r1", 3, 100103)]
    publish(engine, "r2", recs(2, 2, salt=2))
    assert serving(engine, 2) == [("r2", 1, 200101), ("r2", 2, 200102)]
    assert count(engine, "recommendations", "r1") == 6  # kept for rollback
    with engine.connect() as conn:
        assert [(r["run_id"], r["status"], r["active"]) for r in store.list_runs(conn)] == [
            ("r2", "published", True),
            ("r1", "published", False),
        ]


def test_retention_keeps_the_newest_three(engine):
    store.upsert_movies(engine, [MOVIES])
    deleted = [
        publish(
            engine,
            f"r{i}",
            recs(2, 2, salt=i),
            run_users=[RUN_USERS],
            popular_movies=[POPULAR],
            similar_movies=[SIMILAR],
            run_feedback=[[(f"2025-01-0{i}T00:00:00", i)]],
        )
        for i in range(1, 6)
    ]
    assert deleted == [[], [], [], ["r1"], ["r2"]]
    with engine.connect() as conn:
        assert [r["run_id"] for r in store.list_runs(conn)] == ["r5", "r4", "r3"]
    for table in store.RUN_TABLES:
        assert count(engine, table, "r1") == 0 and count(engine, table, "r2") == 0
        assert count(engine, table, "r3") > 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM movies")).scalar() == 3  # the catalogue stays

    # the active run is kept even when it is not among the newest
    assert store.rollback(engine, to_run_id="r3") == "r3"
    assert store.apply_retention(engine, keep_runs=1) == ["r4"]
    with engine.connect() as conn:
        assert [(r["run_id"], r["active"]) for r in store.list_runs(conn)] == [("r5", False), ("r3", True)]


def test_reject_and_fail_leave_the_active_run_serving(engine):
    publish(engine, "good", recs(3, 2, salt=1))
    store.begin_run(engine, "worse", {}, "t0")
    store.load_run(engine, "worse", {"recommendations": [recs(3, 2, salt=2)], "run_users": [RUN_USERS]})
    store.reject_run(
        engine, "worse", "hybrid NDCG@10 0.20 is 20% below the active run's 0.25", {"hybrid": {"ndcg@10": 0.2}}
    )

    store.begin_run(engine, "broken", {}, "t0")
    store.load_rows(engine, "recommendations", "broken", [recs(3, 2, salt=3)])
    store.fail_run(engine, "broken", "publish: connection reset")
    store.fail_run(engine, "never-begun", "ingest: ratings.csv missing")

    assert active(engine) == "good"
    assert serving(engine, 3) == [("good", 1, 100151), ("good", 2, 100152)]
    for run_id in ("worse", "broken"):
        for table in store.RUN_TABLES:
            assert count(engine, table, run_id) == 0
    with engine.connect() as conn:
        worse, broken, never = (store.get_run(conn, r) for r in ("worse", "broken", "never-begun"))
    assert (worse["status"], worse["message"], worse["metrics"]) == (
        "rejected",
        "hybrid NDCG@10 0.20 is 20% below the active run's 0.25",
        {"hybrid": {"ndcg@10": 0.2}},
    )
    assert (broken["status"], broken["message"]) == ("failed", "publish: connection reset")
    assert (never["status"], never["message"]) == ("failed", "ingest: ratings.csv missing")
    with pytest.raises(store.WrongStatus, match="worse is rejected"):
        store.activate_run(engine, "worse", {}, "t1")
    for close in (lambda: store.reject_run(engine, "good", "no", {}), lambda: store.fail_run(engine, "good", "no")):
        with pytest.raises(store.RunIsActive):
            close()
    assert serving(engine, 3) == [("good", 1, 100151), ("good", 2, 100152)]


def test_rollback_to_previous_and_to_a_named_run(engine):
    with pytest.raises(store.NothingToRollBackTo, match="no active run"):
        store.rollback(engine)
    for i in (1, 2, 3):
        publish(engine, f"r{i}", recs(1, 1, salt=i))
    assert store.rollback(engine) == "r2"
    assert serving(engine, 1) == [("r2", 1, 200051)]
    assert store.rollback(engine) == "r1"
    with pytest.raises(store.NothingToRollBackTo, match="no published run older than the active run r1"):
        store.rollback(engine)
    assert active(engine) == "r1"
    assert store.rollback(engine, to_run_id="r3") == "r3"
    assert serving(engine, 1) == [("r3", 1, 300051)]
    with pytest.raises(store.RunNotFound, match="nope is not in the store"):
        store.rollback(engine, to_run_id="nope")
    store.fail_run(engine, "r4", "broke")
    with pytest.raises(store.WrongStatus, match="r4 is failed"):
        store.rollback(engine, to_run_id="r4")
    assert active(engine) == "r3"


def test_refuses_to_reload_the_active_run(engine):
    publish(engine, "r1", recs(4, 3, salt=1))
    with pytest.raises(store.RunIsActive, match="r1 is the active run"):
        store.begin_run(engine, "r1", {}, "t1")
    with pytest.raises(store.WrongStatus, match="r1 is published, not loading"):
        store.load_rows(engine, "recommendations", "r1", [recs(1, 1, salt=9)])
    with pytest.raises(store.WrongStatus):
        store.activate_run(engine, "r1", {}, "t1")
    with pytest.raises(store.RunNotFound):
        store.load_rows(engine, "recommendations", "r9", [recs(1, 1, salt=9)])
    store.begin_run(engine, "empty", {}, "t1")
    store.load_run(engine, "empty", {"run_users": [RUN_USERS]})
    with pytest.raises(store.EmptyRun, match="empty has no recommendations"):
        store.activate_run(engine, "empty", {}, "t2")
    assert active(engine) == "r1"
    assert rows_of(engine, "recommendations", "r1") == sorted(recs(4, 3, salt=1))


# ---------------------------------------------------------------- atomicity under a concurrent reader


def test_reader_never_sees_half_a_run_or_a_mix(engine):
    users, batch_size = 2000, 1000
    run_a, run_b = recs(users, 20, salt=1), recs(users, 25, salt=2)
    publish(engine, "A", run_a)
    watched = (1, users)  # the first and the last user written
    expected = {
        run_id: tuple((run_id, *row) for row in rows if row[0] in watched)
        for run_id, rows in (("A", run_a), ("B", run_b))
    }
    query = sa.text(
        "SELECT r.run_id, r.user_id, r.rank, r.movie_id, r.score, r.cf_score, r.cb_score FROM recommendations r "
        "JOIN active_run a ON a.run_id = r.run_id WHERE a.id = 1 AND r.user_id IN (:u1, :u2) "
        "ORDER BY r.user_id, r.rank"
    )
    observations: list[tuple] = []
    observed, stop, failures = threading.Event(), threading.Event(), []

    def reader():
        try:
            while not stop.is_set():
                with engine.connect() as conn:  # a new transaction, so new commits are seen
                    observations.append(tuple(tuple(row) for row in conn.execute(query, {"u1": 1, "u2": users})))
                observed.set()
                time.sleep(0.002)
        except Exception as err:  # reported by the main thread
            failures.append(err)
            observed.set()

    def paced(rows):
        """B's batches; after each one is written (uncommitted), wait until the reader has looked."""
        for batch in batched(rows, batch_size):
            observed.clear()
            yield batch
            assert observed.wait(60), "the reader stopped reading"

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        store.begin_run(engine, "B", {}, "t0")
        store.load_run(engine, "B", {"recommendations": paced(run_b)})
        deleted = store.activate_run(engine, "B", {}, "t1", keep_runs=1)  # A's rows go while the reader reads
        for _ in range(3):
            observed.clear()
            assert observed.wait(60)
    finally:
        stop.set()
        thread.join(60)
    assert not failures, failures
    assert deleted == ["A"]

    assert len(expected["A"]) == 40 and len(expected["B"]) == 50
    seen = [next((run for run, rows in expected.items() if obs == rows), obs) for obs in observations]
    strangers = [obs for obs in seen if obs not in ("A", "B")]
    assert not strangers, f"{len(strangers)} observations were neither run A nor run B, first: {strangers[0]!r}"
    switch = seen.index("B")
    assert seen[:switch] == ["A"] * switch and seen[switch:] == ["B"] * (len(seen) - switch)
    assert switch >= len(run_b) // batch_size  # the reader looked during every batch of B's load


# ---------------------------------------------------------------- command line


def test_cli_runs_and_rollback(db_url, capsys):
    engine = store.engine_for(db_url)
    evaluated = {"protocol": {"k": 10}, "models": {"als": {"ndcg": 0.2}, "hybrid": {"ndcg": 0.25}}}
    publish(engine, "night-1", recs(1, 1, salt=1), metrics=evaluated)
    publish(engine, "night-2", recs(1, 1, salt=2), metrics=evaluated)
    store.fail_run(engine, "night-3", "score: out of memory")
    engine.dispose()

    assert cli.main(["runs", "--db-url", db_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run_id", "status", "started", "finished", "published", "hybrid", "NDCG@10", "message"]
    assert lines[2].split()[:2] == ["night-3", "failed"] and lines[2].endswith("  score: out of memory")
    assert lines[3].split()[:3] == ["*", "night-2", "published"]
    assert lines[3].split()[-1] == "0.2500"
    assert lines[4].split()[:2] == ["night-1", "published"]

    assert cli.main(["rollback", "--db-url", db_url]) == 0
    assert capsys.readouterr().out.strip() == "active run: night-1 (was night-2)"
    assert cli.main(["rollback", "--db-url", db_url]) == 1
    assert "no published run older than the active run night-1" in capsys.readouterr().err
    assert cli.main(["rollback", "--to", "night-2", "--db-url", db_url]) == 0
    assert capsys.readouterr().out.strip() == "active run: night-2 (was night-1)"
    assert cli.main(["runs", "--json", "--db-url", db_url]) == 0
    assert '"run_id": "night-2"' in capsys.readouterr().out


# ---------------------------------------------------------------- the catalogue changes at the switch


def _titles(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT movie_id, title FROM movies")).all())


def test_the_catalogue_changes_only_when_the_run_becomes_active(engine):
    store.upsert_movies(engine, [MOVIES])
    publish(engine, "r1", recs(2, 2, salt=1))
    renamed = [(356, "Forrest Gump (Director's Cut) (1994)", 1994, "Comedy|Drama"), (999, "New (2025)", 2025, "Drama")]

    # loaded but not yet active: readers still see the old catalogue
    store.begin_run(engine, "r2", {"top_k": 20}, "2025-01-02T00:00:00")
    store.load_run(engine, "r2", {"recommendations": [recs(2, 2, salt=2)]})
    assert _titles(engine)[356] == "Forrest Gump (1994)" and 999 not in _titles(engine)

    # a switch that fails (a run with no recommendations) changes nothing
    store.begin_run(engine, "empty", {"top_k": 20}, "2025-01-02T00:00:00")
    with pytest.raises(store.EmptyRun):
        store.activate_run(engine, "empty", {}, "2025-01-02T01:00:00", movies=[renamed])
    assert _titles(engine)[356] == "Forrest Gump (1994)" and 999 not in _titles(engine)

    store.activate_run(engine, "r2", {}, "2025-01-02T01:00:00", movies=[renamed])
    assert _titles(engine)[356] == "Forrest Gump (Director's Cut) (1994)" and _titles(engine)[999] == "New (2025)"
