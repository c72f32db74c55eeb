"""The issue's acceptance check on a real MovieLens directory: the whole pipeline into SQLite,
the same run into a throwaway PostgreSQL, and in both stores exactly K recommendations per
user, none already rated, ranks 1..K.

    python benchmarks/real_data_check.py --data-dir ../shared/data/ml-latest-small
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from movierec import config  # noqa: E402
from movierec.spark.paths import RunPaths  # noqa: E402
from movierec.spark.session import build_session  # noqa: E402
from movierec.stages.pipeline import STAGES, run_pipeline  # noqa: E402
from movierec.store import runs as store  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

CHECK = """
select count(distinct r.user_id) as users,
       min(n) as min_k, max(n) as max_k
from (select user_id, count(*) as n, min(rank) as lo, max(rank) as hi
      from recommendations where run_id = :run group by user_id) r
"""


def check_store(url: str, run_id: str, rated: set[tuple[int, int]], k: int) -> dict:
    with store.engine_for(url).connect() as conn:
        assert store.active_run_id(conn) == run_id, f"{url}: active run is not {run_id}"
        row = conn.execute(sa.text(CHECK), {"run": run_id}).mappings().first()
        pairs = conn.execute(
            sa.text("select user_id, movie_id, rank from recommendations where run_id = :run"), {"run": run_id}
        ).all()
    already = sum((u, m) in rated for u, m, _ in pairs)
    ranks_ok = all(1 <= r <= k for _, _, r in pairs)
    return {
        "users": row["users"],
        "min_k": row["min_k"],
        "max_k": row["max_k"],
        "already_rated": already,
        "ranks_1_to_k": ranks_ok,
    }


@click.command(help=__doc__.splitlines()[0])
@config.setting_options(*config.BATCH_SETTINGS)
def main(settings: config.Settings) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="movierec-check-"))
    settings = settings.replace(warehouse=str(tmp / "warehouse"), db_url=f"sqlite:///{tmp / 'store.db'}")
    run_id = "check"
    spark = build_session("check", settings)
    started = time.perf_counter()
    run_pipeline(spark, settings, run_id, STAGES)
    seconds = time.perf_counter() - started
    ratings = spark.read.parquet(RunPaths(settings.warehouse, run_id).ratings)
    rated = {(r.user_id, r.movie_id) for r in ratings.select("user_id", "movie_id").collect()}
    users = len({u for u, _ in rated})
    results = {"sqlite": check_store(settings.db_url, run_id, rated, settings.top_k)}
    with PostgresServer() as server:
        pg_url = server.create_database("check")
        run_pipeline(spark, settings.replace(db_url=pg_url), run_id, ["publish"])
        results["postgresql"] = check_store(pg_url, run_id, rated, settings.top_k)
    spark.stop()
    print(f"\ndata {settings.data_dir}: {users} users with ratings; pipeline {seconds:.0f} s; top_k {settings.top_k}")
    ok = True
    for name, r in results.items():
        good = (
            r["users"] == users
            and r["min_k"] == r["max_k"] == settings.top_k
            and r["already_rated"] == 0
            and r["ranks_1_to_k"]
        )
        ok &= good
        print(
            f"{name:<11} users {r['users']}, per user {r['min_k']}..{r['max_k']}, already rated {r['already_rated']}, "
            f"ranks 1..K {r['ranks_1_to_k']}: {'OK' if good else 'FAILED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main.main(standalone_mode=False))
