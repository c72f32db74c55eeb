"""POST /recommend (the seed's call): store answers, validation, and the need for live scoring."""

from __future__ import annotations

import io
import json

import pytest


def post(client, body, **kwargs):
    return client.post("/recommend", json=body, **kwargs)


def test_stored_pairs_come_from_the_store_best_first(client):
    # user 1 stores movie 21 - r at rank r with score 1 - r/100
    response = post(client, {"userId": 1, "movieIds": [5, 20, 12]})
    assert response.status_code == 200
    assert response.get_json() == [
        {"movieId": 20, "score": pytest.approx(0.99), "source": "precomputed"},
        {"movieId": 12, "score": pytest.approx(0.91), "source": "precomputed"},
        {"movieId": 5, "score": pytest.approx(0.84), "source": "precomputed"},
    ]


def test_the_seeds_body_with_genres_is_accepted(client):
    # the seed's exact shape; all three pairs are stored for user 1, so no Spark is needed
    body = {"userId": 1, "movieIds": [1, 3, 6], "genres_lists": [["Adventure", "Animation"], ["Comedy"], ["Action"]]}
    answer = post(client, body).get_json()
    assert [item["movieId"] for item in answer] == [6, 3, 1]
    assert {item["source"] for item in answer} == {"precomputed"}


@pytest.mark.parametrize("genres_lists", [None, [None, []]])
def test_null_genres_mean_none_given(client, genres_lists):
    # what the seed's clients send when they have no genres: null for the field or for an entry
    response = post(client, {"userId": 1, "movieIds": [5, 20], "genres_lists": genres_lists})
    assert response.status_code == 200, response.get_json()
    assert [item["movieId"] for item in response.get_json()] == [20, 5]


def test_a_user_without_history_gets_the_runs_popularity(client):
    # user 3 is not among run-new's users: popular ranks 5 -> 1, 32 -> 11, 1 -> 12 (count 100 - rank);
    # the count is popularity, not a score (no personal score exists); 31 and 40 are not in the popular list
    answer = post(client, {"userId": 3, "movieIds": [40, 1, 31, 5, 32]}).get_json()
    assert answer == [
        {"movieId": 5, "score": None, "popularity": 99, "source": "cold_start"},
        {"movieId": 32, "score": None, "popularity": 89, "source": "cold_start"},
        {"movieId": 1, "score": None, "popularity": 88, "source": "cold_start"},
        {"movieId": 31, "score": None, "popularity": None, "source": "cold_start"},
        {"movieId": 40, "score": None, "popularity": None, "source": "cold_start"},
    ]


def test_a_body_without_json_content_type_is_still_read(client):
    response = client.post("/recommend", data=json.dumps({"userId": 1, "movieIds": [20]}))
    assert response.status_code == 200
    assert response.get_json()[0]["movieId"] == 20


@pytest.mark.parametrize(
    "body",
    [
        {"userId": 1, "movieIds": [20, 21]},  # 21 is not in user 1's stored list
        {"userId": 2, "movieIds": [1]},  # user 2 has nothing stored
        {"userId": 1, "movieIds": [5, 999], "genres_lists": [None, ["Comedy"]]},  # a movie nobody knows
    ],
)
def test_pairs_not_stored_need_live_scoring(client, blocked_live, body):
    response = post(client, body)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert "live scoring took longer" in response.get_json()["message"]


BAD_BODIES = [
    ({"movieIds": [1]}, "userId is missing"),
    ({"userId": "x", "movieIds": [1]}, "userId must be a non-negative integer"),
    ({"userId": -1, "movieIds": [1]}, "userId must be between 0 and"),
    ({"userId": True, "movieIds": [1]}, "userId must be a non-negative integer"),
    ({"userId": 1.5, "movieIds": [1]}, "userId must be a non-negative integer"),
    ({"userId": 2**40, "movieIds": [1]}, "userId must be between 0 and 2147483647"),
    ({"userId": 2.5, "movieIds": [1]}, "userId must be a non-negative integer, got 2.5"),  # JSON integers only
    ({"userId": "2", "movieIds": [1]}, "userId must be a non-negative integer, got '2'"),
    ({"userId": 1}, "movieIds is missing: it must be a non-empty list"),
    ({"userId": 1, "movieIds": []}, "movieIds must be a non-empty list"),
    ({"userId": 1, "movieIds": 5}, "movieIds must be a non-empty list"),
    ({"userId": 1, "movieIds": [1, "a"]}, "movieIds[1] must be a non-negative integer"),
    ({"userId": 1, "movieIds": [1, 3.5]}, "movieIds[1] must be a non-negative integer, got 3.5"),
    ({"userId": 1, "movieIds": [1, 1.0]}, "movieIds repeats [1]"),  # 1.0 is the number 1
    ({"userId": 1, "movieIds": [False]}, "movieIds[0] must be a non-negative integer, got False"),
    ({"userId": 1, "movieIds": [1, -3]}, "movieIds[1] must be between 0 and"),
    ({"userId": 1, "movieIds": [1, 2, 1]}, "movieIds repeats [1]"),
    ({"userId": 1, "movieIds": list(range(1, 502))}, "movieIds has 501 entries; at most 500"),
    ({"userId": 1, "movieIds": [1, 2], "genres_lists": [["Comedy"]]}, "genres_lists has 1 entries but movieIds has 2"),
    ({"userId": 1, "movieIds": [1], "genres_lists": "Comedy"}, "genres_lists must be a list"),
    ({"userId": 1, "movieIds": [1], "genres_lists": ["Comedy"]}, "genres_lists[0] must be a list of genre names"),
    (
        {"userId": 1, "movieIds": [1], "genres_lists": [[1]]},
        "genres_lists[0][0] must be a genre name (a string), got 1",
    ),
    ({"userId": 1, "movieIds": [1], "genres_lists": [["Cmedy"]]}, "unknown genre 'Cmedy' for movie 1"),
    ({"userId": 1, "movieIds": [999]}, "movie 999 is not in the catalogue: give its genres"),
    ({"userId": 1, "movieIds": [1], "genre_lists": [["Comedy"]]}, "unknown field(s) ['genre_lists']"),
    ([1, 2, 3], "the body must be a JSON object, got a JSON list"),
    (None, "the body must be a JSON object, got a JSON null"),
    # every wrong field is named, unknown ones first
    (
        {"userId": "a", "movieIds": [], "extra": 1},
        "unknown field(s) ['extra']; expected userId, movieIds, genres_lists; userId must be a non-negative integer, "
        "got 'a'; movieIds must be a non-empty list of movie ids (at most 500, each once), got []",
    ),
]


@pytest.mark.parametrize("body,message", BAD_BODIES)
def test_bad_bodies_are_400_saying_what_is_wrong(sqlite_client, body, message):
    response = sqlite_client.post("/recommend", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert answer["status"] == 400 and answer["error"] == "Bad Request"
    assert message in answer["message"]


@pytest.mark.parametrize("raw", [b"{", b"", b"userId=1", b"\xff\xfe"])
def test_malformed_json_is_400(sqlite_client, raw):
    response = sqlite_client.post("/recommend", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "must be a JSON object" in response.get_json()["message"]


def test_a_body_nested_too_deeply_is_400_not_500(sqlite_client):
    deep = b'{"userId": 1, "movieIds": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"  # valid JSON, under 64 KiB
    response = sqlite_client.post("/recommend", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["message"]


def test_oversized_body_is_413(sqlite_client):
    body = json.dumps({"userId": 1, "movieIds": [1], "padding": "x" * 70_000})
    response = sqlite_client.post("/recommend", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "at most 65536 are accepted" in response.get_json()["message"]


def test_oversized_body_without_length_is_413(sqlite_client):
    """A chunked body has no Content-Length: the size limit still holds while reading.
    (gunicorn marks such a body wsgi.input_terminated, as here; test_gunicorn sends a real one.)"""
    body = b'{"userId": 1, "movieIds": [1], "padding": "' + b"x" * 100_000 + b'"}'
    response = sqlite_client.post(
        "/recommend",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["status"] == 413
