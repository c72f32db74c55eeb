"""The API under a real gunicorn while its real PostgreSQL goes away (stopped) and freezes (SIGSTOP).

Required (issue 12, item 6): the data routes and /readyz answer 503 JSON with Retry-After
within about a second (store_timeout, 1 s; 2 s when a connection must be opened, libpq's
minimum connect_timeout), /healthz always answers 200, nothing hangs, never a 500, and
when the store is back the API recovers by itself, without a restart.

The bounds asserted are generous (BOUND) so a loaded 2-core machine does not flap them,
yet a hang fails: the client gives up after CLIENT_TIMEOUT, well before the suite stalls.
The figures measured are printed (`pytest -s`) and quoted in serving/README.md, "Faults".

The module runs its own PostgreSQL server: freezing the session's shared one would stall
any other test that holds a connection to it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serving import data
from tests.serving.data import NEW_RUN
from tests.serving.server import Served

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BOUND = 5.0  # s, for a "~1 s" target
CLIENT_TIMEOUT = 10.0  # s: a request that hangs fails the test after this
RECOVERY_BOUND = 15.0  # s, for a "few seconds" target
KEY = "faults-test-key"
# each POST's body; the rating has a fixed timestamp, so every later call stores nothing new
# (user 2: user 1's list must stay a stored one, as this server has no Spark to score it live)
BODIES = {
    "/recommend": {"userId": 1, "movieIds": [5, 20]},
    "/users/2/ratings": [{"movie_id": 5, "rating": 4.0, "timestamp": 1_700_000_000}],
}
DATA_ROUTES = [
    ("GET", "/users/1/recommendations?k=5"),
    ("GET", "/movies/1"),
    ("GET", "/movies/1/similar?k=2"),
    ("GET", "/runs/active"),
    ("POST", "/recommend"),
    ("POST", "/users/2/ratings"),
    ("GET", "/users/2/ratings"),
    ("GET", "/readyz"),
]


@pytest.fixture(scope="module")
def store():
    from tests.postgres import PostgresServer, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql or set MOVIEREC_PG_BIN")
    from movierec.store.runs import engine_for

    with PostgresServer() as server:
        url = server.create_database("faults")
        engine = engine_for(url)
        data.load(engine)  # two published runs, written with the store's own functions (no Spark)
        engine.dispose()
        yield server, url


@pytest.fixture(scope="module")
def served(store, tmp_path_factory):
    # JAVA_HOME leads nowhere: no route here needs Spark, and none may quietly start it
    env = {"JAVA_HOME": "/nonexistent/java", "MOVIEREC_API_KEYS": hashlib.sha256(KEY.encode()).hexdigest()}
    server = Served(store[1], tmp_path_factory.mktemp("gunicorn-faults"), env=env)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture
def pg(store, served):
    """The module's PostgreSQL, serving and answered through the API before and after each test."""
    server = store[0]
    server.thaw()
    server.restart()
    recovered_in(served)
    yield server
    server.thaw()
    server.restart()
    recovered_in(served)


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body, seconds: float):
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds

    def __repr__(self) -> str:
        return f"<{self.status} in {self.seconds:.2f} s: {self.body}>"


def call(served, method: str, path: str) -> Answer:
    """One request on a fresh connection; a hang raises TimeoutError after CLIENT_TIMEOUT."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=CLIENT_TIMEOUT)
    try:
        body = json.dumps(BODIES[path]) if method == "POST" else None
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        headers = {key.lower(): value for key, value in response.getheaders()}
        parsed = json.loads(raw) if headers.get("content-type", "").startswith("application/json") else raw
        return Answer(response.status, headers, parsed, time.monotonic() - started)
    finally:
        connection.close()


def assert_unavailable(answer: Answer, what: str) -> None:
    assert answer.status == 503, f"{what}: {answer}"
    assert answer.body["status"] == 503 and answer.body["message"], f"{what}: {answer}"
    assert int(answer.headers["retry-after"]) >= 1, f"{what}: {answer.headers}"
    assert answer.seconds < BOUND, f"{what}: {answer}"


def assert_healthy(served) -> None:
    answer = call(served, "GET", "/healthz")
    assert answer.status == 200 and answer.body == {"status": "ok"}, answer
    assert answer.seconds < BOUND, answer


def every_route(served) -> list[tuple[str, Answer]]:
    return [(f"{method} {path}", call(served, method, path)) for method, path in DATA_ROUTES]


def recovered_in(served) -> float:
    """Seconds until every data route answers 200 again (fails after RECOVERY_BOUND)."""
    started = time.monotonic()
    while True:
        answers = every_route(served)
        if all(answer.status in (200, 201) for _, answer in answers):
            assert answers[0][1].body["run_id"] == NEW_RUN
            return time.monotonic() - started
        # on the way back (each worker has its own breaker): 200 or 503, never a 500
        assert all(answer.status in (200, 201, 503) for _, answer in answers), answers
        assert time.monotonic() - started < RECOVERY_BOUND, f"not recovered: {answers}"
        time.sleep(0.1)


def concurrent(served, count: int) -> list:
    """Start `count` data requests at once (round-robin over the routes); returns their futures."""
    pool = ThreadPoolExecutor(count)
    futures = [pool.submit(call, served, *DATA_ROUTES[i % len(DATA_ROUTES)]) for i in range(count)]
    pool.shutdown(wait=False)
    return futures


def test_a_stopped_store_is_503_at_once_and_recovers_after_a_restart(pg, served):
    pg.shut_down()
    slowest = 0.0
    for _ in range(3):
        for what, answer in every_route(served):
            assert_unavailable(answer, what)
            slowest = max(slowest, answer.seconds)
        assert_healthy(served)
    pg.restart()
    recovery = recovered_in(served)
    print(f"\nstopped store: slowest 503 {slowest:.3f} s; recovered {recovery:.2f} s after the restart")
    assert_healthy(served)


def test_a_frozen_store_is_503_within_the_bound_and_healthz_answers_meanwhile(pg, served):
    pg.freeze()
    # ten data requests at once: more than the 2 workers x 4 threads, so until they give up
    # every thread is taken by a request waiting on the frozen store
    stuck = concurrent(served, 10)
    time.sleep(0.3)
    assert_healthy(served)
    first = [future.result() for future in stuck]
    for index, answer in enumerate(first):
        assert_unavailable(answer, f"concurrent request {index}")
    later = 0.0
    for _ in range(3):  # the breaker is open: answered at once
        for what, answer in every_route(served):
            assert_unavailable(answer, what)
            later = max(later, answer.seconds)
        assert_healthy(served)
    # the breaker: without it each of these would wait out its own store_timeout (1 s)
    assert later < 0.5, f"requests after the first failures waited {later:.2f} s"
    pg.thaw()
    recovery = recovered_in(served)
    print(
        f"\nfrozen store: first 10 concurrent requests 503 in at most {max(a.seconds for a in first):.2f} s, "
        f"later ones in at most {later:.3f} s; recovered {recovery:.2f} s after SIGCONT"
    )


def test_requests_in_flight_when_the_store_freezes_end_in_503(pg, store, served):
    import psycopg

    # every data route reads one of these tables: with them locked, requests wait inside the store
    url = store[1].replace("postgresql+psycopg://", "postgresql://")
    locker = psycopg.connect(url)
    try:
        locker.execute("LOCK TABLE movies, active_run, runs IN ACCESS EXCLUSIVE MODE")
        in_flight = concurrent(served, 10)
        time.sleep(0.3)
        pg.freeze()  # the backends serving those requests (and the lock's) stop where they are
        assert_healthy(served)
        answers = [future.result() for future in in_flight]
        for index, answer in enumerate(answers):
            assert_unavailable(answer, f"request {index} in flight")
        for what, answer in every_route(served):
            assert_unavailable(answer, what)
        pg.thaw()
    finally:
        pg.thaw()
        locker.close()  # ends the transaction and its locks
    recovery = recovered_in(served)
    print(
        f"\nin flight at the freeze: 503 in at most {max(a.seconds for a in answers):.2f} s; "
        f"recovered {recovery:.2f} s after SIGCONT and the lock's release"
    )
