"""Live scoring is bounded: a client waits at most live_timeout in all, at most live_max_pending
live calls wait or run per worker (more are 503 + Retry-After at once), and stored pages and
/healthz are answered while live calls wait for Spark.

First without Spark, in the app (the scorer's thread held busy, as `blocked_live` does); then
under a real gunicorn (one worker, four threads) with real Spark on the session's pipeline run:
once while the worker's Spark session starts at boot (every live call has to wait), once warm
(live calls score).  Before the bound, twelve deep pages in parallel held /healthz for 23 s and
one live call for 41 s with live_timeout at 20 s.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.serving.server import Served

TIMEOUT = 3.0  # live_timeout of these servers and apps, seconds
SLACK = 1.5  # what a client may wait beyond it: the HTTP round trip, the store's reads after the live call
CAP = 2  # live_max_pending
QUICK = 1.0  # a refusal is answered within this (it never waits for Spark)
HEALTHY = 2.0  # /healthz and a stored page answer within this while live calls wait (it was 23 s)


# ---------------------------------------------------------------- in the app, no Spark


@pytest.fixture
def held(make_app, sqlite_store_url):
    """An app whose live scorer's one thread is held busy: live calls can only wait."""
    app = make_app(sqlite_store_url, live_timeout=TIMEOUT, live_max_pending=CAP)
    release = threading.Event()
    scorer = app.extensions["movierec"].live()
    scorer.run_blocking(lambda: release.wait(60))
    yield app, scorer
    release.set()


def timed_get(app, path: str):
    started = time.monotonic()
    response = app.test_client().get(path)
    return response.status_code, response.headers.get("Retry-After"), response.get_json(), time.monotonic() - started


def test_calls_past_the_cap_are_refused_at_once_and_queued_ones_never_run(held):
    app, scorer = held
    with ThreadPoolExecutor(CAP) as pool:
        # user 1 has 20 stored rows: k=21 needs live scoring
        waiting = [pool.submit(timed_get, app, "/users/1/recommendations?k=21") for _ in range(CAP)]
        deadline = time.monotonic() + 5
        while scorer.pending < CAP and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scorer.pending == CAP
        status, retry_after, body, seconds = timed_get(app, "/users/1/recommendations?k=30")
        assert status == 503 and int(retry_after) >= 1 and seconds < QUICK, (status, body, seconds)
        assert "busy" in body["message"] and f"live_max_pending {CAP}" in body["message"]
        # a stored page does not wait either
        assert timed_get(app, "/users/1/recommendations?k=5")[0] == 200
        for future in waiting:
            status, retry_after, body, seconds = future.result()
            assert status == 503 and "took longer than 3 s" in body["message"], body
            assert TIMEOUT - 0.2 < seconds < TIMEOUT + SLACK
    # the queued calls were dropped when their callers gave up: their places are free, and no
    # Spark was started for them
    assert scorer.pending == 0 and not scorer.started
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'movierec_live_calls_total{kind="recommend",outcome="busy"} 1.0' in text


def test_the_time_out_counts_from_the_request_not_from_the_queue(held):
    """Two live calls of one request share one deadline (the API's live_call opens it)."""
    from serving.live import LiveTimeout

    _, scorer = held
    started = time.monotonic()
    with scorer.deadline(started + 1.0):
        with pytest.raises(LiveTimeout):
            scorer.genres("run-new")
        with pytest.raises(LiveTimeout):
            scorer.genres("run-new")
    assert time.monotonic() - started < 1.5  # not 2 s: the second call had what the first left
    assert scorer.pending == 0


# ---------------------------------------------------------------- gunicorn and real Spark


def live_users(db_url: str, run_id: str) -> list[int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [
                row[0]
                for row in conn.execute(
                    sa.text("SELECT DISTINCT user_id FROM recommendations WHERE run_id = :run ORDER BY user_id"),
                    {"run": run_id},
                )
            ]
    finally:
        engine.dispose()


def run_genre(db_url: str) -> str:
    """A genre of the run's catalogue (its content model knows it)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            genres = conn.execute(sa.text("SELECT genres FROM movies WHERE genres <> '' LIMIT 1")).scalar()
    finally:
        engine.dispose()
    return genres.split("|")[0]


@pytest.fixture(scope="module")
def served(pipeline_run, tmp_path_factory):
    """`movierec serve` with one worker that starts its Spark session at boot (warm_spark)."""
    from movierec.config import to_env

    run_settings, run_id = pipeline_run
    env = to_env(run_settings)
    env.update(
        MOVIEREC_LIVE_TIMEOUT=str(TIMEOUT),
        MOVIEREC_LIVE_MAX_PENDING=str(CAP),
        MOVIEREC_WARM_SPARK="true",
        MOVIEREC_DRIVER_MEMORY="1g",
    )
    server = Served(run_settings.db_url, tmp_path_factory.mktemp("live-bounds"), workers=1, env=env)
    try:
        server.wait_ready()
        server.users = live_users(run_settings.db_url, run_id)  # type: ignore[attr-defined]
        server.genre = run_genre(run_settings.db_url)  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()


def get(served, path: str, timeout: float = 60):
    """(status, Retry-After, body, seconds the client waited)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = json.loads(response.read())
        return response.status, response.getheader("Retry-After"), body, time.monotonic() - started
    finally:
        connection.close()


def post(served, path: str, body: dict, timeout: float = 60):
    """(status, Retry-After, body, seconds the client waited) of a JSON POST."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        return response.status, response.getheader("Retry-After"), answer, time.monotonic() - started
    finally:
        connection.close()


def burst(served, calls: int, spark_job: bool = False) -> tuple[list[tuple], list[tuple]]:
    """`calls` live calls at once, and, while they are in flight, /healthz and a stored page;
    returns (live answers, the two others).  The calls are deep pages (past the stored rows), or
    with `spark_job` POST /recommend of a movie the run never saw (its content features take a
    Spark job: a known movie's list is scored on the driver in milliseconds, too fast to queue)."""
    users = served.users
    start = threading.Barrier(calls + 1)

    def live(i: int):
        start.wait()
        user = users[i % len(users)]
        if spark_job:
            body = {"userId": user, "movieIds": [9_000_000 + i], "genres_lists": [[served.genre]]}
            return post(served, "/recommend", body)
        return get(served, f"/users/{user}/recommendations?k=60")

    with ThreadPoolExecutor(calls) as pool:
        futures = [pool.submit(live, i) for i in range(calls)]
        start.wait()
        time.sleep(0.5)  # the live calls have taken their threads
        others = [get(served, "/healthz"), get(served, f"/users/{users[0]}/recommendations?k=5")]
        return [f.result() for f in futures], others


def check_bounds(answers: list[tuple], others: list[tuple], calls: int, log: str) -> None:
    for status, _, body, seconds in others:
        assert status == 200 and seconds < HEALTHY, (status, body, seconds, log)
    busy = [a for a in answers if a[0] == 503 and "busy" in a[2]["message"]]
    assert len(busy) == calls - CAP, (answers, log)
    for status, retry_after, body, seconds in answers:
        assert status in (200, 503), (status, body)
        assert seconds < TIMEOUT + SLACK, (status, body, seconds, log)
        if status == 503:
            assert int(retry_after) >= 1, body
    for _, _, body, seconds in busy:
        assert seconds < QUICK, (body, seconds)


@pytest.mark.spark
@pytest.mark.slow
def test_live_calls_while_spark_starts_never_hold_the_server(served):
    """Right after boot the worker's one live thread starts Spark and loads the run (seconds):
    every live call has to wait for it.  Eight at once on four threads: before the bound, the
    last ones waited for a thread and then the whole time-out (6 s), and /healthz behind them."""
    calls = CAP + 6
    answers, others = burst(served, calls)
    check_bounds(answers, others, calls, served.log())


@pytest.mark.spark
@pytest.mark.slow
def test_live_calls_that_score_are_bounded_too(served):
    """Warm: the admitted calls score (one after the other, each a Spark job for a new movie's
    content), the rest are refused.  As many calls as the worker has threads, so that all of them
    arrive while the admitted ones still score."""
    deadline = time.monotonic() + 240
    while True:  # until the session is up and the run loaded: a live page answers 200
        status, _, body, _ = get(served, f"/users/{served.users[1]}/recommendations?k=60")
        if status == 200:
            assert body["source"] == "live" and len(body["items"]) > 10
            break
        assert time.monotonic() < deadline, (body, served.log())
        time.sleep(1)
    calls = CAP + 2
    answers, others = burst(served, calls, spark_job=True)
    check_bounds(answers, others, calls, served.log())
    memory = worker_memory(served)
    print(f"\nworker memory with live scoring started (driver memory 1g): {memory}")
    assert memory["jvm_mb"] > 0, "the worker's Spark JVM is its child process"


def worker_memory(served) -> dict[str, float]:
    """VmRSS of the gunicorn worker (Python) and of its Spark JVM, from /proc (the README's command)."""

    def children(pid: int) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
        return found

    def rss_mb(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    (worker,) = children(served.process.pid)  # `movierec serve` execs gunicorn: its pid is the master
    jvms = [c for c in children(worker) if Path(f"/proc/{c}/comm").read_text().strip() == "java"]
    return {"python_mb": round(rss_mb(worker)), "jvm_mb": round(sum(rss_mb(j) for j in jvms))}
