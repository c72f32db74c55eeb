"""GET /users/<id>/recommendations against the known store (tests/serving/data.py)."""

from __future__ import annotations

import pytest

from tests.serving.data import NEW_RUN, OLD_RUN, POPULAR


def ids(answer):
    return [item["movie_id"] for item in answer["items"]]


def test_precomputed_top_10_with_movie_details(client):
    response = client.get("/users/1/recommendations")
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["user_id"] == 1 and answer["run_id"] == NEW_RUN and answer["source"] == "precomputed"
    assert ids(answer) == [20, 19, 18, 17, 16, 15, 14, 13, 12, 11]
    assert [item["rank"] for item in answer["items"]] == list(range(1, 11))
    first = answer["items"][0]
    assert first == {
        "rank": 1,
        "movie_id": 20,
        "title": "Movie 20 (2010)",
        "year": 2010,
        "genres": ["Action", "Sci-Fi"],
        "score": pytest.approx(0.99),
        "cf_score": pytest.approx(0.98),
        "cb_score": pytest.approx(0.5),
    }
    third = answer["items"][2]
    assert third["movie_id"] == 18 and third["genres"] == ["Comedy"] and third["score"] == pytest.approx(0.97)


def test_k_and_offset_pick_the_page(client):
    answer = client.get("/users/1/recommendations?k=3&offset=5").get_json()
    assert answer["source"] == "precomputed"
    assert ids(answer) == [15, 14, 13]
    assert [item["rank"] for item in answer["items"]] == [6, 7, 8]
    assert ids(client.get("/users/1/recommendations?k=20").get_json()) == list(range(20, 0, -1))


def test_pages_cover_the_list_without_repeats(client):
    pages = [client.get(f"/users/1/recommendations?k=5&offset={offset}").get_json() for offset in (0, 5, 10, 15)]
    assert {page["source"] for page in pages} == {"precomputed"}
    assert sum((ids(page) for page in pages), []) == list(range(20, 0, -1))
    # the same run gives the same pages
    again = client.get("/users/1/recommendations?k=5&offset=10").get_json()
    assert again == pages[2]


def test_genre_filters_the_stored_list(client):
    # user 1's comedies (id % 3 == 0) in stored order: 18, 15, 12, 9, 6, 3 at ranks 3, 6, ...
    answer = client.get("/users/1/recommendations?k=5&genre=comedy").get_json()
    assert answer["source"] == "precomputed"
    assert ids(answer) == [18, 15, 12, 9, 6]
    assert [item["rank"] for item in answer["items"]] == [3, 6, 9, 12, 15]
    assert all("Comedy" in item["genres"] for item in answer["items"])
    # the next page of the filtered list
    assert ids(client.get("/users/1/recommendations?k=1&offset=5&genre=Comedy").get_json()) == [3]
    # a genre that is a substring of no other, and a two-word-free hyphenated one
    assert ids(client.get("/users/1/recommendations?k=2&genre=Sci-Fi").get_json()) == [20, 17]


def test_cold_start_user_gets_the_runs_popular_movies(client):
    # user 3 was trained on by the old run only: for the active run a user without history
    for user in (3, 999999):
        answer = client.get(f"/users/{user}/recommendations").get_json()
        assert answer["source"] == "cold_start" and answer["run_id"] == NEW_RUN
        assert ids(answer) == POPULAR[:10]
        # the rating count is popularity, its own field: score means the hybrid's score in every list
        assert [item["popularity"] for item in answer["items"]] == [100 - rank for rank in range(1, 11)]
        assert {(item["score"], item["cf_score"], item["cb_score"]) for item in answer["items"]} == {(None,) * 3}
    # the rest of the list, and nothing past its end
    assert ids(client.get("/users/3/recommendations?offset=10").get_json()) == [32, 1]
    assert ids(client.get("/users/3/recommendations?offset=12").get_json()) == []


def test_cold_start_narrowed_by_genre(client):
    answer = client.get("/users/3/recommendations?k=5&genre=Comedy").get_json()
    assert answer["source"] == "cold_start"
    assert ids(answer) == [15, 30, 3, 6, 9]
    assert [item["rank"] for item in answer["items"]] == [3, 6, 7, 8, 9]
    assert [item["popularity"] for item in answer["items"]] == [97, 94, 93, 92, 91]
    assert {item["score"] for item in answer["items"]} == {None}
    assert ids(client.get("/users/3/recommendations?genre=film-noir").get_json()) == [32]


@pytest.mark.parametrize(
    "query",
    [
        "/users/2/recommendations",  # trained on, nothing stored
        "/users/4/recommendations?k=6",  # 5 stored, 6 asked
        "/users/1/recommendations?k=21",  # 20 stored
        "/users/1/recommendations?k=2&offset=19",  # the page reaches past rank 20
        "/users/1/recommendations?k=7&genre=Comedy",  # 6 stored comedies
    ],
)
def test_pages_past_the_store_need_live_scoring(client, blocked_live, query):
    """With the live fallback busy, these answer 503 with Retry-After: they need Spark."""
    response = client.get(query)
    assert response.status_code == 503, response.get_json()
    assert int(response.headers["Retry-After"]) >= 1
    assert "took longer than 0.5 s" in response.get_json()["message"]


def test_precomputed_items_have_scores_and_no_popularity(client):
    """`popularity` belongs to cold starts; every other list's `score` is the hybrid's, 0..1."""
    items = client.get("/users/1/recommendations?k=20").get_json()["items"]
    assert all("popularity" not in item and 0.0 <= item["score"] <= 1.0 for item in items)


def test_a_live_continuation_never_ranks_a_row_above_the_stored_ones():
    """_continue_live: the stored rows, then only live rows ranked below the last of them (score,
    then movie id, as the batch orders), none of them repeated, ranks 1..n."""
    from serving.api import _continue_live

    stored = [{"rank": 1, "movie_id": 7, "score": 0.9}, {"rank": 2, "movie_id": 5, "score": 0.5}]
    live = [
        {"rank": 1, "movie_id": 7, "score": 0.9},
        {"rank": 2, "movie_id": 3, "score": 0.7},  # outscores stored rank 2 but is not stored: left out
        {"rank": 3, "movie_id": 5, "score": 0.5},
        {"rank": 4, "movie_id": 4, "score": 0.5},  # a tie with rank 2 that the batch orders before it
        {"rank": 5, "movie_id": 6, "score": 0.5},  # a tie that the batch orders after it
        {"rank": 6, "movie_id": 1, "score": 0.2},
    ]
    merged = _continue_live(stored, live)
    assert [(row["rank"], row["movie_id"]) for row in merged] == [(1, 7), (2, 5), (3, 6), (4, 1)]
    assert [row["movie_id"] for row in _continue_live([], live)] == [7, 3, 5, 4, 6, 1]


def test_store_answers_do_not_wait_for_a_busy_live_fallback(client, blocked_live):
    assert client.get("/users/1/recommendations?k=20").status_code == 200
    assert client.get("/users/4/recommendations?k=5").get_json()["source"] == "precomputed"
    assert client.get("/users/3/recommendations").get_json()["source"] == "cold_start"


def test_answers_follow_the_active_run(make_app, fresh_store_url):
    from movierec.store import runs as store

    client = make_app(fresh_store_url).test_client()
    assert client.get("/users/1/recommendations?k=3").get_json()["run_id"] == NEW_RUN
    engine = store.engine_for(fresh_store_url)
    store.rollback(engine, OLD_RUN)
    answer = client.get("/users/1/recommendations?k=3").get_json()
    assert answer["run_id"] == OLD_RUN and ids(answer) == [21, 22, 23]
    # user 3 has history in the old run, user 2 none there
    assert client.get("/users/3/recommendations?k=2").get_json()["source"] == "precomputed"
    assert client.get("/users/2/recommendations?k=2").get_json()["source"] == "cold_start"
    assert ids(client.get("/users/2/recommendations?k=2").get_json()) == [1, 2]
    assert client.get("/runs/active").get_json()["run_id"] == OLD_RUN


def test_a_cached_page_is_the_uncached_answer(make_app, sqlite_store_url):
    cached = make_app(sqlite_store_url).test_client()
    uncached = make_app(sqlite_store_url, config={"PAGE_CACHE_SIZE": 0}).test_client()
    for path in (
        "/users/1/recommendations?k=3&offset=2",
        "/users/4/recommendations?k=5",
        "/users/1/recommendations?k=2&genre=comedy",
    ):
        first, again, plain = cached.get(path), cached.get(path), uncached.get(path)
        assert first.get_data() == again.get_data() == plain.get_data()
        assert again.status_code == 200 and again.mimetype == "application/json"
    assert cached.application.extensions["movierec"].pages.get(None, (1, 3, 2, None)) is None


def test_a_cached_page_follows_a_rollback_and_a_new_activation_of_the_same_run(make_app, fresh_store_url):
    """The cache is keyed by the activation (run id and time), not the run id alone."""
    from movierec.store import runs as store

    client = make_app(fresh_store_url).test_client()
    assert ids(client.get("/users/1/recommendations?k=3").get_json())[0] == 20
    engine = store.engine_for(fresh_store_url)
    store.rollback(engine, OLD_RUN)
    assert ids(client.get("/users/1/recommendations?k=3").get_json()) == [21, 22, 23]
    store.rollback(engine, NEW_RUN)
    answer = client.get("/users/1/recommendations?k=3").get_json()
    assert answer["run_id"] == NEW_RUN and ids(answer) == [20, 19, 18]


def test_the_page_cache_is_bounded_and_holds_one_activation():
    from serving import PageCache

    cache = PageCache(2)
    cache.put("a", 1, b"1")
    cache.put("a", 2, b"2")
    cache.put("a", 3, b"3")
    assert [cache.get("a", page) for page in (1, 2, 3)] == [None, b"2", b"3"]
    cache.put("b", 1, b"b1")
    assert cache.get("a", 2) is None and cache.get("b", 1) == b"b1"
    off = PageCache(0)
    off.put("a", 1, b"1")
    assert off.get("a", 1) is None
