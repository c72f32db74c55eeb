"""How fast the store loads a run: rows/s for N recommendation rows into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/store_load.py --rows 1000000
    .venv/bin/python benchmarks/store_load.py --postgres-url postgresql+psycopg://user@host/db

Without --postgres-url it starts a throwaway PostgreSQL (tests/postgres.py) with the server's
default, durable settings (fsync on).  Rows are generated batch by batch while loading, as the
publish stage streams them from Spark; the time to generate them alone is printed too.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from movierec.store import runs as store  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

PER_USER = 20


def batches(rows: int, batch_size: int):
    """`rows` recommendation rows, PER_USER per user, in lists of `batch_size`."""
    batch = []
    for i in range(rows):
        user, rank = divmod(i, PER_USER)
        batch.append((user + 1, rank + 1, (user * 7 + rank * 13) % 60_000, 1.0 / (rank + 1), 0.5, 0.25))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def measure(name: str, db_url: str, rows: int, batch_size: int) -> None:
    """Publish two runs; activating the second one deletes the first (keep_runs=1)."""
    engine = store.engine_for(db_url)
    try:
        for attempt in (1, 2):
            run_id = f"bench-{attempt}"
            store.begin_run(engine, run_id, {"rows": rows}, store.utc_now())
            started = time.perf_counter()
            loaded = store.load_rows(engine, "recommendations", run_id, batches(rows, batch_size))
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            deleted = store.activate_run(engine, run_id, {}, store.utc_now(), keep_runs=1)
            activate_s = time.perf_counter() - started
            print(
                f"{name:<11} {loaded:>10,} rows  load {load_s:7.2f} s  {loaded / load_s:>10,.0f} rows/s"
                f"  activate {activate_s:6.3f} s" + (f" (deleting {', '.join(deleted)})" if deleted else "")
            )
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--postgres-url", help="load into this database instead of a throwaway server")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    started = time.perf_counter()
    generated = sum(len(b) for b in batches(args.rows, args.batch_size))
    gen_s = time.perf_counter() - started
    print(
        f"{'generate':<11} {generated:>10,} rows  alone {gen_s:6.2f} s  {generated / gen_s:>10,.0f} rows/s"
        f"  (included in the load figures below)"
    )

    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="movierec-bench-") as folder:
            measure("sqlite", f"sqlite:///{folder}/store.db", args.rows, args.batch_size)
    if not args.skip_postgres:
        if args.postgres_url:
            measure("postgresql", args.postgres_url, args.rows, args.batch_size)
        else:
            with PostgresServer(fast=False) as server:
                measure("postgresql", server.create_database("bench"), args.rows, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
