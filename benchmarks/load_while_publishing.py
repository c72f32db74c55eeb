"""Readers during a publish and a rollback, on PostgreSQL: errors, mixed or empty answers, p99.

    .venv/bin/python benchmarks/load_while_publishing.py                  # a throwaway PostgreSQL
    .venv/bin/python benchmarks/load_while_publishing.py --users 610 --rows 100 --duration 40

1. A throwaway PostgreSQL (tests/postgres.py, durable settings) gets run A: a catalogue and
   --users users × --rows recommendations (the shape of ml-latest-small), published.
2. `movierec serve` (gunicorn, --workers) answers GET /users/<id>/recommendations?k=10; its peak
   rate on that route is measured first, with wrk (scripts/install-system-deps.sh installs it).
3. Readers at --share (default a half) of that peak, open loop (each request is due at its own
   time and its latency counts from then, so queueing is not hidden), for --duration seconds.
   After a quiet third, run B (other movies, other scores) is published as the publish stage
   does (begin, load every table, one switch transaction), then rolled back to A.
4. Every answer is checked: 200, k items, and the items exactly the stored list of the run the
   answer names (so an answer that mixed A's and B's rows, or came back empty, is counted).
   Latencies are reported for the window before the publish, during the load and switch, during
   the rollback, and after.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load_api import read_answer, run_wrk, summary  # noqa: E402
from movierec.store import runs as store  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402
from tests.serving.server import Served  # noqa: E402

K = 10
NAMES = ["Action", "Comedy", "Drama", "Romance", "Thriller", "Sci-Fi", "Horror", "Animation"]


def make_run(users: int, rows: int, movies: list[int], seed: int) -> dict[int, list[tuple]]:
    """A run's stored lists: for each user, (rank, movie, score, cf, cb) best first."""
    rng = random.Random(seed)
    lists = {}
    for user in range(1, users + 1):
        picked = rng.sample(movies, rows)
        scores = sorted((rng.random() for _ in picked), reverse=True)
        lists[user] = [(rank, m, s, s, s) for rank, (m, s) in enumerate(zip(picked, scores), start=1)]
    return lists


def tables(lists: dict[int, list[tuple]], movies: list[int], seed: int) -> dict[str, list[list[tuple]]]:
    rng = random.Random(seed)
    recs = [(u, *row) for u, rows in lists.items() for row in rows]
    return {
        "recommendations": [recs[i : i + 20_000] for i in range(0, len(recs), 20_000)],
        "run_users": [[(u, rng.randint(20, 500)) for u in lists]],
        "popular_movies": [[(r, m, 1000.0 - r) for r, m in enumerate(movies[:500], start=1)]],
        "similar_movies": [
            [(m, r, movies[(m + r) % len(movies)], 0.9 - r / 100) for m in movies[:1000] for r in range(1, 21)]
        ],
    }


def publish(engine, run_id: str, lists, movies, seed: int, marks: dict, params: dict) -> None:
    """What the publish stage does to the store: begin, load every table, the one switch."""
    marks[f"{run_id} begin"] = time.perf_counter()
    store.begin_run(engine, run_id, params, store.utc_now())
    store.load_run(engine, run_id, tables(lists, movies, seed))
    store.activate_run(engine, run_id, {"bench": True}, store.utc_now())
    marks[f"{run_id} active"] = time.perf_counter()


async def readers(port: int, users: list[int], rate: float, duration: float, expected: dict, connections: int):
    """Open-loop GETs; returns (due time, latency, problem or None) per request."""
    rng = random.Random(7)
    due: asyncio.Queue = asyncio.Queue()
    results: list[tuple[float, float, str | None]] = []

    def problem(user: int, status: int, body: bytes) -> str | None:
        if status != 200:
            return f"status {status}"
        data = json.loads(body)
        items = data.get("items") or []
        if len(items) != K:
            return "empty" if not items else f"{len(items)} items"
        want = expected.get(data.get("run_id"), {}).get(user)
        if want is None:
            return f"unknown run {data.get('run_id')}"
        got = [(i["rank"], i["movie_id"]) for i in items]
        return None if got == [(r, m) for r, m, *_ in want[:K]] else "mixed"

    async def connection() -> None:
        reader = writer = None
        while (item := await due.get()) is not None:
            scheduled, user = item
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET /users/{user}/recommendations?k={K} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                status, _, body = await read_answer(reader)
                results.append((scheduled, time.perf_counter() - scheduled, problem(user, status, body)))
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                results.append((scheduled, time.perf_counter() - scheduled, type(err).__name__))
                writer, reader = None, None

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(int(rate * duration)):
        scheduled = start + i / rate
        if (wait := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        due.put_nowait((scheduled, rng.choice(users)))
    for _ in tasks:
        due.put_nowait(None)
    await asyncio.gather(*tasks)
    return results


def window(results, start: float, end: float) -> dict:
    inside = [(lat, p) for due, lat, p in results if start <= due < end]
    figures = summary([lat for lat, _ in inside], sum(p is not None for _, p in inside), end - start)
    problems: dict[str, int] = {}
    for _, p in inside:
        if p is not None:
            problems[p] = problems.get(p, 0) + 1
    return {**figures, "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=610)
    parser.add_argument("--rows", type=int, default=100, help="stored rows per user")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of readers")
    parser.add_argument("--share", type=float, default=0.5, help="share of the peak rate the readers send")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)

    movies = list(range(1, 9743))
    run_a, run_b = make_run(args.users, args.rows, movies, 1), make_run(args.users, args.rows, movies, 2)
    expected = {"bench-a": run_a, "bench-b": run_b}
    users = list(run_a)
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(fast=False) as pg:
        url = pg.create_database("bench")
        engine = store.engine_for(url)
        rng = random.Random(3)
        catalogue = [(m, f"Movie {m} ({1950 + m % 70})", 1950 + m % 70, "|".join(rng.sample(NAMES, 2))) for m in movies]
        store.upsert_movies(engine, [catalogue])
        marks: dict[str, float] = {}
        publish(engine, "bench-a", run_a, movies, 1, marks, {"bench": "a"})
        server = Served(url, Path(tmp) / "serve", workers=args.workers).wait_ready()
        try:
            paths = [f"/users/{u}/recommendations?k={K}" for u in users]
            if not shutil.which("wrk"):
                raise SystemExit("wrk is not installed (scripts/install-system-deps.sh installs it)")
            peak = run_wrk(server.port, paths, args.connections, 10, 10**7, Path(tmp))
            rate = peak["rps"] * args.share
            print(f"peak (wrk -c{args.connections}, 10 s): {peak['rps']:.0f} req/s; readers at {rate:.0f} req/s")

            async def scenario():
                load = asyncio.create_task(readers(server.port, users, rate, args.duration, expected, args.connections))
                await asyncio.sleep(args.duration / 3)
                await asyncio.to_thread(publish, engine, "bench-b", run_b, movies, 2, marks, {"bench": "b"})
                await asyncio.sleep(2)
                marks["rollback begin"] = time.perf_counter()
                await asyncio.to_thread(store.rollback, engine, "bench-a")
                marks["rollback done"] = time.perf_counter()
                return await load

            started = time.perf_counter()
            results = asyncio.run(scenario())
        finally:
            server.stop()
        engine.dispose()
    end = started + args.duration
    windows = {
        "before the publish": window(results, started, marks["bench-b begin"]),
        "during the publish (load + switch)": window(results, marks["bench-b begin"], marks["bench-b active"]),
        "during the rollback": window(results, marks["rollback begin"], marks["rollback done"] + 0.5),
        "after": window(results, marks["rollback done"] + 0.5, end),
        "all": window(results, started, end),
    }
    print(f"publish of {args.users * args.rows} rows took {marks['bench-b active'] - marks['bench-b begin']:.1f} s")
    print("| window | requests | errors or wrong answers | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, w in windows.items():
        wrong = w["errors"] if not w["problems"] else f"{w['errors']} {w['problems']}"
        print(f"| {name} | {w['requests']} | {wrong} | {w['p50_ms']} | {w['p99_ms']} | {w['max_ms']} |")
    return 0 if windows["all"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
