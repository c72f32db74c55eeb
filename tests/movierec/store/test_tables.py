"""The store's tables are declared once (movierec.store.tables); sql/schema.sql is their DDL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from movierec.store.tables import MOVIE_COLUMNS, RUN_TABLES, metadata, schema_sql

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "sql" / "schema.sql"


def test_schema_file_is_the_metadata_rendered():
    assert SCHEMA_FILE.read_text() == schema_sql(), "sql/schema.sql is stale: `movierec schema > sql/schema.sql`"


def _described(engine: sa.Engine) -> dict:
    inspector = sa.inspect(engine)
    return {
        name: (
            [(c["name"], c["nullable"]) for c in inspector.get_columns(name)],
            inspector.get_pk_constraint(name)["constrained_columns"],
        )
        for name in inspector.get_table_names()
    }


def test_schema_file_builds_the_same_tables_as_the_code(tmp_path):
    """Running the plain DDL on SQLite gives the tables create_all gives: names, columns,
    nullability and primary keys."""
    from_file = sa.create_engine(f"sqlite:///{tmp_path / 'file.db'}")
    with from_file.begin() as conn:
        for statement in schema_sql("sqlite").split(";"):
            if statement.strip(" \n-") and "CREATE" in statement:
                conn.exec_driver_sql(statement)
    from_code = sa.create_engine(f"sqlite:///{tmp_path / 'code.db'}")
    metadata.create_all(from_code)
    assert _described(from_file) == _described(from_code)
    assert set(_described(from_code)) == {
        "runs",
        "movies",
        "recommendations",
        "run_users",
        "popular_movies",
        "similar_movies",
        "active_run",
        "feedback",
        "run_feedback",
    }


def test_loaded_columns_are_the_tables_columns_after_run_id():
    assert RUN_TABLES["recommendations"] == ("user_id", "rank", "movie_id", "score", "cf_score", "cb_score")
    assert RUN_TABLES["similar_movies"] == ("movie_id", "rank", "similar_movie_id", "score")
    assert RUN_TABLES["run_feedback"] == ("received_until", "feedback_rows")
    assert MOVIE_COLUMNS == ("movie_id", "title", "year", "genres")


def test_the_active_run_pointer_holds_one_row(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'one.db'}")
    metadata.create_all(engine)
    table = metadata.tables["active_run"]
    with engine.begin() as conn:
        conn.execute(sa.insert(table).values(id=1, run_id="a", activated_at="t"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(table).values(id=2, run_id="b", activated_at="t"))
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second active_run row was accepted")
