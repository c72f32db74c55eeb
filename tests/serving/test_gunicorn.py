"""The whole app under a real gunicorn (`movierec serve`, 2 workers) on 127.0.0.1,
against SQLite and against a throwaway PostgreSQL."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.data import NEW_RUN, POPULAR
from tests.serving.server import Served

pytestmark = pytest.mark.slow
ROUTE = "/users/<user_id>/recommendations"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request, tmp_path_factory):
    url = request.getfixturevalue(f"{request.param}_store_url")
    # JAVA_HOME leads nowhere: Spark cannot start in these workers, a real "Spark unavailable"
    server = Served(
        url,
        tmp_path_factory.mktemp(f"gunicorn-{request.param}"),
        workers=2,
        env={"JAVA_HOME": "/nonexistent/java", "MOVIEREC_LIVE_TIMEOUT": "60"},
    )
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def call(served, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=90)
    try:
        payload = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, dict(response.getheaders()), json.loads(raw) if is_json else raw.decode()
    finally:
        connection.close()


def counted(served, route=ROUTE, status="200") -> float:
    _, _, text = call(served, "GET", "/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "movierec_http_requests_total"
                and sample.labels.get("route") == route
                and sample.labels.get("status") == status
                and sample.labels.get("method") == "GET"
            ):
                return sample.value
    return 0.0


def test_routes_answer_as_in_process(served):
    status, _, answer = call(served, "GET", "/users/1/recommendations?k=5")
    assert status == 200 and answer["source"] == "precomputed" and answer["run_id"] == NEW_RUN
    assert [item["movie_id"] for item in answer["items"]] == [20, 19, 18, 17, 16]
    status, _, answer = call(served, "GET", "/users/3/recommendations")
    assert answer["source"] == "cold_start" and [i["movie_id"] for i in answer["items"]] == POPULAR[:10]
    status, _, answer = call(
        served, "POST", "/recommend", {"userId": 1, "movieIds": [5, 20]}, {"Content-Type": "application/json"}
    )
    assert status == 200 and [item["movieId"] for item in answer] == [20, 5]
    assert call(served, "GET", "/movies/1")[2]["title"] == "Movie 1 (1991)"
    assert [i["movie_id"] for i in call(served, "GET", "/movies/1/similar?k=2")[2]["items"]] == [2, 3]
    assert call(served, "GET", "/runs/active")[2]["run_id"] == NEW_RUN
    assert call(served, "GET", "/readyz")[2] == {
        "status": "ready",
        "run_id": NEW_RUN,
        "activated_at": call(served, "GET", "/runs/active")[2]["activated_at"],
    }
    assert call(served, "GET", "/healthz")[2] == {"status": "ok"}
    assert call(served, "GET", "/openapi.json")[2]["openapi"].startswith("3.")
    status, headers, html = call(served, "GET", "/")
    assert status == 200 and 'id="user-form"' in html


def test_bad_input_is_json_4xx(served):
    status, _, answer = call(served, "GET", "/users/-4/recommendations")
    assert status == 400 and "non-negative integer" in answer["message"]
    status, _, answer = call(served, "POST", "/recommend", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON object" in answer["message"]
    status, _, answer = call(served, "GET", "/movies/123456")
    assert status == 404 and answer["status"] == 404


def test_an_oversized_chunked_body_is_413(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        chunks = [b'{"userId": 1, "movieIds": [1], "x": "'] + [b"y" * 10_000] * 10 + [b'"}']
        connection.request(
            "POST",
            "/recommend",
            body=iter(chunks),
            encode_chunked=True,
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["status"] == 413
    finally:
        connection.close()


def test_spark_that_cannot_start_is_503_with_retry_after(served):
    status, headers, answer = call(served, "POST", "/recommend", {"userId": 2, "movieIds": [1]})
    assert status == 503, answer
    assert "Spark could not start" in answer["message"]
    assert int(headers["Retry-After"]) >= 1
    status, headers, answer = call(served, "GET", "/users/2/recommendations")
    assert status == 503 and "Retry-After" in headers
    # the store's answers are unaffected
    assert call(served, "GET", "/users/1/recommendations")[0] == 200


def test_metrics_add_up_over_the_workers(served):
    before = counted(served)
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # until both workers have answered (each writes its own metrics file), at most 800 requests
        while sent < 800:
            statuses = list(pool.map(lambda _: call(served, "GET", "/users/1/recommendations")[0], range(40)))
            assert statuses == [200] * 40
            sent += 40
            if len(set(path.name.rsplit("_", 1)[-1] for path in served.metrics_dir.glob("counter_*.db"))) >= 2:
                break
    pids = {path.name.rsplit("_", 1)[-1] for path in served.metrics_dir.glob("counter_*.db")}
    assert len(pids) >= 2, "only one worker answered"
    # whichever worker answers the scrape, it reports every worker's requests
    for _ in range(4):
        assert counted(served) - before == sent
    _, _, text = call(served, "GET", "/metrics")
    assert f'movierec_active_run{{run_id="{NEW_RUN}"}} 1.0' in text


def test_the_served_command_is_gunicorn_with_workers(served):
    log = served.log()
    assert "Booting worker" in log and "gthread" in log
    assert "Control socket listening" not in log  # no way to stop it but a signal to its pid
    assert served.process.poll() is None
