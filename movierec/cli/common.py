"""What the commands share: the two kinds of error, and the checks that run before any work starts.

A check here turns a mistake (a store that is not there, a URL no driver can open, a data
directory that does not exist) into one line that says what is wrong and what to do, before
Spark starts or a store is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from movierec.config import env_name, flag_name, redact_url

DB_URL = f"{env_name('db_url')} / {flag_name('db_url')}"
DATA_DIR = f"{env_name('data_dir')} / {flag_name('data_dir')}"
STORE_BACKENDS = ("sqlite", "postgresql")
URL_FORMS = "sqlite:///path/to/store.db or postgresql+psycopg://user:password@host/db"

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine


class UserError(click.ClickException):
    """A mistake in what was asked: one line on stderr, exit code 2."""

    exit_code = 2


class Failed(click.ClickException):
    """The command ran but could not do it (the store refused, the quality gate said no): exit code 1."""

    exit_code = 1


def checked_run_id(run_id: str) -> str:
    from movierec.spark.paths import BadRunId, check_run_id

    try:
        return check_run_id(run_id)
    except BadRunId as err:
        raise UserError(f"--run-id: {err}") from None


def checked_stages(text: str, known: Sequence[str]) -> list[str]:
    """The comma-separated stage list, each stage known and named once."""
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise UserError(f"--stages: unknown stage {', '.join(unknown)}; the stages are {','.join(known)}")
    twice = sorted({s for s in stages if stages.count(s) > 1})
    if twice:
        raise UserError(f"--stages: {', '.join(twice)} given more than once; name each stage once")
    if not stages:
        raise UserError(f"--stages: no stage given; the stages are {','.join(known)}")
    return stages


def check_data_dir(data_dir: str) -> None:
    """A local data directory must hold ratings.csv and movies.csv (a Hadoop URI is Spark's to read)."""
    from movierec.spark.paths import local_path

    local = local_path(data_dir)
    if local is None:
        return
    if not local.is_dir():
        raise UserError(
            f"no data directory {data_dir} ({DATA_DIR}): run `movierec download`, or point "
            f"{env_name('data_dir')} at a MovieLens directory"
        )
    missing = [name for name in ("ratings.csv", "movies.csv") if not (local / name).is_file()]
    if missing:
        raise UserError(
            f"{data_dir} has no {' or '.join(missing)} ({DATA_DIR}): point it at a MovieLens "
            f"directory, or run `movierec download`"
        )


def store_url(db_url: str) -> URL:
    """The parsed URL, if its database is one the store runs on and its driver is installed."""
    import sqlalchemy as sa

    try:
        url = sa.make_url(db_url)
    except sa.exc.ArgumentError:
        raise UserError(f"{DB_URL}: {redact_url(db_url)!r} is not a database URL; use {URL_FORMS}") from None
    backend = url.get_backend_name()
    if backend not in STORE_BACKENDS:
        raise UserError(
            f"{DB_URL}: {backend} is not supported, the store runs on SQLite or PostgreSQL; use {URL_FORMS}"
        )
    try:
        url.get_dialect().import_dbapi()
    except (ImportError, sa.exc.NoSuchModuleError) as err:
        raise UserError(
            f"{DB_URL}: no driver for {url.drivername}:// ({err}); use {URL_FORMS} "
            f"(psycopg 3 is the PostgreSQL driver installed)"
        ) from None
    return url


def _one_line(err: BaseException) -> str:
    return " ".join(str(getattr(err, "orig", None) or err).split())


def check_store(db_url: str, must_exist: bool = False) -> None:
    """Fail now if the store cannot be used: an unsupported URL, a server that does not answer,
    or (with `must_exist`, for commands that only read or move a pointer) no store there yet.
    Creates nothing: a SQLite file is only looked at, a server only asked whether `runs` exists."""
    import sqlalchemy as sa

    from movierec.store.runs import CONNECT_TIMEOUT_S, sqlite_file

    url = store_url(db_url)
    shown = redact_url(db_url)
    make_one = "make one with `movierec pipeline`"
    if url.get_backend_name() == "sqlite":
        database = sqlite_file(url)
        if database is None:
            if must_exist:
                raise UserError(
                    f"{DB_URL}: {shown} names no store file; point it at the store (default sqlite:///var/movierec.db)"
                )
            return
        if not must_exist:
            return
        if not Path(database).is_file():
            raise UserError(f"no store at {database} ({DB_URL}): check the path, or {make_one}")
        engine = sa.create_engine(url)
    else:
        engine = sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            has_runs = sa.inspect(conn).has_table("runs")
    except sa.exc.DBAPIError as err:
        raise UserError(
            f"the store {shown} cannot be opened: {_one_line(err)}; check {DB_URL} and that the database is up"
        ) from None
    finally:
        engine.dispose()
    if must_exist and not has_runs:
        raise UserError(f"{shown} holds no movierec store (no runs table): check {DB_URL}, or {make_one}")


def open_store(db_url: str) -> Engine:
    """An engine for a store that must already exist (read-only commands, rollback)."""
    check_store(db_url, must_exist=True)
    from movierec.store.runs import engine_for

    return engine_for(db_url)
