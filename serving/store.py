"""The store's read side: small Core queries over a connection, returning plain data.

Every query that reads a run's rows takes the run id explicitly: a request resolves the
active run once and passes it on, so one answer never mixes two runs even when a publish
moves the pointer between two statements.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from movierec.store.feedback import since_active_run
from movierec.store.runs import active_run_id as get_active_run_id  # noqa: F401  (re-exported: one definition)
from movierec.store.runs import apply_schema, engine_for
from movierec.store.runs import get_run as get_run  # re-exported: the one definition
from movierec.store.tables import (
    active_run,
    feedback,
    movies,
    popular_movies,
    recommendations,
    run_users,
    similar_movies,
)
from serving.store_guard import StoreGuard, StoreUnavailable, connect_timeout

log = logging.getLogger(__name__)

MOVIE_COLUMNS = (movies.c.title, movies.c.year, movies.c.genres)


def make_engine(db_url: str, timeout: float = 1.0) -> sa.Engine:
    """The one engine of an app: the store's own (which also creates missing tables).

    A network store (PostgreSQL) is guarded (serving/store_guard.py): no use of a connection
    waits more than `timeout` seconds (settings.store_timeout), connecting at most libpq's
    `connect_timeout`, and once the store failed, requests are answered 503 at once until a
    background probe sees it back.  SQLite is built exactly as the batch side builds it.

    A store that is down at boot does not stop the API from starting: /healthz answers,
    /readyz and the data routes say 503 until the store is back (the publisher creates
    the tables when it first writes)."""
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        try:
            return engine_for(db_url)
        except sa.exc.OperationalError as err:
            _down_at_boot(db_url, err.orig)
            return sa.create_engine(db_url, pool_pre_ping=True)
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": connect_timeout(timeout)}
    engine = sa.create_engine(
        url,
        # the guard pings each connection at checkout itself, under its deadline: SQLAlchemy's
        # pre-ping runs before any pool event and would wait for a frozen server forever
        pool_pre_ping=False,
        # a thread that finds every connection in use waits this long, not SQLAlchemy's 30 s (the
        # pool holds 5 + 10 overflow, more than gunicorn's threads per worker, so this is rare)
        pool_timeout=timeout,
        connect_args=connect_args,
    )
    guard = StoreGuard(engine, timeout)  # kept alive by the engine's event listeners
    try:
        # the tables at boot: a worker may wait for another's advisory lock, so a longer deadline
        with guard.bounded_by(max(timeout, BOOT_TIMEOUT)):
            apply_schema(engine)
    except (sa.exc.DBAPIError, StoreUnavailable) as err:
        _down_at_boot(db_url, getattr(err, "orig", err))
    return engine


BOOT_TIMEOUT = 30.0  # seconds creating the tables at boot may take


def _down_at_boot(db_url: str, reason: object) -> None:
    log.warning(
        "the store at %s did not answer at boot (%s); serving 503 until it does",
        sa.make_url(db_url).render_as_string(hide_password=True),
        reason,
    )


def split_genres(text: str | None) -> list[str]:
    """MovieLens `Adventure|Comedy` text to a list; '' (no genres) to []."""
    return [g for g in (text or "").split("|") if g]


def _movie_fields(row: Any) -> dict[str, Any]:
    return {"title": row.title, "year": row.year, "genres": split_genres(row.genres)}


def genre_pattern(genre: str) -> str:
    """LIKE pattern for one exact name inside `|`-separated genres."""
    escaped = genre.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%|{escaped}|%"


def _genre_filter(pattern):
    """Rows whose genres contain the name `pattern` was made for (portable: || and LIKE)."""
    wrapped = sa.literal("|") + movies.c.genres + sa.literal("|")
    return wrapped.like(pattern, escape="\\")


# ---------------------------------------------------------------- runs


def get_active_run(conn: sa.Connection) -> dict[str, Any] | None:
    """The serving run's id and activation time, or None before the first publish."""
    row = conn.execute(sa.select(active_run.c.run_id, active_run.c.activated_at).where(active_run.c.id == 1)).first()
    return None if row is None else {"run_id": row.run_id, "activated_at": row.activated_at}


# ---------------------------------------------------------------- users


def _has_feedback() -> sa.Label:
    """Whether the store holds ratings of the user given since the run (the API then scores
    the user's list live with them): in the hot path's one statement, an index lookup."""
    return sa.exists().where(feedback.c.user_id == sa.bindparam("user_id"), since_active_run()).label("has_feedback")


def _stored_page_statement(with_genre: bool) -> sa.Select:
    query = (
        sa.select(
            active_run.c.run_id,
            _has_feedback(),
            recommendations.c.rank,
            recommendations.c.movie_id,
            recommendations.c.score,
            recommendations.c.cf_score,
            recommendations.c.cb_score,
            *MOVIE_COLUMNS,
        )
        .select_from(active_run)
        .join(
            recommendations,
            sa.and_(
                recommendations.c.run_id == active_run.c.run_id, recommendations.c.user_id == sa.bindparam("user_id")
            ),
        )
        .outerjoin(movies, movies.c.movie_id == recommendations.c.movie_id)
        .where(active_run.c.id == 1)
        .order_by(recommendations.c.rank)
        .limit(sa.bindparam("k"))
        .offset(sa.bindparam("offset"))
    )
    if with_genre:
        query = query.where(_genre_filter(sa.bindparam("genre_pattern")))
    return query


class CompiledQuery:
    """A Core statement compiled once per dialect and run on a pooled DBAPI connection.

    For the API's busiest statement: building a Select, looking up SQLAlchemy's compiled
    cache and opening a transaction around one SELECT cost several times more than SQLite
    takes to answer it.  Driver errors are raised as SQLAlchemy's, like any other query."""

    def __init__(self, statement: sa.ClauseElement):
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def _compile(self, dialect: sa.Dialect):
        compiled = self.statement.compile(dialect=dialect)
        assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        entry = (compiled.string, names, dict(compiled.params))
        self._compiled[dialect.name] = entry
        return entry

    def rows(self, engine: sa.Engine, **params: Any) -> list[tuple]:
        sql, names, defaults = self._compiled.get(engine.dialect.name) or self._compile(engine.dialect)
        values = {**defaults, **params}
        args = tuple(values[name] for name in names) if names is not None else values
        try:
            connection = engine.raw_connection()
            try:
                cursor = connection.cursor()
                try:
                    cursor.execute(sql, args)
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
            finally:
                connection.close()  # back to the pool, which rolls back whatever the driver opened
        except engine.dialect.loaded_dbapi.Error as err:
            raise sa.exc.DBAPIError.instance(sql, args, err, engine.dialect.loaded_dbapi.Error) from err


ACTIVE_RUN_KEY = CompiledQuery(sa.select(active_run.c.run_id, active_run.c.activated_at).where(active_run.c.id == 1))
ACTIVE_RUN_KEY_OF_USER = CompiledQuery(
    sa.select(active_run.c.run_id, active_run.c.activated_at, _has_feedback()).where(active_run.c.id == 1)
)
# what a list scored live needs of the store, in one statement: the active run, whether the run
# was trained on the user (run_users), and the user's ratings since it, oldest first (one row
# with NULLs when there are none)
LIVE_INPUTS = CompiledQuery(
    sa.select(
        active_run.c.run_id,
        sa.exists()
        .where(run_users.c.run_id == active_run.c.run_id, run_users.c.user_id == sa.bindparam("user_id"))
        .label("known"),
        feedback.c.movie_id,
        feedback.c.rating,
    )
    .select_from(active_run)
    .outerjoin(feedback, sa.and_(feedback.c.user_id == sa.bindparam("user_id"), since_active_run()))
    .where(active_run.c.id == 1)
    .order_by(feedback.c.timestamp, feedback.c.movie_id)
)
STORED_PAGE = CompiledQuery(_stored_page_statement(with_genre=False))
STORED_PAGE_OF_GENRE = CompiledQuery(_stored_page_statement(with_genre=True))


def get_active_run_key(engine: sa.Engine) -> tuple[str, str] | None:
    """(run id, activation time) of the active run, None before the first publish.

    Each activation (publish or rollback) writes a new activation time, so the pair names
    one period in which the served rows cannot change: a key for caching answers."""
    rows = ACTIVE_RUN_KEY.rows(engine)
    return (rows[0][0], rows[0][1]) if rows else None


def get_active_run_key_of_user(engine: sa.Engine, user_id: int) -> tuple[tuple[str, str] | None, bool]:
    """(get_active_run_key, whether the user has ratings given since the run) in one statement."""
    rows = ACTIVE_RUN_KEY_OF_USER.rows(engine, user_id=user_id)
    return ((rows[0][0], rows[0][1]), bool(rows[0][2])) if rows else (None, False)


def get_live_inputs(engine: sa.Engine, user_id: int) -> tuple[str | None, bool, list[tuple[int, float]]]:
    """(active run id, whether the run was trained on the user (is_run_user), the user's ratings
    given since the run as (movie id, rating), oldest first) in one statement; (None, False, [])
    before the first publish."""
    rows = LIVE_INPUTS.rows(engine, user_id=user_id)
    if not rows:
        return None, False, []
    return rows[0][0], bool(rows[0][1]), [(movie, rating) for _, _, movie, rating in rows if movie is not None]


def get_stored_page(
    engine: sa.Engine, user_id: int, k: int, offset: int = 0, genre: str | None = None
) -> tuple[str | None, list[dict[str, Any]], bool]:
    """The hot path in one statement: (active run id, rows offset..offset+k of the user's
    stored list, optionally only movies of `genre`, whether the user has ratings given since
    the run).  The run id is None when the user has no such rows (or there is no active
    run): the caller then looks closer."""
    if genre is None:
        rows = STORED_PAGE.rows(engine, user_id=user_id, k=k, offset=offset)
    else:
        rows = STORED_PAGE_OF_GENRE.rows(
            engine, user_id=user_id, k=k, offset=offset, genre_pattern=genre_pattern(genre)
        )
    if not rows:
        return None, [], False
    return (
        rows[0][0],
        [
            {
                "rank": rank,
                "movie_id": movie_id,
                "title": title,
                "year": year,
                "genres": split_genres(genres),
                "score": score,
                "cf_score": cf_score,
                "cb_score": cb_score,
            }
            for _, _, rank, movie_id, score, cf_score, cb_score, title, year, genres in rows
        ],
        bool(rows[0][1]),
    )


def get_stored_list(conn: sa.Connection, run_id: str, user_id: int) -> list[dict[str, Any]]:
    """The user's whole stored list in rank order, without movie details."""
    rows = conn.execute(
        sa.select(
            recommendations.c.rank,
            recommendations.c.movie_id,
            recommendations.c.score,
            recommendations.c.cf_score,
            recommendations.c.cb_score,
        )
        .where(recommendations.c.run_id == run_id, recommendations.c.user_id == user_id)
        .order_by(recommendations.c.rank)
    ).all()
    return [dict(row._mapping) for row in rows]


def is_run_user(conn: sa.Connection, run_id: str, user_id: int) -> bool:
    """Was the run trained on this user's ratings? (No: a cold start.)"""
    return (
        conn.execute(
            sa.select(sa.literal(1))
            .select_from(run_users)
            .where(run_users.c.run_id == run_id, run_users.c.user_id == user_id)
        ).first()
        is not None
    )


def get_stored_pairs(
    conn: sa.Connection, run_id: str, user_id: int, movie_ids: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """movie id -> stored score row, for the given movies that are in the user's list."""
    ids = list(movie_ids)
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            recommendations.c.movie_id, recommendations.c.score, recommendations.c.cf_score, recommendations.c.cb_score
        ).where(
            recommendations.c.run_id == run_id,
            recommendations.c.user_id == user_id,
            recommendations.c.movie_id.in_(ids),
        )
    ).all()
    return {row.movie_id: dict(row._mapping) for row in rows}


def get_popular(
    conn: sa.Connection, run_id: str, k: int, offset: int = 0, genre: str | None = None
) -> list[dict[str, Any]]:
    """The run's most popular movies (cold starts), optionally only movies of `genre`."""
    query = (
        sa.select(popular_movies.c.rank, popular_movies.c.movie_id, popular_movies.c.score, *MOVIE_COLUMNS)
        .outerjoin(movies, movies.c.movie_id == popular_movies.c.movie_id)
        .where(popular_movies.c.run_id == run_id)
        .order_by(popular_movies.c.rank)
        .limit(k)
        .offset(offset)
    )
    if genre is not None:
        query = query.where(_genre_filter(genre_pattern(genre)))
    return [
        {
            "rank": row.rank,
            "movie_id": row.movie_id,
            **_movie_fields(row),
            "score": row.score,
            "cf_score": None,
            "cb_score": None,
        }
        for row in conn.execute(query)
    ]


def get_popular_scores(conn: sa.Connection, run_id: str, movie_ids: Iterable[int]) -> dict[int, float]:
    """movie id -> the run's popularity score, for the given movies among its popular ones."""
    ids = list(movie_ids)
    rows = conn.execute(
        sa.select(popular_movies.c.movie_id, popular_movies.c.score).where(
            popular_movies.c.run_id == run_id, popular_movies.c.movie_id.in_(ids)
        )
    ).all()
    return {row.movie_id: row.score for row in rows}


# ---------------------------------------------------------------- movies


def get_movie(conn: sa.Connection, movie_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(movies).where(movies.c.movie_id == movie_id)).first()
    return None if row is None else {"movie_id": row.movie_id, **_movie_fields(row)}


def get_movies(conn: sa.Connection, movie_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """movie id -> catalogue entry, for the ids that are in the catalogue."""
    ids = sorted(set(movie_ids))
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):  # keep IN lists short for both dialects
        chunk = ids[start : start + 500]
        for row in conn.execute(sa.select(movies).where(movies.c.movie_id.in_(chunk))):
            found[row.movie_id] = {"movie_id": row.movie_id, **_movie_fields(row)}
    return found


def get_similar(conn: sa.Connection, run_id: str, movie_id: int, k: int) -> list[dict[str, Any]]:
    """The run's nearest movies to `movie_id` by ALS item factors, best first."""
    rows = conn.execute(
        sa.select(similar_movies.c.rank, similar_movies.c.similar_movie_id, similar_movies.c.score, *MOVIE_COLUMNS)
        .outerjoin(movies, movies.c.movie_id == similar_movies.c.similar_movie_id)
        .where(similar_movies.c.run_id == run_id, similar_movies.c.movie_id == movie_id)
        .order_by(similar_movies.c.rank)
        .limit(k)
    ).all()
    return [
        {"rank": row.rank, "movie_id": row.similar_movie_id, **_movie_fields(row), "score": row.score} for row in rows
    ]


def get_catalogue_genres(conn: sa.Connection) -> set[str]:
    """Every genre name in the catalogue."""
    names: set[str] = set()
    for text in conn.execute(sa.select(movies.c.genres).distinct()).scalars():
        names.update(split_genres(text))
    return names
