"""POST and GET /users/<id>/ratings: ingest's rules, all rows or none, once each, committed before the 201;
in-process on SQLite and PostgreSQL, and through a real gunicorn with two workers."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from movierec.data.movielens import FIRST_TIMESTAMP
from serving.models import MAX_FEEDBACK_ROWS
from tests.serving.server import Served

# ratings' times in the MovieLens era (ingest's rule: 1995 to 2100)
T = 1_600_000_000

KEY = "feedback-route-key-0123456789abcdef"
DIGEST = hashlib.sha256(KEY.encode()).hexdigest()
AUTH = {"Authorization": f"Bearer {KEY}"}
# user ids of their own per test: the session's stores are shared with other tests
_users = itertools.count(1000)


@pytest.fixture
def client(make_app, store_url):
    return make_app(store_url, api_keys=DIGEST).test_client()


def _post(client, user_id, body):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(f"/users/{user_id}/ratings", data=data, content_type="application/json", headers=AUTH)


def _listed(client, user_id):
    response = client.get(f"/users/{user_id}/ratings", headers=AUTH)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["user_id"] == user_id
    return [(r["movie_id"], r["rating"], r["timestamp"]) for r in answer["ratings"]]


def test_posted_ratings_are_stored_then_listed(client):
    user = next(_users)
    body = [
        {"movie_id": 5, "rating": 4.5, "timestamp": 1_700_000_100},
        {"movie_id": 33, "rating": 1, "timestamp": 1_700_000_000},
    ]
    response = _post(client, user, body)
    assert response.status_code == 201
    assert response.get_json() == {"user_id": user, "stored": 2, "already_stored": 0}
    assert response.headers["Location"].endswith(f"/users/{user}/ratings")
    assert _listed(client, user) == [(33, 1.0, 1_700_000_000), (5, 4.5, 1_700_000_100)]
    assert _listed(client, next(_users)) == []


def test_a_rating_without_a_timestamp_gets_the_time_it_arrived(client):
    user = next(_users)
    before = int(time.time())
    assert _post(client, user, [{"movie_id": 7, "rating": 3.5}]).status_code == 201
    ((movie, rating, timestamp),) = _listed(client, user)
    assert (movie, rating) == (7, 3.5) and before <= timestamp <= int(time.time())


def test_a_duplicate_post_stores_nothing_twice(client):
    user = next(_users)
    body = [{"movie_id": 1, "rating": 2.0, "timestamp": T + 10}, {"movie_id": 2, "rating": 5.0, "timestamp": T + 10}]
    assert _post(client, user, body).get_json() == {"user_id": user, "stored": 2, "already_stored": 0}
    assert _post(client, user, body).get_json() == {"user_id": user, "stored": 0, "already_stored": 2}
    more = body + [{"movie_id": 1, "rating": 4.0, "timestamp": T + 11}]  # a re-rating later is a new rating
    assert _post(client, user, more).get_json() == {"user_id": user, "stored": 1, "already_stored": 2}
    assert _listed(client, user) == [(1, 2.0, T + 10), (2, 5.0, T + 10), (1, 4.0, T + 11)]


GOOD = [{"movie_id": 1, "rating": 4.0, "timestamp": T + 100}, {"movie_id": 2, "rating": 3.0, "timestamp": T + 100}]
BAD_BODIES = [
    # (body, words the message must hold)
    (GOOD + [{"movie_id": 3, "rating": 4.3, "timestamp": T + 100}], ["row 2", "rating", "half stars", "4.3"]),
    (GOOD + [{"movie_id": 3, "rating": 0, "timestamp": T + 100}], ["row 2", "rating"]),
    (GOOD + [{"movie_id": 3, "rating": 5.5, "timestamp": T + 100}], ["row 2", "rating"]),
    (GOOD + [{"movie_id": 3, "rating": "4", "timestamp": T + 100}], ["row 2", "rating"]),
    (GOOD + [{"movie_id": 3, "rating": True}], ["row 2", "rating"]),
    (GOOD + [{"movie_id": 0, "rating": 4.0}], ["row 2", "movie_id", "1 to 2147483647"]),
    (GOOD + [{"movie_id": 2**31, "rating": 4.0}], ["row 2", "movie_id"]),
    (GOOD + [{"movie_id": 3.5, "rating": 4.0}], ["row 2", "movie_id"]),  # 3.0 is an integer, as JSON Schema says
    (GOOD + [{"movie_id": 99, "rating": 4.0}], ["row 2", "movie 99 is not in the catalogue"]),
    (GOOD + [{"movie_id": 3, "rating": 4.0, "timestamp": FIRST_TIMESTAMP - 1}], ["row 2", "timestamp"]),
    (GOOD + [{"movie_id": 3, "rating": 4.0, "timestamp": "now"}], ["row 2", "timestamp"]),
    (GOOD + [{"movie_id": 3, "rating": 4.0, "timestamp": int(time.time()) + 10 * 86400}], ["row 2", "timestamp"]),
    (GOOD + [{"movie_id": 3, "rating": 4.0, "stars": 4}], ["row 2", "unknown field 'stars'"]),
    (GOOD + [{"rating": 4.0}], ["row 2", "movie_id is missing"]),
    (GOOD + [5], ["row 2", "JSON object"]),
    (GOOD + [{"movie_id": 1, "rating": 1.0, "timestamp": T + 100}], ["row 2", "already given in row 0"]),
    ([], ["no ratings"]),
    ({"movie_id": 1, "rating": 4.0}, ["JSON list"]),
    ("[{", ["JSON"]),
    ([{"movie_id": 1, "rating": 4.0, "timestamp": t} for t in range(MAX_FEEDBACK_ROWS + 1)], ["at most 500"]),
]


@pytest.mark.parametrize("body,words", BAD_BODIES)
def test_a_bad_row_makes_the_call_a_400_naming_it_and_stores_nothing(client, body, words):
    user = next(_users)
    response = _post(client, user, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["status"] == 400 and answer["error"] == "Bad Request"
    for word in words:
        assert word in answer["message"], answer["message"]
    assert _listed(client, user) == []


def test_the_most_rows_a_call_takes_are_stored(client):
    user = next(_users)
    body = [{"movie_id": 1 + t % 30, "rating": 0.5 + t % 10 / 2, "timestamp": T + t} for t in range(MAX_FEEDBACK_ROWS)]
    assert _post(client, user, body).get_json()["stored"] == MAX_FEEDBACK_ROWS
    assert len(_listed(client, user)) == MAX_FEEDBACK_ROWS


@pytest.mark.parametrize("user", ["0", "abc", "-1", "1.5", str(2**31)])
def test_a_bad_user_id_is_a_400(client, user):
    assert _post(client, user, GOOD).status_code == 400
    assert client.get(f"/users/{user}/ratings", headers=AUTH).status_code == 400


def test_feedback_survives_a_new_app_on_the_same_store(make_app, fresh_store_url):
    """Committed before the 201: another process (here, another app and engine) reads it."""
    first = make_app(fresh_store_url, api_keys=DIGEST)
    assert _post(first.test_client(), 3, GOOD).status_code == 201
    first.extensions["movierec"].engine.dispose()
    assert _listed(make_app(fresh_store_url, api_keys=DIGEST).test_client(), 3) == [
        (1, 4.0, T + 100),
        (2, 3.0, T + 100),
    ]


# ---------------------------------------------------------------- gunicorn, two workers


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request, tmp_path_factory):
    url = request.getfixturevalue(f"{request.param}_store_url")  # tests/serving/data.py, written without Spark
    server = Served(
        url,
        tmp_path_factory.mktemp(f"gunicorn-feedback-{request.param}"),
        workers=2,
        env={"JAVA_HOME": "/nonexistent/java", "MOVIEREC_API_KEYS": DIGEST},
    )
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def _call(served, method, path, body=None, headers=None):
    request = urllib.request.Request(
        served.base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


RATINGS_ROUTE = "/users/<user_id>/ratings"


def _answered(served, method: str, route: str = RATINGS_ROUTE) -> dict[str, float]:
    """How many requests each worker (pid) has answered with a 2xx for `method` on `route`.

    Each worker counts its requests in its own prometheus_client multiprocess file, named by its pid."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[str, float] = {}
    for path in served.metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, *_ = json.loads(key)
            if (
                name == "movierec_http_requests_total"
                and labels.get("route") == route
                and labels.get("method") == method
                and labels.get("status", "").startswith("2")
                and value > 0
            ):
                pid = path.stem.rsplit("_", 1)[-1]
                counts[pid] = counts.get(pid, 0) + value
    return counts


def _answered_by(served, method: str, route: str = RATINGS_ROUTE) -> set[str]:
    """The workers (pids) that have answered `method` on `route` with a 2xx."""
    return set(_answered(served, method, route))


@pytest.mark.slow
def test_a_post_to_one_worker_is_read_by_the_other(served):
    user = next(_users)
    body = [{"movie_id": 5, "rating": 4.5, "timestamp": 1_700_000_000}, {"movie_id": 6, "rating": 2.0}]
    status, answer = _call(served, "POST", f"/users/{user}/ratings", body)
    assert status == 401 and answer["status"] == 401
    status, answer = _call(served, "POST", f"/users/{user}/ratings", body, AUTH)
    assert (status, answer) == (201, {"user_id": user, "stored": 2, "already_stored": 0})
    (writer,) = _answered_by(served, "POST")
    # read until the other worker has answered too (at most 800 reads); every read sees the committed rows
    expected = {((5, 4.5), (6, 2.0))}
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while sent < 800 and not _answered_by(served, "GET") - {writer}:
            reads = list(pool.map(lambda _: _call(served, "GET", f"/users/{user}/ratings", headers=AUTH), range(40)))
            assert {status for status, _ in reads} == {200}
            assert {tuple((r["movie_id"], r["rating"]) for r in answer["ratings"]) for _, answer in reads} == expected
            sent += 40
    assert _answered_by(served, "GET") - {writer}, "no read reached the worker that did not take the write"
    assert _call(served, "POST", f"/users/{user}/ratings", body[:1], AUTH)[1]["already_stored"] == 1


# ---------------------------------------------------------------- gunicorn, two workers, real Spark


@pytest.fixture(scope="module")
def served_run(spark, pipeline_run, postgres_server, tmp_path_factory):
    """`movierec serve`, two workers, over the session's pipeline run published to a throwaway
    PostgreSQL database (its warehouse for the live path).  PostgreSQL only, to keep the suite
    short: both stores across two workers are test_a_post_to_one_worker_is_read_by_the_other
    above, and a rating changing the live list on SQLite is tests/serving/test_live_fallback.py's."""
    import sqlalchemy as sa

    from movierec.config import to_env
    from movierec.stages.pipeline import run_pipeline

    run_settings, run_id = pipeline_run
    folder = tmp_path_factory.mktemp("gunicorn-feedback-run")
    url = postgres_server.create_database("feedback_run")
    run_pipeline(spark, run_settings.replace(db_url=url), run_id, ["publish"])
    env = to_env(run_settings.replace(db_url=url))
    # each worker starts its Spark at boot, and takes as many live calls as the test sends at once
    env.update(
        MOVIEREC_API_KEYS=DIGEST,
        MOVIEREC_LIVE_TIMEOUT="300",
        MOVIEREC_LIVE_MAX_PENDING="4",
        MOVIEREC_WARM_SPARK="true",
        MOVIEREC_DRIVER_MEMORY="1g",
    )
    server = Served(url, folder / "server", workers=2, env=env)
    try:
        server.wait_ready()
        server.engine = sa.create_engine(url)  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()
        server.engine.dispose()  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.postgres
def test_a_rating_posted_to_one_worker_changes_the_list_the_other_serves(served_run):
    """POST to one worker, then GET the list until the other worker has answered: every answer
    (from either worker, each with its own Spark) is the live list without the rated movie."""
    import sqlalchemy as sa

    with served_run.engine.connect() as conn:
        user, top = conn.execute(
            sa.text(
                "SELECT r.user_id, r.movie_id FROM recommendations r JOIN active_run a ON a.run_id = r.run_id "
                "WHERE r.rank = 1 ORDER BY r.user_id LIMIT 1"
            )
        ).one()
    status, answer = _call(served_run, "GET", f"/users/{user}/recommendations?k=10")
    assert status == 200 and answer["source"] == "precomputed" and answer["items"][0]["movie_id"] == top
    status, answer = _call(served_run, "POST", f"/users/{user}/ratings", [{"movie_id": top, "rating": 5.0}], AUTH)
    assert status == 201, answer
    (writer,) = _answered_by(served_run, "POST")
    route, path = "/users/<user_id>/recommendations", f"/users/{user}/recommendations?k=10"
    before = _answered(served_run, "GET", route)

    def other_has_read() -> bool:
        now = _answered(served_run, "GET", route)
        return any(count > before.get(pid, 0) for pid, count in now.items() if pid != writer)

    lists, sent = set(), 0
    with ThreadPoolExecutor(4) as pool:
        while sent < 200 and not other_has_read():
            for status, answer in pool.map(lambda _: _call_slow(served_run, path), range(4)):
                assert status == 200 and answer["source"] == "live", answer
                lists.add(tuple(item["movie_id"] for item in answer["items"]))
            sent += 4
    assert other_has_read(), "no read reached the worker that did not take the write"
    assert len(lists) == 1, lists  # both workers rank the same list
    (served,) = lists
    assert top not in served and len(served) == 10


def _call_slow(served, path):
    """GET with room for a worker's first live call (its models load then): (status, body)."""
    try:
        with urllib.request.urlopen(served.base + path, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
