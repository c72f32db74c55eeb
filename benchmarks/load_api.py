"""Load test of the API under `movierec serve` (gunicorn) on 127.0.0.1: throughput and latency.

    .venv/bin/python benchmarks/load_api.py                      # a synthetic store shaped like ml-latest-small
    .venv/bin/python benchmarks/load_api.py --db-url URL          # an existing store (e.g. after `movierec pipeline`)
    .venv/bin/python benchmarks/load_api.py --db-url URL --warehouse DIR --live   # also POST /recommend scored live
    .venv/bin/python benchmarks/load_api.py --pipeline-data DIR   # first `movierec pipeline` on DIR (no evaluate),
                                                                  # then all phases on its store, --live included

Phases, each bounded by --duration seconds and --max-requests requests, repeated --rounds times:
1. peak: closed loop on keep-alive connections, GET /healthz, then
   GET /users/<id>/recommendations?k=10 (random users of the active run); throughput, p50, p99.
   With Debian's `wrk` installed (scripts/install-system-deps.sh) the load comes from wrk
   (one thread, --connections connections): a C client that leaves the 2 cores to the
   server; else (or with --load-client python) from --clients Python processes.
2. half-rate: GET /users/<id>/recommendations at half its peak rate, open loop (each request
   has a scheduled send time and its latency counts from then, so queueing is not hidden).
3. live (--live): POST /recommend for 20 movies none of which is stored for the user, so all
   20 are scored by the live-Spark fallback; sequential, after a warm-up call, on a server of
   its own started with MOVIEREC_WARM_SPARK=true.
4. feedback (--live): on that server, for users with about 50 ratings in the run, POST one
   rating (of the user's top stored movie) to /users/<id>/ratings, then time the GET of the
   user's recommendations that follows (scored live with the new rating); sequential.

The load generator runs on the same 2 cores as the server: its own CPU use is part of the
picture, and it is the same for every route compared.  The Python client needs most of a
core for a few thousand requests a second, which flattens the difference between routes;
wrk needs a fraction of that.  wrk has no open-loop mode, so the half-rate phase uses an
open-loop asyncio client in one process (tens of microseconds of CPU a request); the older
--half-rate-client processes (--clients blocking clients) needed more CPU than the server at
a few thousand requests a second, and its tail measured the clients' wait for a core.
Targets (issue 4): recommendations keeps >= 70% of /healthz's peak throughput; p99 < 10 ms
at half of its peak rate; live POST p50 < 500 ms once warm.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serving.server import Served  # noqa: E402  (the same `movierec serve` launcher as the tests)

# ---------------------------------------------------------------- the store


def synthetic_store(db_url: str, users: int, top_k: int, movies_csv: Path | None, seed: int = 1) -> None:
    """A published run shaped like ml-latest-small: its catalogue, `users` users × `top_k` rows."""
    import csv
    import re

    from movierec.store import runs as store

    rng = random.Random(seed)
    if movies_csv and movies_csv.exists():
        with movies_csv.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        catalogue = []
        for row in rows:
            match = re.search(r"\((\d{4})\)\s*$", row["title"])
            genres = "" if row["genres"] == "(no genres listed)" else row["genres"]
            catalogue.append((int(row["movieId"]), row["title"], int(match.group(1)) if match else None, genres))
    else:
        names = ["Action", "Comedy", "Drama", "Romance", "Thriller", "Sci-Fi", "Horror", "Animation"]
        catalogue = [
            (m, f"Movie {m} ({1950 + m % 70})", 1950 + m % 70, "|".join(rng.sample(names, 2))) for m in range(1, 9743)
        ]
    movie_ids = [row[0] for row in catalogue]
    engine = store.engine_for(db_url)
    store.upsert_movies(engine, [catalogue])
    run_id = "bench-synthetic"
    store.begin_run(engine, run_id, {"top_k": top_k, "synthetic": True}, store.utc_now())
    recs, run_users = [], []
    for user in range(1, users + 1):
        picked = rng.sample(movie_ids, top_k)
        scores = sorted((rng.random() for _ in picked), reverse=True)
        recs += [(user, rank, movie, s, s, s) for rank, (movie, s) in enumerate(zip(picked, scores), start=1)]
        run_users.append((user, rng.randint(20, 500)))
    store.load_run(
        engine,
        run_id,
        {
            "recommendations": [recs],
            "run_users": [run_users],
            "popular_movies": [[(r, m, 1000.0 - r) for r, m in enumerate(movie_ids[:500], start=1)]],
            "similar_movies": [
                [(m, r, s, 0.9) for m in movie_ids[:1000] for r, s in enumerate(rng.sample(movie_ids, 20), start=1)]
            ],
        },
    )
    store.activate_run(engine, run_id, {"synthetic": True}, store.utc_now())
    engine.dispose()


def store_rows(db_url: str, *queries: str) -> list[list[tuple]]:
    """The rows of each SQL query, read from the store at db_url."""
    import sqlalchemy as sa

    from movierec.store.runs import engine_for

    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            return [[tuple(row) for row in conn.execute(sa.text(query)).all()] for query in queries]
    finally:
        engine.dispose()


def active_users(db_url: str, limit: int = 5000) -> tuple[list[int], dict[int, set[int]]]:
    """Users with stored rows in the active run, and each one's stored movies."""
    rows, movies = store_rows(
        db_url,
        "SELECT r.user_id, r.movie_id FROM recommendations r JOIN active_run a ON a.run_id = r.run_id WHERE a.id = 1",
        "SELECT movie_id FROM movies",
    )
    movie_ids = [m for (m,) in movies]
    stored: dict[int, set[int]] = {}
    for user, movie in rows:
        stored.setdefault(user, set()).add(movie)
    users = sorted(stored)[:limit]
    return users, {"_movies": movie_ids, **{u: stored[u] for u in users}}


def run_pipeline(data_dir: str, db_url: str, warehouse: str) -> None:
    """`movierec pipeline` in its own process (its own Spark), published to db_url."""
    import subprocess

    stages = "ingest,featurize,train_als,train_rf,score,publish"
    command = [
        sys.executable,
        "-m",
        "movierec.cli",
        "pipeline",
        "--run-id",
        "bench-1",
        "--stages",
        stages,
        "--data-dir",
        data_dir,
        "--db-url",
        db_url,
        "--warehouse",
        warehouse,
        "--skip-quality-gate",
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"pipeline on {data_dir}: {time.perf_counter() - started:.0f} s -> {db_url}")


# ---------------------------------------------------------------- the load generator


def _client(port, paths, deadline, max_requests, interval, start_at, seed, out):
    """One client process: closed loop (interval None) or open loop (a request every `interval` s)."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors, sent = [], 0, 0
    while time.time() < start_at:
        time.sleep(0.001)
    began = next_send = time.perf_counter()
    end = began + (deadline - time.time())
    while sent < max_requests:
        now = time.perf_counter()
        if now >= end:
            break
        if interval is not None:
            if now < next_send:
                time.sleep(next_send - now)
            scheduled = next_send
            next_send += interval
        else:
            scheduled = now
        path = rng.choice(paths)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - scheduled)
        sent += 1
    connection.close()
    out.put((latencies, errors, time.perf_counter() - began))


def run_load(
    port: int, paths: list[str], clients: int, duration: float, max_requests: int, rate: float | None = None
) -> dict:
    """Run `clients` processes for `duration` s (or `max_requests` in all); rate None = as fast as possible."""
    context = mp.get_context("fork")
    out = context.Queue()
    start_at = time.time() + 0.5
    deadline = start_at + duration
    interval = None if rate is None else clients / rate
    processes = [
        context.Process(
            target=_client, args=(port, paths, deadline, max_requests // clients, interval, start_at, i, out)
        )
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=duration + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    latencies = [latency for got, _, _ in results for latency in got]
    errors = sum(e for _, e, _ in results)
    return summary(latencies, errors, max(seconds for _, _, seconds in results))


async def read_answer(reader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer from an asyncio stream: (status, headers by lower-case name, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    return int(lines[0].split()[1]), headers, await reader.readexactly(int(headers.get("content-length", "0")))


async def _open_loop(
    port: int, paths: list[str], rate: float, duration: float, max_requests: int, connections: int, seed: int
) -> dict:
    """Open loop in one asyncio process: request i is due at start + i/rate and goes out on the
    first free keep-alive connection; its latency counts from when it was due, so time spent
    waiting for a connection (queueing) is not hidden.  A few tens of microseconds of client
    CPU a request, where a blocking Python client needs several hundred."""
    import asyncio

    rng = random.Random(seed)
    payloads = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for p in paths]
    due: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def read_response(reader) -> tuple[int, bool]:
        status, headers, _ = await read_answer(reader)
        return status, headers.get("connection", "").lower() == "close"

    async def connection_loop() -> None:
        nonlocal errors
        reader = writer = None
        while (item := await due.get()) is not None:
            scheduled, payload = item
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                status, closing = await read_response(reader)
                errors += status != 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors, closing = errors + 1, True
            latencies.append(time.perf_counter() - scheduled)
            if closing and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    tasks = [asyncio.create_task(connection_loop()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(min(int(rate * duration), max_requests)):
        scheduled = start + i / rate
        wait = scheduled - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        due.put_nowait((scheduled, rng.choice(payloads)))
    for _ in tasks:
        due.put_nowait(None)
    await asyncio.gather(*tasks)
    return summary(latencies, errors, time.perf_counter() - start)


def run_open_loop(
    port: int, paths: list[str], rate: float, duration: float, max_requests: int, connections: int = 16, seed: int = 1
) -> dict:
    """`rate` requests a second for `duration` s (at most `max_requests`), open loop (_open_loop)."""
    import asyncio

    return asyncio.run(_open_loop(port, paths, rate, duration, max_requests, connections, seed))


WRK_SCRIPT = """
local paths = {%s}
local sent, limit = 0, %d
math.randomseed(%d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
response = function(status, headers, body)
  sent = sent + 1
  if sent >= limit then wrk.thread:stop() end
end
"""


def run_wrk(
    port: int, paths: list[str], connections: int, duration: float, max_requests: int, workdir: Path, seed: int = 1
) -> dict:
    """Closed-loop peak load from `wrk` (one thread): as run_load, at a fraction of the client CPU."""
    import re
    import subprocess

    script = workdir / f"wrk-{seed}.lua"
    script.write_text(WRK_SCRIPT % (", ".join(json.dumps(p) for p in paths), max_requests, seed))
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=duration + 60).stdout

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    found = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m),", out)
    seconds = float(found.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[found.group(3)]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    quantiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    requests = int(found.group(1))
    if requests >= max_requests:
        # wrk's thread stops sending at the limit but wrk reports the whole --duration: no rate
        print(f"  (wrk stopped at --max-requests {max_requests} before {duration:g} s: its req/s understates the rate)")
    return {
        "requests": requests,
        "errors": errors,
        "seconds": round(seconds, 2),
        "rps": round(requests / seconds, 1),
        "p50_ms": ms(quantiles["50"]),
        "p99_ms": ms(quantiles["99"]),
        "max_ms": ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1)),
        "client": f"wrk -c{connections}",
    }


def summary(latencies: list[float], errors: int, seconds: float) -> dict:
    latencies = sorted(latencies)

    def q(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(seconds, 2),
        "rps": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(q(0.50), 2),
        "p99_ms": round(q(0.99), 2),
        "max_ms": round(q(1.0), 2),
    }


def live_phase(port: int, users: list[int], stored: dict, calls: int, movies_per_call: int, seed: int) -> dict:
    """Sequential POST /recommend calls whose movies are all outside the user's stored list."""
    rng = random.Random(seed)
    movie_ids = stored["_movies"]
    state = {"connection": http.client.HTTPConnection("127.0.0.1", port, timeout=120)}

    def post(body):
        for attempt in (1, 2):  # an idle keep-alive connection may have been closed by the server
            connection = state["connection"]
            try:
                connection.request("POST", "/recommend", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                return response, json.loads(response.read())
            except (OSError, http.client.HTTPException):
                connection.close()
                state["connection"] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                if attempt == 2:
                    raise

    def one():
        user = rng.choice(users)
        candidates = [m for m in rng.sample(movie_ids, movies_per_call * 3) if m not in stored[user]]
        body = json.dumps({"userId": user, "movieIds": candidates[:movies_per_call]})
        started = time.perf_counter()
        response, answer = post(body)
        took = time.perf_counter() - started
        live = response.status == 200 and all(item["source"] == "live" for item in answer)
        return took, response.status, live, answer

    # warm-up: the worker starts Spark and loads the run's models; a 503 says when to come back
    warm_started = time.perf_counter()
    for attempt in range(20):  # noqa: B007  (read after the loop)
        took, status, live, answer = one()
        if status != 503:
            break
        time.sleep(1)
    warm = {"first_call_s": round(time.perf_counter() - warm_started, 2), "status": status, "attempts": attempt + 1}
    if status != 200:
        return {"warm": warm, "error": answer}
    latencies, errors = [], 0
    for _ in range(calls):
        took, status, live, _ = one()
        latencies.append(took)
        errors += 0 if live else 1
    result = summary(latencies, errors, sum(latencies))
    result["warm"] = warm
    result["load_average"] = _load()
    return result


FEEDBACK_KEY = "load-api-benchmark-key"  # configured on the live server as its digest


def feedback_phase(port: int, db_url: str, calls: int, ratings_near: int = 50) -> dict:
    """POST a rating, then time the GET that follows, for `calls` users whose run has about
    `ratings_near` ratings of theirs (the closest counts first)."""
    (rows,) = store_rows(
        db_url,
        "SELECT u.user_id, u.ratings_count, r.movie_id FROM run_users u "
        "JOIN active_run a ON a.run_id = u.run_id JOIN recommendations r "
        "ON r.run_id = u.run_id AND r.user_id = u.user_id AND r.rank = 1 WHERE a.id = 1",
    )
    chosen = sorted(rows, key=lambda row: (abs(row[1] - ratings_near), row[0]))[:calls]
    headers = {"Authorization": f"Bearer {FEEDBACK_KEY}", "Content-Type": "application/json"}
    latencies, errors, counts = [], 0, []
    for user, count, top in chosen:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request(
                "POST", f"/users/{user}/ratings", body=json.dumps([{"movie_id": top, "rating": 4.5}]), headers=headers
            )
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                errors += 1
                continue
            started = time.perf_counter()
            connection.request("GET", f"/users/{user}/recommendations?k=10")
            response = connection.getresponse()
            answer = json.loads(response.read())
            took = time.perf_counter() - started
        finally:
            connection.close()
        ok = response.status == 200 and answer.get("source") == "live"
        ok = ok and top not in [item["movie_id"] for item in answer["items"]]
        errors += 0 if ok else 1
        latencies.append(took)
        counts.append(count)
    result = summary(latencies, errors, sum(latencies))
    result["ratings_per_user"] = [min(counts), max(counts)] if counts else []
    result["load_average"] = _load()
    return result


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="an existing store; default: a synthetic one in a temp folder")
    parser.add_argument("--warehouse", help="the warehouse of the store's runs (needed by --live)")
    parser.add_argument("--users", type=int, default=610, help="synthetic store: users (default %(default)s)")
    parser.add_argument("--top-k", type=int, default=100, help="synthetic store: rows per user (default %(default)s)")
    parser.add_argument(
        "--movies-csv",
        default=str(ROOT.parent / "shared/data/ml-latest-small/movies.csv"),
        help="synthetic store: catalogue (default ml-latest-small's movies.csv when present)",
    )
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: movierec serve's)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: movierec serve's)")
    parser.add_argument("--clients", type=int, default=4, help="Python load generator processes (default %(default)s)")
    parser.add_argument(
        "--half-rate-client",
        choices=("asyncio", "processes"),
        default="asyncio",
        help="half-rate phase: one asyncio process (default) or --clients blocking Python processes",
    )
    parser.add_argument(
        "--load-client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="peak phases: wrk (when installed, for auto) or the Python clients (default %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="wrk: keep-alive connections (default %(default)s, the server's 2 workers x 4 threads)",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each GET phase (default %(default)s)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="requests per phase at most")
    parser.add_argument("--live", action="store_true", help="also time POST /recommend scored live")
    parser.add_argument(
        "--pipeline-data",
        help="a MovieLens directory: run the pipeline on it first (stages without "
        "evaluate, quality gate skipped; model settings from MOVIEREC_*) "
        "and benchmark its store, live phase included",
    )
    parser.add_argument("--live-only", action="store_true", help="only the live POST phase")
    parser.add_argument("--live-calls", type=int, default=30, help="live POST calls after the warm-up")
    parser.add_argument(
        "--feedback-into-store",
        action="store_true",
        help="with --db-url: also time the GET after a POSTed rating, which writes ratings into that store",
    )
    parser.add_argument("--json", help="write the figures to this file as JSON too")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="movierec-bench-"))
    db_url = args.db_url
    if args.pipeline_data:
        db_url, args.warehouse = f"sqlite:///{workdir / 'pipeline.db'}", str(workdir / "warehouse")
        args.live = True
        run_pipeline(args.pipeline_data, db_url, args.warehouse)
    if db_url is None:
        db_url = f"sqlite:///{workdir / 'bench.db'}"
        started = time.perf_counter()
        synthetic_store(db_url, args.users, args.top_k, Path(args.movies_csv))
        print(
            f"synthetic store: {args.users} users x {args.top_k} rows, catalogue "
            f"{'from ' + args.movies_csv if Path(args.movies_csv).exists() else 'generated'} "
            f"({time.perf_counter() - started:.1f} s) -> {db_url}"
        )
    users, stored = active_users(db_url)
    if not users:
        raise SystemExit(f"{db_url} has no active run with recommendations")

    extra = []
    if args.workers:
        extra += ["--workers", str(args.workers)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    env = {"MOVIEREC_WARM_SPARK": "false"}
    if args.warehouse:
        env["MOVIEREC_WAREHOUSE"] = args.warehouse
    if args.load_client == "auto":
        args.load_client = "wrk" if shutil.which("wrk") else "python"
    elif args.load_client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (scripts/install-system-deps.sh installs it)")
    args.workdir = workdir
    figures: dict = {
        "db_url": db_url,
        "users": len(users),
        "clients": args.clients,
        "load_client": args.load_client,
        "server": extra or "defaults",
        "load_average_at_start": os.getloadavg(),
    }
    if not args.live_only:
        server = Served(db_url, workdir / "get", env=env, extra=extra).wait_ready()
        try:
            get_phases(server, users, args, figures)
        finally:
            server.stop()
    if args.live or args.live_only:
        # a server of its own, whose workers start Spark and load the active run's models at boot
        # (so the GET figures above never share the CPU with a JVM)
        digest = hashlib.sha256(FEEDBACK_KEY.encode()).hexdigest()
        live_env = {**env, "MOVIEREC_WARM_SPARK": "true", "MOVIEREC_API_KEYS": digest}
        server = Served(db_url, workdir / "live", env=live_env, extra=extra).wait_ready()
        try:
            figures["live_post"] = live_phase(server.port, users, stored, args.live_calls, 20, seed=3)
            if "error" not in figures["live_post"] and (not args.db_url or args.feedback_into_store):
                # it writes ratings: only into a store this benchmark made, or one it was given for that.
                # Each worker loads the run's models at boot, and the first answer came from one of
                # them: timed while another worker's JVM still loads, a GET measures the machine's
                # two cores shared three ways, not the live path
                figures["settled_s"] = wait_until_idle(server)
                figures["feedback_get"] = feedback_phase(server.port, db_url, args.live_calls)
        finally:
            server.stop()
        if "error" in figures["live_post"]:
            print(f"POST /recommend (20 live movies): failed: {figures['live_post']}")
        else:
            report("POST /recommend, 20 movies scored live (sequential, warm)", figures["live_post"])
            print(
                f"  first call (waiting for the boot-time Spark start and model load): "
                f"{figures['live_post']['warm']['first_call_s']} s; p50 target < 500 ms"
            )
        if "feedback_get" in figures:
            report(
                "GET /users/<id>/recommendations right after a POSTed rating (live, sequential)",
                figures["feedback_get"],
            )
            print(
                f"  users with {figures['feedback_get']['ratings_per_user']} ratings in the run, timed once the "
                f"server was idle ({figures['settled_s']} s after the warm-up); target p50 <= 20 ms, p99 <= 50 ms"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def get_phases(server: Served, users: list[int], args, figures: dict) -> None:
    """Peaks of /healthz and recommendations, interleaved over --rounds rounds (best round kept:
    on a shared machine other work only ever slows a round down), then the half-rate phase."""
    peak_client = (
        f"wrk, {args.connections} connections"
        if args.load_client == "wrk"
        else f"{args.clients} Python client processes"
    )
    half_client = (
        "one asyncio process, 16 connections"
        if args.half_rate_client == "asyncio"
        else f"{args.clients} Python client processes"
    )
    print(
        f"gunicorn on 127.0.0.1:{server.port}; peak load from {peak_client}, half-rate load from {half_client}; "
        f"{args.duration:g} s per phase, {args.rounds} rounds, at most "
        f"{args.max_requests} requests a phase; load average {_load()}"
    )
    rec_paths = [f"/users/{u}/recommendations?k=10" for u in users]

    def peak(paths: list[str], seed: int) -> dict:
        cpu_before = server_cpu_seconds(server)
        if args.load_client == "wrk":
            result = run_wrk(server.port, paths, args.connections, args.duration, args.max_requests, args.workdir, seed)
        else:
            result = run_load(server.port, paths, args.clients, args.duration, args.max_requests)
        result["load_average"] = _load()
        if result["requests"]:
            result["server_cpu_us"] = round((server_cpu_seconds(server) - cpu_before) / result["requests"] * 1e6, 1)
        return result

    # a short warm-up so every worker has its connections and code paths ready
    run_load(server.port, rec_paths, args.clients, min(2.0, args.duration), 2000)
    rounds = {"healthz_peak": [], "recs_peak": []}
    for round_ in range(args.rounds):
        rounds["healthz_peak"].append(peak(["/healthz"], round_))
        rounds["recs_peak"].append(peak(rec_paths, round_))
    for name, label in (
        ("healthz_peak", "GET /healthz (peak)"),
        ("recs_peak", "GET /users/<id>/recommendations (peak)"),
    ):
        figures[name] = max(rounds[name], key=lambda r: r["rps"])
        figures[name]["rounds_rps"] = [r["rps"] for r in rounds[name]]
        report(label, figures[name])
    ratio = figures["recs_peak"]["rps"] / figures["healthz_peak"]["rps"]
    figures["recs_over_healthz"] = round(ratio, 3)
    print(f"  recommendations / healthz throughput: {ratio:.0%} (target >= 70%)")
    # other work on a shared machine moves the rates from round to round; the server's own CPU
    # time per request (its processes' user + system time over the requests answered) does not
    cpu = {name: statistics.median(r["server_cpu_us"] for r in rounds[name] if "server_cpu_us" in r) for name in rounds}
    figures["server_cpu_us"] = cpu
    print(
        f"  server CPU per request (median of rounds): /healthz {cpu['healthz_peak']:.0f} us, recommendations "
        f"{cpu['recs_peak']:.0f} us: healthz / recommendations {cpu['healthz_peak'] / cpu['recs_peak']:.0%}"
    )
    half = figures["recs_peak"]["rps"] / 2
    runs = []
    for _ in range(args.rounds):
        before = server_histogram(server.port)
        if args.half_rate_client == "asyncio":
            runs.append(run_open_loop(server.port, rec_paths, half, args.duration, args.max_requests, seed=len(runs)))
        else:
            runs.append(run_load(server.port, rec_paths, args.clients, args.duration, args.max_requests, rate=half))
        runs[-1]["server_p99_ms_at_most"] = histogram_quantile(before, server_histogram(server.port), 0.99)
        runs[-1]["load_average"] = _load()
    figures["recs_half_rate"] = sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2]  # the median round
    figures["recs_half_rate"]["rounds_p99_ms"] = [r["p99_ms"] for r in runs]
    report(
        f"GET /users/<id>/recommendations at {half:.0f} req/s (half of peak, open loop, median round)",
        figures["recs_half_rate"],
    )
    print(
        f"  p99 at half rate: {figures['recs_half_rate']['p99_ms']} ms (target < 10 ms); inside the app "
        f"(request in to response out, from /metrics) p99 <= {figures['recs_half_rate']['server_p99_ms_at_most']} ms"
    )


def server_cpu_seconds(server: Served) -> float:
    """User + system CPU seconds of the gunicorn master and its workers so far."""
    import psutil

    try:
        root = psutil.Process(server.process.pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def wait_until_idle(server: Served, share: float = 0.05, timeout: float = 180.0) -> float:
    """Seconds until the server's processes (workers and their JVMs) use under `share` of one
    core over a second; at most `timeout`."""
    started = time.perf_counter()
    before = server_cpu_seconds(server)
    while time.perf_counter() - started < timeout:
        time.sleep(1.0)
        now = server_cpu_seconds(server)
        if now - before < share:
            break
        before = now
    return round(time.perf_counter() - started, 1)


def _load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine moves every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def server_histogram(port: int, route: str = "/users/<user_id>/recommendations") -> dict[float, float]:
    """Cumulative bucket counts of the app's own latency histogram for `route` (status 200)."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "movierec_http_request_duration_seconds_bucket"
                and sample.labels.get("route") == route
                and sample.labels.get("status") == "200"
            ):
                buckets[float(sample.labels["le"])] = sample.value
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (ms) of the bucket holding quantile q of the requests between two scrapes."""
    counts = {le: after[le] - before.get(le, 0.0) for le in after}
    total = counts.get(float("inf"), 0.0)
    for le in sorted(counts):
        if total and counts[le] >= q * total:
            return le * 1000
    return float("nan")


def report(name: str, figures: dict) -> None:
    extra = f" (load average {figures['load_average']})" if "load_average" in figures else ""
    if "rounds_rps" in figures:
        extra += f" [rounds: {', '.join(str(r) for r in figures['rounds_rps'])} req/s]"
    if "rounds_p99_ms" in figures:
        extra += f" [p99 by round: {', '.join(str(r) for r in figures['rounds_p99_ms'])} ms]"
    print(
        f"{name}: {figures['rps']} req/s over {figures['seconds']} s ({figures['requests']} requests, "
        f"{figures['errors']} errors), p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms{extra}"
    )


if __name__ == "__main__":
    sys.exit(main())
