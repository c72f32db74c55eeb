"""The store's tables, declared once: the publisher, the API's queries and the tests use these.

`sql/schema.sql` is this metadata rendered as DDL (`movierec schema` prints it; a test keeps the
file equal to it), for readers and DBAs who want the plain SQL.  The same tables run on SQLite
and PostgreSQL: times are ISO-8601 UTC text, parameters and metrics JSON text.  A run's rows
are all written before `active_run` points at it (see movierec.store.runs).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

metadata = sa.MetaData()

RUN_ID = sa.String(200)
TIME = sa.String(40)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False, comment="loading | published | rejected | failed"),
    sa.Column("started_at", TIME),
    sa.Column("finished_at", TIME),
    sa.Column("published_at", TIME),
    sa.Column("params", sa.Text, comment="JSON: the settings that define the run's model and data"),
    sa.Column("metrics", sa.Text, comment="JSON: evaluation metrics"),
    sa.Column("message", sa.Text, comment="why a run was rejected or failed"),
)

# the catalogue, shared by all runs (movies are only ever added or corrected)
movies = sa.Table(
    "movies",
    metadata,
    sa.Column("movie_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("year", sa.Integer),
    sa.Column("genres", sa.Text, nullable=False, comment="MovieLens style: Adventure|Comedy, '' for none"),
)

recommendations = sa.Table(
    "recommendations",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rank", sa.Integer, primary_key=True, autoincrement=False, comment="1 = best"),
    sa.Column("movie_id", sa.Integer, nullable=False),
    sa.Column("score", sa.Double, nullable=False, comment="cf_weight * cf_score + cb_weight * cb_score"),
    sa.Column("cf_score", sa.Double, nullable=False, comment="collaborative component, 0..1"),
    sa.Column("cb_score", sa.Double, nullable=False, comment="content component, 0..1"),
)

# users the run was trained on: a user here without recommendations is scored live,
# a user not here is a cold start
run_users = sa.Table(
    "run_users",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ratings_count", sa.Integer, nullable=False),
)

# most popular movies of the run, for cold starts
popular_movies = sa.Table(
    "popular_movies",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("movie_id", sa.Integer, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
)

# nearest movies by ALS item factors (cosine), precomputed per run
similar_movies = sa.Table(
    "similar_movies",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("movie_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rank", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("similar_movie_id", sa.Integer, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
)

# one row: the run that serves
active_run = sa.Table(
    "active_run",
    metadata,
    sa.Column("id", sa.Integer, sa.CheckConstraint("id = 1", name="one_row"), primary_key=True, autoincrement=False),
    sa.Column("run_id", RUN_ID, nullable=False),
    sa.Column("activated_at", TIME, nullable=False),
)

# ratings posted to the API between runs (POST /users/<id>/ratings), shared by all runs:
# the key is the rating itself, so a repeated call stores nothing twice
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("movie_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rating", sa.Double, nullable=False, comment="0.5..5.0 in half stars"),
    sa.Column(
        "timestamp", sa.BigInteger, primary_key=True, autoincrement=False, comment="unix seconds, as in ratings.csv"
    ),
    sa.Column("received_at", TIME, nullable=False, comment="when the API stored it (ingest's cut-off reads this)"),
    sa.Index("feedback_received_at", "received_at"),
)

# the feedback a run was trained on: ingest read the feedback received up to this time (one row,
# none when the run read no feedback); later feedback is applied live (movierec.store.feedback)
run_feedback = sa.Table(
    "run_feedback",
    metadata,
    sa.Column("run_id", RUN_ID, primary_key=True),
    sa.Column("received_until", TIME, nullable=False, comment="feedback.received_at up to this is in the run"),
    sa.Column("feedback_rows", sa.Integer, nullable=False, comment="feedback rows ingest read"),
)

# the tables a run owns rows of, and the columns a loaded row carries (the store adds run_id)
RUN_TABLES: dict[str, tuple[str, ...]] = {
    table.name: tuple(c.name for c in table.columns if c.name != "run_id")
    for table in (recommendations, run_users, popular_movies, similar_movies, run_feedback)
}
MOVIE_COLUMNS: tuple[str, ...] = tuple(c.name for c in movies.columns)


def schema_sql(dialect_name: str = "postgresql") -> str:
    """The metadata as plain DDL (what sql/schema.sql holds)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}[dialect_name]
    header = (
        "-- movierec store: generated from movierec/store/tables.py by `movierec schema` (do not edit).\n"
        "-- The same tables run on SQLite and PostgreSQL (the code creates them from the same metadata).\n"
    )
    parts = [header]
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip()
        notes = [f"--   {c.name}: {c.comment}" for c in table.columns if c.comment]
        parts.append("\n".join(notes + [ddl]) + ";\n")
        parts += [
            str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip() + ";\n"
            for index in table.indexes
        ]
    return "\n".join(line.rstrip() for line in "\n".join(parts).splitlines()) + "\n"
