"""The store: a run's rows go in whole, then one transaction makes that run the one that serves.

A run moves `loading` -> `published` (or `rejected` / `failed`).  Its rows are written while
`active_run` still points at the previous run, and readers always join through `active_run`,
so nobody sees a run being written; `activate_run` then sets the run's status and moves the
pointer in one transaction.  The newest `keep_runs` published runs stay for `rollback`; older
ones are deleted.  Rejected and failed runs keep their `runs` row (the reason) and no rows.

    engine = engine_for(settings.db_url)
    begin_run(engine, run_id, params, started_at)
    load_run(engine, run_id, {"recommendations": batches, "run_users": ..., ...})
    activate_run(engine, run_id, metrics, finished_at, movies=movie_batches)   # or reject_run / fail_run

Batches are lists of tuples in the schema's column order without run_id (`RUN_TABLES`).
PostgreSQL takes them through COPY, SQLite through executemany; all tables of a run load in
one transaction, so a crash leaves nothing half-written and a retry starts clean.

SQLite: WAL (readers never wait for the publisher), a busy timeout, and transactions opened
by SQLAlchemy rather than the driver (which would not open one before a SELECT), so a
reader's statements share one snapshot and a writer takes the write lock at BEGIN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from movierec.spark.paths import check_run_id
from movierec.store.tables import MOVIE_COLUMNS, RUN_TABLES, active_run, metadata, recommendations, runs

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 60_000
SCHEMA_LOCK_KEY = 71042025  # PostgreSQL advisory lock: one process creates the tables
WRITE = "movierec_write"  # execution option: this transaction writes

UPSERT_MOVIE = sa.text(
    "INSERT INTO movies (movie_id, title, year, genres) VALUES (:movie_id, :title, :year, :genres) "
    "ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title, year = excluded.year, genres = excluded.genres "
    "WHERE movies.title <> excluded.title OR movies.genres <> excluded.genres "
    "OR COALESCE(movies.year, -1) <> COALESCE(excluded.year, -1)"
)
POINT_AT = sa.text(
    "INSERT INTO active_run (id, run_id, activated_at) VALUES (1, :run_id, :at) "
    "ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, activated_at = excluded.activated_at"
)

Batch = Sequence[Sequence[Any]]


class StoreError(RuntimeError):
    """A store operation that cannot be done; the message says why and what to do."""


class RunIsActive(StoreError):
    """The run serves right now, so it cannot be reloaded, rejected or failed."""


class RunNotFound(StoreError):
    """No such run id in the store."""


class WrongStatus(StoreError):
    """The run is not in the status the operation needs."""


class EmptyRun(StoreError):
    """A run without recommendations would serve nothing."""


class BadRows(StoreError, ValueError):
    """Rows that do not fit the table; nothing of the load was written."""


class NothingToRollBackTo(StoreError):
    """No published run to point back at."""


# ---------------------------------------------------------------- engine and schema


def engine_for(db_url: str) -> Engine:
    """An engine for the store with the schema applied (idempotent)."""
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    apply_schema(engine)
    return engine


# seconds a command waits for a store server to answer before it gives up
CONNECT_TIMEOUT_S = 10


def sqlite_file(url: sa.URL) -> str | None:
    """The file a SQLite URL names; None for an in-memory database or one named by a file: URI."""
    database = url.database or ""
    return None if database in ("", ":memory:") or database.startswith("file:") else database


def _sqlite_engine(url: sa.URL) -> Engine:
    database = sqlite_file(url)
    if database is not None:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # the driver opens no transactions; _sqlite_on_begin does
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # a writer takes the write lock now, so two writers queue instead of failing on upgrade
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed at the end, rolled back on any error."""
    with engine.execution_options(**{WRITE: True}).begin() as conn:
        yield conn


def apply_schema(engine: Engine) -> None:
    """Create the tables of movierec.store.tables that are missing (idempotent)."""
    with _writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            # CREATE TABLE IF NOT EXISTS races with itself (gunicorn workers boot together)
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        metadata.create_all(conn, checkfirst=True)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


# ---------------------------------------------------------------- reads


def active_run_id(conn: Connection) -> str | None:
    return conn.execute(sa.select(active_run.c.run_id).where(active_run.c.id == 1)).scalar()


def _run_dict(row: sa.RowMapping, active: str | None) -> dict[str, Any]:
    run = dict(row)
    run["params"] = json.loads(run["params"]) if run["params"] else {}
    run["metrics"] = json.loads(run["metrics"]) if run["metrics"] else {}
    run["active"] = run["run_id"] == active
    return run


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """One run: its columns, params and metrics parsed from JSON, and whether it is active."""
    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
    return None if row is None else _run_dict(row, active_run_id(conn))


def list_runs(conn: Connection) -> list[dict[str, Any]]:
    """Every run, newest first (by start, or by end for a run that failed before it began)."""
    active = active_run_id(conn)
    newest_first = sa.func.coalesce(runs.c.started_at, runs.c.finished_at).desc().nulls_last()
    rows = conn.execute(sa.select(runs).order_by(newest_first, runs.c.run_id.desc()))
    return [_run_dict(row, active) for row in rows.mappings()]


# ---------------------------------------------------------------- helpers inside a write transaction


def _active_for_update(conn: Connection) -> str | None:
    """The active run id, locking the pointer row on PostgreSQL so pointer moves queue up."""
    return conn.execute(sa.select(active_run.c.run_id).where(active_run.c.id == 1).with_for_update()).scalar()


def _status_for_update(conn: Connection, run_id: str) -> str | None:
    return conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id).with_for_update()).scalar()


def _require_status(conn: Connection, run_id: str, wanted: str) -> None:
    status = _status_for_update(conn, run_id)
    if status is None:
        raise RunNotFound(f"run {run_id} is not in the store; begin_run it first")
    if status != wanted:
        raise WrongStatus(f"run {run_id} is {status}, not {wanted}; begin_run it again to reload it")


def _delete_run_rows(conn: Connection, run_id: str) -> None:
    for name in RUN_TABLES:
        table = metadata.tables[name]
        conn.execute(sa.delete(table).where(table.c.run_id == run_id))


def _point_at(conn: Connection, run_id: str) -> None:
    conn.execute(POINT_AT, {"run_id": run_id, "at": utc_now()})


# ---------------------------------------------------------------- writing a run


def begin_run(engine: Engine, run_id: str, params: Mapping[str, Any], started_at: str) -> None:
    """Start (or restart) loading a run: its `runs` row is reset to `loading`, earlier rows deleted."""
    check_run_id(run_id)
    with _writing(engine) as conn:
        if _active_for_update(conn) == run_id:
            raise RunIsActive(
                f"run {run_id} is the active run and cannot be reloaded; `movierec rollback` to another run first"
            )
        earlier = _status_for_update(conn, run_id)
        if earlier is not None:
            log.info("run %s was %s: deleting its rows before loading again", run_id, earlier)
        _delete_run_rows(conn, run_id)
        conn.execute(sa.delete(runs).where(runs.c.run_id == run_id))
        conn.execute(
            sa.insert(runs).values(
                run_id=run_id, status="loading", started_at=started_at, params=_json(dict(params or {}))
            )
        )


def load_run(engine: Engine, run_id: str, tables: Mapping[str, Iterable[Batch]]) -> dict[str, int]:
    """Load the rows of several per-run tables in one transaction; returns rows per table."""
    for table in tables:
        _columns(table)
    with _writing(engine) as conn:
        _require_status(conn, run_id, "loading")
        counts = {table: _load_table(conn, table, run_id, batches) for table, batches in tables.items()}
    log.info("run %s loaded: %s", run_id, ", ".join(f"{t} {n} rows" for t, n in counts.items()))
    return counts


def load_rows(engine: Engine, table: str, run_id: str, batches: Iterable[Batch]) -> int:
    """Load one per-run table in its own transaction; returns the number of rows."""
    return load_run(engine, run_id, {table: batches})[table]


def _columns(table: str) -> tuple[str, ...]:
    if table not in RUN_TABLES:
        raise BadRows(f"{table!r} is not a per-run table; use one of {', '.join(RUN_TABLES)}")
    return RUN_TABLES[table]


def _with_run_id(table: str, run_id: str, batches: Iterable[Batch]) -> Iterator[list[tuple]]:
    """Each batch as rows with run_id in front, after checking every row's width."""
    columns = _columns(table)
    for number, batch in enumerate(batches):
        for row in batch:
            if len(row) != len(columns):
                raise BadRows(
                    f"{table}: batch {number} has a row of {len(row)} values {tuple(row)!r}; "
                    f"expected {len(columns)}: {', '.join(columns)}"
                )
        yield [(run_id, *row) for row in batch]


def _load_table(conn: Connection, table: str, run_id: str, batches: Iterable[Batch]) -> int:
    columns = ", ".join(("run_id", *_columns(table)))
    count = 0
    if conn.dialect.name == "postgresql":
        import psycopg

        # COPY through the driver, inside the transaction SQLAlchemy opened
        try:
            with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for rows in _with_run_id(table, run_id, batches):
                        for row in rows:
                            copy.write_row(row)
                        count += len(rows)
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            raise BadRows(f"{table}: {err}") from err
        return count
    marks = ", ".join("?" * (len(_columns(table)) + 1))
    try:
        for rows in _with_run_id(table, run_id, batches):
            if rows:
                conn.exec_driver_sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            count += len(rows)
    except sa.exc.IntegrityError as err:
        raise BadRows(f"{table}: {err.orig}") from err
    return count


def upsert_movies(engine: Engine, batches: Iterable[Batch]) -> int:
    """Add or correct catalogue rows (movie_id, title, year, genres); genres a string or a list."""
    with _writing(engine) as conn:
        return _upsert_movies(conn, batches)


def _upsert_movies(conn: Connection, batches: Iterable[Batch]) -> int:
    count = 0
    for number, batch in enumerate(batches):
        params = [_movie_params(number, row) for row in batch]
        if params:
            conn.execute(UPSERT_MOVIE, params)
        count += len(params)
    log.info("catalogue: %d movies upserted", count)
    return count


def _movie_params(number: int, row: Sequence[Any]) -> dict[str, Any]:
    if len(row) != len(MOVIE_COLUMNS):
        raise BadRows(
            f"movies: batch {number} has a row of {len(row)} values {tuple(row)!r}; "
            f"expected {len(MOVIE_COLUMNS)}: {', '.join(MOVIE_COLUMNS)}"
        )
    movie_id, title, year, genres = row
    if not isinstance(genres, str):
        genres = "|".join(genres)
    return {"movie_id": movie_id, "title": title, "year": year, "genres": genres}


# ---------------------------------------------------------------- ending a run


def activate_run(
    engine: Engine,
    run_id: str,
    metrics: Mapping[str, Any],
    finished_at: str,
    keep_runs: int = 3,
    movies: Iterable[Batch] = (),
) -> list[str]:
    """Publish a loaded run and make it the active one (one transaction), then apply retention.

    `movies`, the run's catalogue rows, are upserted in the same transaction: the catalogue the
    serving run shows changes at the switch, not before (a publish that fails leaves it as it was).
    Returns the run ids that retention deleted.  A failure of retention is logged, not raised:
    by then the run serves, and a publish retry would be refused (the run is active).
    """
    with _writing(engine) as conn:
        previous = _active_for_update(conn)
        _require_status(conn, run_id, "loading")
        if (
            conn.execute(
                sa.select(sa.literal(1)).select_from(recommendations).where(recommendations.c.run_id == run_id).limit(1)
            ).first()
            is None
        ):
            raise EmptyRun(f"run {run_id} has no recommendations; it would serve nothing")
        _upsert_movies(conn, movies)
        conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status="published",
                finished_at=finished_at,
                published_at=utc_now(),
                metrics=_json(dict(metrics)),
                message=None,
            )
        )
        _point_at(conn, run_id)
    log.info("run %s is active (was %s)", run_id, previous)
    try:
        return apply_retention(engine, keep_runs)
    except sa.exc.SQLAlchemyError:
        # the run is published and serving; the next activation deletes what this one could not
        log.exception("run %s is active, but deleting old runs failed", run_id)
        return []


def apply_retention(engine: Engine, keep_runs: int = 3) -> list[str]:
    """Delete published runs beyond the newest `keep_runs`, never the active one; returns their ids."""
    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1, not {keep_runs}")
    with _writing(engine) as conn:
        active = _active_for_update(conn)
        published = (
            conn.execute(
                sa.select(runs.c.run_id)
                .where(runs.c.status == "published")
                .order_by(runs.c.published_at.desc(), runs.c.run_id.desc())
            )
            .scalars()
            .all()
        )
        doomed = [run_id for run_id in published[keep_runs:] if run_id != active]
        for run_id in doomed:
            _delete_run_rows(conn, run_id)
            conn.execute(sa.delete(runs).where(runs.c.run_id == run_id))
    if doomed:
        log.info("retention (keep %d): deleted runs %s", keep_runs, ", ".join(doomed))
    return doomed


def reject_run(engine: Engine, run_id: str, message: str, metrics: Mapping[str, Any] | None = None) -> None:
    """The run did not pass the quality gate: status `rejected`, its rows deleted."""
    _close_run(engine, run_id, "rejected", message, metrics)


def fail_run(engine: Engine, run_id: str, message: str) -> None:
    """The run broke: status `failed`, its rows deleted (a `runs` row is made if there was none)."""
    _close_run(engine, run_id, "failed", message, None)


def _close_run(engine: Engine, run_id: str, status: str, message: str, metrics: Mapping[str, Any] | None) -> None:
    check_run_id(run_id)
    with _writing(engine) as conn:
        if _active_for_update(conn) == run_id:
            raise RunIsActive(
                f"run {run_id} is the active run and cannot be marked {status}; "
                f"`movierec rollback` to another run first"
            )
        _delete_run_rows(conn, run_id)
        values: dict[str, str | None] = {"status": status, "finished_at": utc_now(), "message": message}
        if metrics is not None:
            values["metrics"] = _json(dict(metrics))
        if _status_for_update(conn, run_id) is None:
            conn.execute(sa.insert(runs).values(run_id=run_id, **values))
        else:
            conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))
    log.warning("run %s %s: %s", run_id, status, message)


def rollback(engine: Engine, to_run_id: str | None = None) -> str:
    """Point active_run at the published run before the active one, or at `to_run_id`; returns it."""
    with _writing(engine) as conn:
        active = _active_for_update(conn)
        target = _previous_published(conn, active) if to_run_id is None else _published(conn, to_run_id)
        if target != active:
            _point_at(conn, target)
    log.info("active run: %s (was %s)", target, active)
    return target


def _previous_published(conn: Connection, active: str | None) -> str:
    if active is None:
        raise NothingToRollBackTo("there is no active run to roll back from")
    published_at = conn.execute(sa.select(runs.c.published_at).where(runs.c.run_id == active)).scalar()
    older = (runs.c.published_at < published_at) | ((runs.c.published_at == published_at) & (runs.c.run_id < active))
    target = conn.execute(
        sa.select(runs.c.run_id)
        .where(runs.c.status == "published", older)
        .order_by(runs.c.published_at.desc(), runs.c.run_id.desc())
        .limit(1)
    ).scalar()
    if target is None:
        raise NothingToRollBackTo(
            f"no published run older than the active run {active} is kept; `movierec runs` lists what there is"
        )
    return target


def _published(conn: Connection, run_id: str) -> str:
    status = conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)).scalar()
    if status is None:
        raise RunNotFound(f"run {run_id} is not in the store; `movierec runs` lists what there is")
    if status != "published":
        raise WrongStatus(f"run {run_id} is {status}; only a published run can serve")
    return run_id
