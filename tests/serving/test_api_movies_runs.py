"""GET /movies/<id>, /movies/<id>/similar, /runs/active."""

from __future__ import annotations

import pytest

from tests.serving.data import NEW_METRICS, NEW_PARAMS, NEW_RUN


def test_movie_from_the_catalogue(client):
    assert client.get("/movies/1").get_json() == {
        "movie_id": 1,
        "title": "Movie 1 (1991)",
        "year": 1991,
        "genres": ["Drama", "Romance"],
    }
    assert client.get("/movies/31").get_json() == {"movie_id": 31, "title": "Untitled", "year": None, "genres": []}


def test_unknown_movie_is_404(client):
    response = client.get("/movies/99")
    assert response.status_code == 404
    assert response.get_json()["message"] == "movie 99 is not in the catalogue"
    assert client.get("/movies/99/similar").status_code == 404


def test_similar_movies_of_the_active_run(client):
    answer = client.get("/movies/1/similar").get_json()
    assert answer["movie_id"] == 1 and answer["run_id"] == NEW_RUN and answer["title"] == "Movie 1 (1991)"
    assert [item["movie_id"] for item in answer["items"]] == [2, 3, 4, 5, 6]
    assert [item["score"] for item in answer["items"]] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    assert answer["items"][1] == {
        "rank": 2,
        "movie_id": 3,
        "title": "Movie 3 (1993)",
        "year": 1993,
        "genres": ["Comedy"],
        "score": pytest.approx(0.8),
    }
    assert [item["movie_id"] for item in client.get("/movies/1/similar?k=2").get_json()["items"]] == [2, 3]
    # the old run's similar row for movie 1 (-> 30) is not served
    assert 30 not in [item["movie_id"] for item in answer["items"]]


def test_a_catalogue_movie_without_neighbours_has_none(client):
    answer = client.get("/movies/3/similar").get_json()
    assert answer["items"] == []


def test_active_run_with_parameters_and_metrics(client):
    answer = client.get("/runs/active").get_json()
    assert answer["run_id"] == NEW_RUN and answer["status"] == "published"
    assert answer["params"] == NEW_PARAMS
    assert answer["metrics"] == NEW_METRICS
    assert answer["started_at"] == "2026-01-02T00:00:00+00:00"
    assert answer["finished_at"] == "2026-01-02T01:00:00+00:00"
    assert answer["activated_at"] and answer["published_at"]


def test_active_run_shows_no_deployment_setting_of_an_older_run(make_app, fresh_store_url):
    """A run published before runs stored model settings only kept every setting, the store's
    URL with its password among them: the route shows the model's settings alone."""
    from movierec.store import runs as writer

    engine = writer.engine_for(fresh_store_url)
    old_params = {
        **NEW_PARAMS,
        "db_url": "postgresql+psycopg://movierec:s3cret-pw@db/movierec",
        "warehouse": "s3a://key:s3cret-pw@bucket/wh",
        "spark_master": "spark://master:7077",
    }
    writer.begin_run(engine, "legacy", old_params, "2026-01-03T00:00:00+00:00")
    writer.load_run(engine, "legacy", {"recommendations": [[(1, 1, 1, 0.5, 0.5, 0.5)]]})
    writer.activate_run(engine, "legacy", {}, "2026-01-03T01:00:00+00:00")
    engine.dispose()
    answer = make_app(fresh_store_url).test_client().get("/runs/active")
    assert answer.status_code == 200
    assert answer.get_json()["params"] == NEW_PARAMS
    assert "s3cret-pw" not in answer.get_data(as_text=True)
