"""Bad input on the GET routes, missing runs, an unreachable store: JSON errors, never a trace."""

from __future__ import annotations

import pytest

from tests.ports import free_port


@pytest.mark.parametrize(
    "path,status,message",
    [
        ("/users/abc/recommendations", 400, "user id must be a non-negative integer, got 'abc'"),
        ("/users/-1/recommendations", 400, "user id must be a non-negative integer, got '-1'"),
        ("/users/1.5/recommendations", 400, "user id must be a non-negative integer"),
        ("/users/%D9%A3/recommendations", 400, "user id must be a non-negative integer"),  # Arabic-Indic 3
        ("/users/99999999999/recommendations", 400, "user id must be between 0 and 2147483647"),
        ("/users/1/recommendations?k=0", 400, "k must be an integer from 1 to 500, got 0"),
        ("/users/1/recommendations?k=501", 400, "k must be an integer from 1 to 500, got 501"),
        ("/users/1/recommendations?k=ten", 400, "k must be an integer from 1 to 500, got 'ten'"),
        ("/users/1/recommendations?k=", 400, "k must be an integer from 1 to 500"),
        ("/users/1/recommendations?offset=-1", 400, "offset must be an integer from 0 to 499, got -1"),
        ("/users/1/recommendations?offset=500", 400, "offset must be an integer from 0 to 499, got 500"),
        ("/users/1/recommendations?offset=1e3", 400, "offset must be an integer from 0 to 499"),
        ("/users/1/recommendations?k=5.5", 400, "k must be an integer from 1 to 500, got '5.5'"),
        ("/users/1/recommendations?k=5.", 400, "k must be an integer from 1 to 500, got '5.'"),
        ("/users/1/recommendations?k=1_0", 400, "k must be an integer from 1 to 500, got '1_0'"),  # int() takes it
        ("/users/1/recommendations?k=%D9%A3", 400, "k must be an integer from 1 to 500"),  # Arabic-Indic 3
        ("/users/1/recommendations?genre=Cmedy", 400, "unknown genre 'Cmedy'; known genres: Action, Adventure"),
        (
            "/users/1/recommendations?genre=",
            400,
            "genre must be a genre name of the catalogue (case-insensitive), not empty, got ''",
        ),
        ("/users/3/recommendations?genre=Horror", 400, "unknown genre 'Horror'"),
        ("/movies/abc", 400, "movie id must be a non-negative integer, got 'abc'"),
        ("/movies/-5", 400, "movie id must be a non-negative integer"),
        ("/movies/abc/similar", 400, "movie id must be a non-negative integer"),
        ("/movies/1/similar?k=0", 400, "k must be an integer from 1 to 100, got 0"),
        ("/movies/1/similar?k=101", 400, "k must be an integer from 1 to 100, got 101"),
        ("/nowhere", 404, "The requested URL was not found"),
        ("/users/1", 404, "The requested URL was not found"),
    ],
)
def test_bad_requests_are_json_errors(sqlite_client, path, status, message):
    response = sqlite_client.get(path)
    assert response.status_code == status
    assert response.is_json
    answer = response.get_json()
    assert answer["status"] == status
    assert message in answer["message"], answer["message"]


def test_wrong_method_is_405_with_allow(sqlite_client):
    response = sqlite_client.get("/recommend")
    assert response.status_code == 405 and response.is_json
    assert "POST" in response.headers["Allow"]
    assert sqlite_client.delete("/users/1/recommendations").status_code == 405


def test_an_unexpected_failure_is_a_500_without_a_trace(make_app, sqlite_store_url):
    app = make_app(sqlite_store_url)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals at /work/main/serving")

    response = app.test_client().get("/boom")
    assert response.status_code == 500 and response.is_json
    text = response.get_data(as_text=True)
    assert "secret" not in text and "Traceback" not in text and "/work/main" not in text
    assert response.get_json()["message"] == "internal error; the server log has the details"


def test_no_shutdown_route(sqlite_client):
    for path in ("/shutdown", "/admin/shutdown", "/stop"):
        assert sqlite_client.post(path).status_code == 404


def test_before_the_first_publish_data_routes_are_503(make_app, tmp_path):
    client = make_app(f"sqlite:///{tmp_path / 'empty.db'}").test_client()
    assert client.get("/healthz").status_code == 200
    for path in (
        "/readyz",
        "/runs/active",
        "/users/1/recommendations",
        "/movies/1/similar",
        "/users/1/recommendations?genre=Comedy",
    ):
        response = client.get(path)
        assert response.status_code == 503, path
        assert int(response.headers["Retry-After"]) > 0
        assert "no active run" in response.get_json()["message"]
    response = client.post("/recommend", json={"userId": 1, "movieIds": [1]})
    assert response.status_code == 503
    assert client.get("/movies/1").status_code == 404  # the catalogue is empty, not missing


def test_an_unreachable_store_is_503_not_500(make_app):
    # a PostgreSQL URL on a port where nothing listens: the app still boots
    client = make_app(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing").test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "the store is unreachable" in ready.get_json()["message"]
    for path in ("/users/1/recommendations", "/movies/1", "/runs/active"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert "store is unreachable" in response.get_json()["message"]
        assert response.headers["Retry-After"] == "5"
