"""GET /healthz, /readyz, /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.serving.data import NEW_RUN, OLD_RUN


def samples(client) -> dict[tuple, float]:
    """(metric sample name, sorted labels) -> value, from a scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def request_count(found, route, status, method="GET"):
    return found.get(
        ("movierec_http_requests_total", (("method", method), ("route", route), ("status", str(status)))), 0
    )


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_names_the_active_run(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready" and response.get_json()["run_id"] == NEW_RUN


def test_metrics_count_requests_by_route_and_status(client):
    route = "/users/<user_id>/recommendations"
    for user in (1, 1, 3):
        assert client.get(f"/users/{user}/recommendations").status_code == 200
    client.get("/users/x/recommendations")
    client.get("/movies/99")
    client.get("/no/such/path")
    found = samples(client)
    assert request_count(found, route, 200) == 3
    assert request_count(found, route, 400) == 1
    assert request_count(found, "/movies/<movie_id>", 404) == 1
    assert request_count(found, "<unmatched>", 404) == 1
    # one latency observation per request, in the histogram of the same labels
    labels = (("method", "GET"), ("route", route), ("status", "200"))
    assert found[("movierec_http_request_duration_seconds_count", labels)] == 3
    assert found[("movierec_http_request_duration_seconds_bucket", tuple(sorted(labels + (("le", "+Inf"),))))] == 3
    assert found[("movierec_active_run", (("run_id", NEW_RUN),))] == 1
    assert found[("movierec_store_up", ())] == 1


def test_metrics_count_live_fallback_calls(client, blocked_live):
    assert client.get("/users/2/recommendations").status_code == 503
    assert client.post("/recommend", json={"userId": 2, "movieIds": [1]}).status_code == 503
    found = samples(client)
    assert found[("movierec_live_calls_total", (("kind", "recommend"), ("outcome", "timeout")))] == 1
    assert found[("movierec_live_calls_total", (("kind", "score"), ("outcome", "timeout")))] == 1
    assert found[("movierec_live_call_duration_seconds_count", (("kind", "score"), ("outcome", "timeout")))] == 1
    # each waited for the 0.5 s time-out: the sum of two observations is at least 1 s
    total = sum(value for (name, labels), value in found.items() if name == "movierec_live_call_duration_seconds_sum")
    assert total >= 1.0


def test_metrics_follow_a_rollback(make_app, fresh_store_url):
    from movierec.store import runs as store

    client = make_app(fresh_store_url).test_client()
    assert samples(client)[("movierec_active_run", (("run_id", NEW_RUN),))] == 1
    store.rollback(store.engine_for(fresh_store_url), OLD_RUN)
    found = samples(client)
    assert found[("movierec_active_run", (("run_id", OLD_RUN),))] == 1
    assert ("movierec_active_run", (("run_id", NEW_RUN),)) not in found
