"""The live-Spark fallback with real Spark, on models saved by a real pipeline run.

The session's pipeline run (tests/conftest.py `pipeline_run`: small_data, the session's fast
settings), copied with its SQLite store; the answers are checked against the store's own rows and against
`movierec.ranking.online.RunModels` called directly, the batch's scoring code.
"""

from __future__ import annotations

import gc
import shutil
import time
import weakref
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RUN = "test-run-1"  # the session's pipeline run (tests/conftest.py PIPELINE_RUN_ID), copied by `live_settings`
STAGES = ("ingest", "featurize", "train_als", "train_rf", "score", "publish")  # no evaluate: the gate is skipped


@pytest.fixture(scope="module")
def live_settings(pipeline_run, tmp_path_factory):
    """A copy of the session's pipeline run, its warehouse and SQLite store: this module deletes
    stored rows, publishes and rolls back runs, and posts ratings."""
    import sqlite3

    from movierec.spark.paths import RunPaths, local_path

    run_settings, run_id = pipeline_run
    assert run_id == RUN
    root = tmp_path_factory.mktemp("live")
    shutil.copytree(run_settings.warehouse, root / "warehouse")
    with sqlite3.connect(sa.make_url(run_settings.db_url).database) as source:
        with sqlite3.connect(root / "store.db") as target:
            source.backup(target)
    live = run_settings.replace(
        warehouse=str(root / "warehouse"), db_url=f"sqlite:///{root / 'store.db'}", live_timeout=300.0
    )
    assert local_path(RunPaths(live.warehouse, RUN).als_model).exists()
    return live


@pytest.fixture(scope="module")
def engine(live_settings):
    from movierec.store.runs import engine_for

    engine = engine_for(live_settings.db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def oracle(spark, live_settings):
    """The run's models loaded directly, as the batch's code scores with them."""
    from movierec.ranking.online import RunModels

    return RunModels.load(spark, live_settings, RUN)


def stored_list(engine, user_id: int, run_id: str = RUN) -> list[tuple[int, float]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT movie_id, score FROM recommendations WHERE run_id = :run AND user_id = :user ORDER BY rank"
                ),
                {"run": run_id, "user": user_id},
            )
        ]


@pytest.fixture(scope="module")
def users(engine):
    """Two users with stored rows; the second one's rows are removed (trained on, nothing stored)."""
    with engine.begin() as conn:
        ids = [
            row[0]
            for row in conn.execute(
                sa.text("SELECT DISTINCT user_id FROM recommendations WHERE run_id = :run ORDER BY user_id"),
                {"run": RUN},
            )
        ]
        conn.execute(
            sa.text("DELETE FROM recommendations WHERE run_id = :run AND user_id = :user"),
            {"run": RUN, "user": ids[-1]},
        )
    return ids[0], ids[-1]


KEY = "live-fallback-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(live_settings):
    import hashlib

    from serving import create_app

    keyed = live_settings.replace(api_keys=hashlib.sha256(KEY.encode()).hexdigest())
    return create_app({"SETTINGS": keyed, "TESTING": True}).test_client()


def ids(answer):
    return [item["movie_id"] for item in answer["items"]]


def test_a_page_past_the_store_continues_the_stored_list_live(client, engine, oracle, users):
    user = users[0]
    stored = [movie for movie, _ in stored_list(engine, user)]
    assert len(stored) == 10  # the session settings' top_k
    answer = client.get(f"/users/{user}/recommendations?k=15").get_json()
    assert answer["source"] == "live" and answer["run_id"] == RUN
    assert ids(answer)[:10] == stored
    direct = [row["movie_id"] for row in oracle.recommend(user, 15)]
    assert ids(answer)[10:] == [movie for movie in direct if movie not in stored][:5]
    assert [item["rank"] for item in answer["items"]] == list(range(1, 16))
    assert all(item["title"] and item["cf_score"] is not None for item in answer["items"])
    # the same run gives the same pages, without repeats
    second = client.get(f"/users/{user}/recommendations?k=5&offset=10").get_json()
    assert second["source"] == "live" and ids(second) == ids(answer)[10:]


@pytest.fixture(scope="module")
def outside_user(spark, live_settings, engine, oracle, users) -> int:
    """The user with stored rows for whom a movie outside the run's candidates scores the most above
    their last stored row, scored by the batch's code on the run's scale (one batch job).

    Such a movie is what a live list must not put after the stored rows: if the live scorer
    considered it, row 11 would outscore row 10."""
    from pyspark.sql import functions as F

    from movierec.data.schemas import MOVIE, SCORE, USER
    from movierec.ranking import scoring
    from movierec.ranking.candidates import candidates

    s = live_settings
    pool = candidates(
        oracle.als,
        oracle.ratings,
        oracle.movie_feats,
        oracle.profiles,
        s.als_candidates,
        s.content_candidates,
        s.content_pool,
    )
    pairs = (
        oracle.ratings.select(USER)
        .distinct()
        .crossJoin(oracle.movie_feats.select(MOVIE))
        .join(oracle.ratings, [USER, MOVIE], "left_anti")
        .join(pool, [USER, MOVIE], "left_anti")
    )
    raw = scoring.raw_scores(pairs, oracle.als, oracle.forest, oracle.movie_feats, oracle.profiles)
    outside = scoring.blend(raw, oracle.scales, scoring.Blend.from_settings(s)).groupBy(USER).agg(F.max(SCORE))
    best = dict(outside.collect())
    with engine.connect() as conn:
        last = dict(
            conn.execute(
                sa.text(
                    "SELECT user_id, score FROM recommendations r WHERE run_id = :run AND rank = "
                    "(SELECT MAX(rank) FROM recommendations WHERE run_id = :run AND user_id = r.user_id)"
                ),
                {"run": RUN},
            ).all()
        )
    margin, user = max((best.get(u, 0.0) - score, u) for u, score in last.items())
    assert margin > 0, "no movie outside the candidates outscores a stored list's last row: the test shows nothing"
    return user


def test_live_and_batch_rank_the_same_top_movies(engine, oracle, users, outside_user):
    """The same hybrid function ranks a user's list in the batch and in the fallback, however deep
    the live list is asked for: it ranks the batch's own candidates, so its top rows are the stored ones."""
    from serving.models import MAX_K

    for user, k in ((users[0], 10), (outside_user, MAX_K)):
        stored = stored_list(engine, user)
        live = oracle.recommend(user, k)
        assert [row["movie_id"] for row in live[:10]] == [movie for movie, _ in stored], (user, k)
        assert [row["score"] for row in live[:10]] == pytest.approx([score for _, score in stored], abs=1e-6)


def test_a_page_across_the_stored_live_boundary_never_ranks_a_later_row_higher(client, engine, oracle, outside_user):
    """Ranks 1..10 from the store, 11.. live: scores never rise with rank and no movie comes twice,
    also when the page is filtered by genre (the live list is then asked for MAX_K rows)."""
    from serving.models import MAX_K

    user = outside_user
    stored = stored_list(engine, user)
    answer = client.get(f"/users/{user}/recommendations?k={MAX_K}").get_json()
    assert answer["source"] == "live"
    scores, movies = [item["score"] for item in answer["items"]], ids(answer)
    assert movies[:10] == [movie for movie, _ in stored] and len(movies) > len(stored)
    assert len(set(movies)) == len(movies)
    assert all(earlier >= later for earlier, later in zip(scores, scores[1:])), scores
    assert [item["rank"] for item in answer["items"]] == list(range(1, len(movies) + 1))
    # the rows past the store are the run's own list continued (the batch with a deeper top_k)
    assert movies == [row["movie_id"] for row in oracle.recommend(user, MAX_K)]
    genre = answer["items"][0]["genres"][0]
    filtered = client.get(f"/users/{user}/recommendations?k={MAX_K}&genre={genre}").get_json()
    assert filtered["source"] == "live"
    assert ids(filtered) == [item["movie_id"] for item in answer["items"] if genre in item["genres"]]


def test_a_user_without_stored_rows_is_scored_live(client, oracle, users):
    user = users[1]
    answer = client.get(f"/users/{user}/recommendations?k=5").get_json()
    assert answer["source"] == "live"
    direct = oracle.recommend(user, 5)
    assert ids(answer) == [row["movie_id"] for row in direct]
    assert [item["score"] for item in answer["items"]] == pytest.approx([row["score"] for row in direct])
    assert [item["cb_score"] for item in answer["items"]] == pytest.approx([row["cb_score"] for row in direct])


def test_live_pages_of_a_genre_do_not_repeat(client, users, oracle):
    user = users[1]
    genre = sorted(oracle.genres)[0]
    pages = [
        client.get(f"/users/{user}/recommendations?k=4&offset={offset}&genre={genre}").get_json()
        for offset in (0, 4, 8)
    ]
    seen = sum((ids(page) for page in pages), [])
    assert len(seen) == len(set(seen)) and len(seen) > 0
    assert all(genre in item["genres"] for page in pages for item in page["items"])
    ranks = [item["rank"] for page in pages for item in page["items"]]
    assert ranks == sorted(ranks)


def test_post_mixes_stored_pairs_with_live_ones(client, engine, oracle, users):
    user = users[0]
    stored = stored_list(engine, user)
    (first, first_score), (second, second_score) = stored[0], stored[1]
    other = next(m for m in sorted(oracle.movie_ids) if m not in {movie for movie, _ in stored})
    new_movie, genres = 9_999_999, sorted(oracle.genres)[:2]
    body = {"userId": user, "movieIds": [other, first, new_movie, second], "genres_lists": [None, None, genres, []]}
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.get_json()
    answer = {item["movieId"]: item for item in response.get_json()}
    assert answer[first] == {"movieId": first, "score": pytest.approx(first_score), "source": "precomputed"}
    assert answer[second]["source"] == "precomputed" and answer[second]["score"] == pytest.approx(second_score)
    direct = {row["movie_id"]: row["score"] for row in oracle.score(user, [other, new_movie], {new_movie: genres})}
    assert answer[other] == {"movieId": other, "score": pytest.approx(direct[other]), "source": "live"}
    assert answer[new_movie] == {"movieId": new_movie, "score": pytest.approx(direct[new_movie]), "source": "live"}
    scores = [item["score"] for item in response.get_json()]
    assert scores == sorted(scores, reverse=True)


def test_a_stored_pair_scored_live_matches_the_store(engine, oracle, users):
    user = users[0]
    stored = stored_list(engine, user)[:3]
    live = {row["movie_id"]: row["score"] for row in oracle.score(user, [movie for movie, _ in stored])}
    assert [live[movie] for movie, _ in stored] == pytest.approx([score for _, score in stored], abs=1e-6)


def test_warm_spark_loads_the_active_run_at_boot(live_settings, users):
    from serving import create_app

    app = create_app({"SETTINGS": live_settings.replace(warm_spark=True), "TESTING": True})
    scorer = app.extensions["movierec"].live()
    scorer.run_blocking(lambda: None).result(timeout=600)  # queued behind the warm-up
    assert scorer.started and scorer.loaded_run == RUN
    assert app.test_client().get(f"/users/{users[1]}/recommendations?k=3").get_json()["source"] == "live"


def test_a_timed_out_call_is_503_and_the_fallback_recovers(live_settings, users, oracle):
    """The first call times out while the models load; the load goes on and serves the next call."""
    from serving import create_app

    # long enough for the scorer's thread to take the call up (a call whose caller gave up while
    # it was still queued starts nothing: test_live_bounds), far shorter than loading a run's models
    app = create_app({"SETTINGS": live_settings.replace(live_timeout=0.3), "TESTING": True})
    client = app.test_client()
    response = client.get(f"/users/{users[1]}/recommendations?k=3")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "longer than 0.3 s" in response.get_json()["message"]
    scorer = app.extensions["movierec"].live()
    scorer.run_blocking(lambda: None).result(timeout=600)  # whatever the timed-out call started is done
    assert scorer.loaded_run == RUN  # the model load was not cancelled with it
    scorer.timeout = 0.001
    # a movie the run never saw takes a Spark job (its content features): more than 1 ms (a list
    # of known movies is scored on the driver in a few ms, and may finish inside the wait)
    new_movie = {"userId": users[1], "movieIds": [9_999_999], "genres_lists": [sorted(oracle.genres)[:1]]}
    response = client.post("/recommend", json=new_movie)
    assert response.status_code == 503, response.get_json()
    # the timed-out call's scoring keeps its place under the cap until it ends (serving/live.py)
    scorer.run_blocking(lambda: None).result(timeout=600)
    scorer.timeout = 600
    response = client.get(f"/users/{users[1]}/recommendations?k=3")
    assert response.status_code == 200 and response.get_json()["source"] == "live"


def test_the_fallback_follows_the_active_run(spark, client, live_settings, engine, users):
    """Publish a second run (the first one's outputs under a new id), then roll back."""
    from movierec.spark.paths import RunPaths, local_path
    from movierec.stages.pipeline import run_pipeline
    from movierec.store import runs as store

    scorer = client.application.extensions["movierec"].live()
    assert client.get(f"/users/{users[1]}/recommendations?k=12").get_json()["run_id"] == RUN
    assert scorer.loaded_run == RUN
    # the loaded models are kept out of the collector's passes (serving.live._freeze_heap) ...
    assert gc.get_freeze_count() > 0
    first_models = weakref.ref(scorer._models[1])
    source = local_path(RunPaths(live_settings.warehouse, RUN).root)
    target = local_path(RunPaths(live_settings.warehouse, "live-2").root)
    shutil.copytree(source, target)
    shutil.rmtree(target / "publish", ignore_errors=True)
    run_pipeline(spark, live_settings, "live-2", ["publish"])
    answer = client.get(f"/users/{users[1]}/recommendations?k=12").get_json()
    assert answer["run_id"] == "live-2" and answer["source"] == "live"
    assert scorer.loaded_run == "live-2"
    # ... yet a run's models, once replaced, are freed: frozen objects do not outlive their run
    gc.collect()
    assert first_models() is None
    store.rollback(engine, RUN)
    assert client.get(f"/users/{users[1]}/recommendations?k=12").get_json()["run_id"] == RUN
    assert scorer.loaded_run == RUN


def test_live_scores_use_the_runs_own_weights(live_settings, oracle, users):
    """A server started with other blend weights still scores the run as the run was made."""
    from serving import create_app

    app = create_app(
        {"SETTINGS": live_settings.replace(cf_weight=0.2, cb_weight=0.8, als_candidates=5), "TESTING": True}
    )
    answer = app.test_client().get(f"/users/{users[1]}/recommendations?k=5").get_json()
    direct = oracle.recommend(users[1], 5)  # loaded with the run's settings
    assert ids(answer) == [row["movie_id"] for row in direct]
    assert [item["score"] for item in answer["items"]] == pytest.approx([row["score"] for row in direct])


def test_a_rating_posted_changes_the_next_list_at_once(client, engine, oracle, users, live_settings):
    """POST a rating of the user's top movie: the next GET (any worker: it reads the store) has it
    gone and the rest ranked for the user's ratings with it; pages stay consistent; and a user
    whose new ratings are gone has the stored list again."""
    from movierec.store.runs import engine_for

    user = users[0]
    stored = [movie for movie, _ in stored_list(engine, user)]
    top = stored[0]
    posted = client.post(f"/users/{user}/ratings", json=[{"movie_id": top, "rating": 5.0}], headers=AUTH)
    assert posted.status_code == 201, posted.get_json()
    try:
        answer = client.get(f"/users/{user}/recommendations?k=10").get_json()
        assert answer["source"] == "live"
        assert top not in ids(answer) and len(ids(answer)) == 10
        (given,) = client.get(f"/users/{user}/ratings", headers=AUTH).get_json()["ratings"]
        direct = oracle.recommend(user, 15, feedback=[(top, given["rating"])])
        assert ids(answer) == [row["movie_id"] for row in direct[:10]]
        assert ids(answer) != stored[1:11]  # not the stored list minus the movie: re-ranked
        second = client.get(f"/users/{user}/recommendations?k=5&offset=10").get_json()
        assert ids(second) == [row["movie_id"] for row in direct[10:15]]
    finally:
        db = engine_for(live_settings.db_url)
        with db.begin() as conn:
            conn.execute(sa.text("DELETE FROM feedback WHERE user_id = :user"), {"user": user})
        db.dispose()
    assert client.get(f"/users/{user}/recommendations?k=10").get_json()["source"] == "precomputed"


def test_a_user_the_run_never_saw_leaves_cold_start_with_a_first_rating(client, engine, oracle, live_settings):
    """Popular movies before any rating; after one, a personal list scored live by the run's models."""
    from movierec.store.runs import engine_for

    with engine.connect() as conn:
        newcomer = conn.execute(sa.text("SELECT max(user_id) + 100 FROM run_users")).scalar()
    before = client.get(f"/users/{newcomer}/recommendations?k=10").get_json()
    assert before["source"] == "cold_start"
    liked = before["items"][0]["movie_id"]
    posted = client.post(f"/users/{newcomer}/ratings", json=[{"movie_id": liked, "rating": 4.5}], headers=AUTH)
    assert posted.status_code == 201, posted.get_json()
    try:
        answer = client.get(f"/users/{newcomer}/recommendations?k=10").get_json()
        assert answer["source"] == "live" and len(ids(answer)) == 10 and liked not in ids(answer)
        direct = oracle.recommend(newcomer, 10, feedback=[(liked, 4.5)])
        assert ids(answer) == [row["movie_id"] for row in direct]
        assert all(0 < item["score"] < 1 for item in answer["items"])  # the hybrid's chances, not counts
        assert ids(answer) != [item["movie_id"] for item in before["items"][1:11]]  # not popularity
    finally:
        db = engine_for(live_settings.db_url)
        with db.begin() as conn:
            conn.execute(sa.text("DELETE FROM feedback WHERE user_id = :user"), {"user": newcomer})
        db.dispose()


def test_ratings_posted_while_a_pipeline_runs_are_counted_once_after_its_publish(
    spark, live_settings, engine, users, tmp_path
):
    """The next run learns from the feedback up to its ingest's cut-off, the API applies the rest
    live: a rating given before the run is in the run's model and no longer live, one given while
    the run was under way stays live, and a user the old run never saw gets a stored list."""
    import hashlib
    import sqlite3

    from movierec.spark.paths import RunPaths
    from movierec.spark.warehouse import read_table
    from movierec.stages.pipeline import run_pipeline
    from movierec.store import runs as store
    from movierec.store.feedback import add_feedback, cutoff
    from serving import create_app

    copied = tmp_path / "store.db"  # the module's store as it is, run live-1 active: this test moves it on
    with sqlite3.connect(sa.make_url(live_settings.db_url).database) as source, sqlite3.connect(copied) as target:
        source.backup(target)
    run2 = live_settings.replace(warehouse=str(tmp_path / "warehouse"), db_url=f"sqlite:///{copied}")
    db = store.engine_for(run2.db_url)
    user = users[0]
    before_a, before_b = (movie for movie, _ in stored_list(db, user)[:2])
    with db.connect() as conn:
        newcomer = conn.execute(sa.text("SELECT max(user_id) + 1 FROM run_users")).scalar()
        first_count = conn.execute(
            sa.text("SELECT ratings_count FROM run_users WHERE run_id = :r AND user_id = :u"), {"r": RUN, "u": user}
        ).scalar()
    # received after live-1's cut-off (so live-1 does not hold them) and before the next run's
    with db.connect() as conn:
        first_until = conn.execute(
            sa.text("SELECT received_until FROM run_feedback WHERE run_id = :r"), {"r": RUN}
        ).scalar()
    earlier = (datetime.fromisoformat(first_until) + timedelta(milliseconds=1)).isoformat(timespec="microseconds")
    time.sleep(max(0.0, (datetime.fromisoformat(earlier) - datetime.fromisoformat(cutoff())).total_seconds() + 1))
    add_feedback(db, user, [(before_a, 5.0, 1_600_000_000)], received_at=earlier)
    add_feedback(db, newcomer, [(before_a, 4.0, 1_600_000_000), (before_b, 4.5, 1_600_000_001)], received_at=earlier)

    run_pipeline(spark, run2, "live-2", ["ingest"])
    app = create_app({"SETTINGS": run2.replace(api_keys=hashlib.sha256(KEY.encode()).hexdigest()), "TESTING": True})
    client = app.test_client()
    posted = client.post(f"/users/{user}/ratings", json=[{"movie_id": before_b, "rating": 1.0}], headers=AUTH)
    assert posted.status_code == 201  # while the run is under way: after its cut-off
    run_pipeline(spark, run2, "live-2", [s for s in STAGES if s != "ingest"])

    ratings = read_table(spark, RunPaths(run2.warehouse, "live-2").ratings)
    learned = {
        (r["user_id"], r["movie_id"]): r["rating"] for r in ratings.where(f"user_id in ({user}, {newcomer})").collect()
    }
    assert learned[(user, before_a)] == 5.0 and (user, before_b) not in learned
    assert learned[(newcomer, before_a)] == 4.0 and learned[(newcomer, before_b)] == 4.5
    with db.connect() as conn:
        counts = dict(
            conn.execute(
                sa.text("SELECT user_id, ratings_count FROM run_users WHERE run_id = 'live-2' AND user_id IN (:u, :n)"),
                {"u": user, "n": newcomer},
            ).all()
        )
    assert counts == {user: first_count + 1, newcomer: 2}

    # live: only the rating given while the run was under way, for the user; nothing for the newcomer
    listed = client.get(f"/users/{user}/ratings", headers=AUTH).get_json()["ratings"]
    assert [(r["movie_id"], r["rating"]) for r in listed] == [(before_b, 1.0)]
    assert client.get(f"/users/{newcomer}/ratings", headers=AUTH).get_json()["ratings"] == []
    answer = client.get(f"/users/{user}/recommendations?k=10").get_json()
    assert answer["run_id"] == "live-2" and answer["source"] == "live"
    assert not {before_a, before_b} & set(ids(answer)) and len(ids(answer)) == 10
    answer = client.get(f"/users/{newcomer}/recommendations?k=10").get_json()
    assert answer["source"] == "precomputed" and not {before_a, before_b} & set(ids(answer))

    # back on the run that learned none of it, all of it is live again
    store.rollback(db, RUN)
    listed = client.get(f"/users/{user}/ratings", headers=AUTH).get_json()["ratings"]
    assert sorted(r["movie_id"] for r in listed) == sorted([before_a, before_b])
    db.dispose()
