"""The JSON API: recommendations, the seed's POST /recommend, movies, the active run.

Each view's inputs and answers are declared with `@operation` (serving/openapi.py) over the
models of serving/models.py: the wrapper validates the request with them before the view
runs, and /openapi.json is made from the same declarations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify

from movierec.config import MODEL_SETTINGS, PROVENANCE
from serving import models, store
from serving.errors import ApiError, bad_request, not_found, unavailable
from serving.models import MAX_K
from serving.openapi import document_response, operation

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

NO_RUN_RETRY_AFTER = 60
BAD = "bad input: the message says which field and what was expected"
NO_RUN = "no run has been published yet"


# ---------------------------------------------------------------- helpers


def services():
    return current_app.extensions["movierec"]


def no_active_run() -> ApiError:
    return unavailable("no run has been published yet: the store has no active run", NO_RUN_RETRY_AFTER)


def require_active_run(conn) -> str:
    run_id = store.get_active_run_id(conn)
    if run_id is None:
        raise no_active_run()
    return run_id


def resolve_genre(conn, run_id: str, text: str) -> str:
    """The catalogue's spelling of a genre name (case-insensitive), or a 400 naming the known ones."""
    known = services().genres(conn, run_id)
    name = known.get(text.strip().casefold())
    if name is None:
        raise bad_request(f"unknown genre {text!r}; known genres: {', '.join(sorted(known.values()))}")
    return name


def live_call(kind: str, call: Callable[[Any], Any]):
    """Run `call(scorer)` on the live fallback, count it, and turn its failures into answers.

    The live time-out counts from here: the client waits at most `live_timeout` seconds for
    everything the call does, its wait for the scorer's thread included; past
    `live_max_pending` calls in flight in this worker it is answered 503 at once."""
    from serving import live  # imported only when a request needs Spark

    started, arrived = time.perf_counter(), time.monotonic()
    outcome = "ok"
    try:
        scorer = services().live()
        with scorer.deadline(arrived + scorer.timeout):  # the scorer's live_timeout, from the arrival
            return call(scorer)
    except live.LiveBusy as err:
        outcome = "busy"
        raise unavailable(str(err), err.retry_after) from None
    except live.LiveTimeout as err:
        outcome = "timeout"
        raise unavailable(str(err), err.retry_after) from None
    except live.LiveUnavailable as err:
        outcome = "unavailable"
        raise unavailable(str(err), err.retry_after) from None
    except live.LiveBadInput as err:
        outcome = "bad_input"
        raise bad_request(str(err)) from None
    finally:
        services().metrics.observe_live(kind, outcome, time.perf_counter() - started)


# ---------------------------------------------------------------- users


@bp.get("/users/<user_id>/recommendations")
@operation(
    "userRecommendations",
    "A user's recommendations from the active run",
    {
        200: (models.UserRecommendations, "the page of the user's list"),
        400: (None, BAD + "; also an unknown genre"),
        503: (None, "no active run, the store unreachable, or live scoring needed and busy, unavailable or timed out"),
    },
    path=models.UserPath,
    query=models.RecommendationsQuery,
)
def user_recommendations(path: models.UserPath, query: models.RecommendationsQuery):
    uid, k, offset, genre_text = path.user_id, query.k, query.offset, query.genre
    engine = services().engine
    genre = None
    if genre_text is not None:
        with engine.connect() as conn:
            genre = resolve_genre(conn, require_active_run(conn), genre_text)
    # the hot path: a page within the stored list, answered before in this activation of the
    # run (one small statement to learn which activation serves and whether the user has rated
    # anything since), else read in one statement
    pages, run_key, page, rated_since = services().pages, None, (uid, k, offset, genre), False
    if pages.size > 0:
        run_key, rated_since = store.get_active_run_key_of_user(engine, uid)
        body = pages.get(run_key, page) if not rated_since else None
        if body is not None:
            return current_app.response_class(body, mimetype="application/json")
    if not rated_since:  # (with ratings since the run the list is a live one: no stored page to read)
        run_id, items, rated_since = store.get_stored_page(engine, uid, k, offset, genre)
        if run_id is not None and len(items) == k and not rated_since:
            answer = _user_answer(uid, run_id, "precomputed", items)
            if run_key is not None and run_key[0] == run_id:
                pages.put(run_key, page, answer.get_data())
            return answer
    run_id, known, feedback = store.get_live_inputs(engine, uid)
    if run_id is None:
        raise no_active_run()
    stored: list[dict] = []
    if not feedback:
        with engine.connect() as conn:
            stored = store.get_stored_list(conn, run_id, uid)
            if not known and not stored:
                return _user_answer(uid, run_id, "cold_start", _popular_unrated(conn, run_id, k, offset, genre, set()))
    # the page reaches past what the store holds, or the user rated movies since the run:
    # score live (no store connection is held while Spark works).  With new ratings the whole
    # list is the live one: its movies and order depend on them; a user the run never saw gets
    # a personal list from their first rating on
    depth = MAX_K if genre is not None else offset + k
    if feedback:
        try:
            live_rows = live_call("recommend", lambda s: s.recommend(run_id, uid, depth, feedback))
        except ApiError as err:
            if known or err.status != 503:
                raise
            # a user the run never saw still has the answer they had before rating: the popular
            # list without what they rated, rather than a 503 while live scoring cannot answer
            log.warning("live scoring could not answer for new user %s (%s): popular list", uid, err.message)
            live_rows = []
        if not live_rows and not known:  # none of the movies rated is one the run's models know, or no live answer
            with engine.connect() as conn:
                items = _popular_unrated(conn, run_id, k, offset, genre, {movie for movie, _ in feedback})
            return _user_answer(uid, run_id, "cold_start", items)
        ranked = [{**row, "rank": position} for position, row in enumerate(live_rows[:MAX_K], start=1)]
    else:
        ranked = _continue_live(stored, live_call("recommend", lambda s: s.recommend(run_id, uid, depth)))
    with engine.connect() as conn:
        catalogue = store.get_movies(conn, [row["movie_id"] for row in ranked])
    if genre is not None:
        ranked = [row for row in ranked if genre in catalogue.get(row["movie_id"], {}).get("genres", ())]
    items = [_with_movie(row, catalogue) for row in ranked[offset : offset + k]]
    return _user_answer(uid, run_id, "live", items)


def _popular_unrated(
    conn, run_id: str, k: int, offset: int, genre: str | None, rated: set[int]
) -> list[dict[str, Any]]:
    """A cold start's page of the popular list, without the movies the user has rated since
    the run (ranks numbered over what is left, so pages do not overlap)."""
    if not rated:
        return [_cold_start_item(row) for row in store.get_popular(conn, run_id, k, offset, genre)]
    rows = store.get_popular(conn, run_id, offset + k + len(rated), 0, genre)
    left = [row for row in rows if row["movie_id"] not in rated]
    return [_cold_start_item({**row, "rank": rank}) for rank, row in enumerate(left, start=1)][offset : offset + k]


def _continue_live(stored: list[dict], live_rows: list[dict]) -> list[dict]:
    """The stored list, then the live rows that rank below its last row, ranked 1..n (n <= MAX_K).

    Pages of one run therefore never repeat a movie, a page within the stored part is the same
    whether it came from the store or from here, and scores never rise with rank across the
    boundary.  The live scorer ranks the run's own candidates by the batch's code
    (movierec.ranking.online.RunModels.recommend), so its list begins with the stored rows and
    nothing is left out; a live row that would rank above the last stored one by the batch's
    order (score, then movie id) but is not stored means the live models disagree with the
    store, and it is left out (and logged) rather than shown below rows it outscores."""
    seen = {row["movie_id"] for row in stored}
    fresh = [row for row in live_rows if row["movie_id"] not in seen]
    if stored:
        last = stored[-1]
        below = [row for row in fresh if (-row["score"], row["movie_id"]) > (-last["score"], last["movie_id"])]
        if len(below) < len(fresh):
            log.warning(
                "live list disagrees with the stored one: %d unstored movies outscore stored rank %d, left out",
                len(fresh) - len(below),
                last["rank"],
            )
        fresh = below
    merged = list(stored) + fresh
    return [{**row, "rank": position} for position, row in enumerate(merged[:MAX_K], start=1)]


def _cold_start_item(row: dict) -> dict[str, Any]:
    """A popular_movies row as a list item: its rating count is `popularity`, not a `score`.

    `score` means the hybrid's calibrated score in every list (serving/models.py SCORE); a count
    of ratings in the same field drew as a full bar beside 0.08 on the page.  A user without
    history has no such score, so it is null."""
    return {**row, "score": None, "popularity": _count(row["score"])}


def _count(value: float | None) -> int | None:
    """popular_movies.score holds the movie's rating count (as a double): the count as a JSON integer."""
    return None if value is None else int(round(value))


def _with_movie(row: dict, catalogue: dict[int, dict]) -> dict[str, Any]:
    movie = catalogue.get(row["movie_id"], {})
    return {
        "rank": row["rank"],
        "movie_id": row["movie_id"],
        "title": movie.get("title"),
        "year": movie.get("year"),
        "genres": movie.get("genres", []),
        "score": row["score"],
        "cf_score": row.get("cf_score"),
        "cb_score": row.get("cb_score"),
    }


def _user_answer(user_id: int, run_id: str, source: str, items: list[dict]):
    return jsonify(user_id=user_id, run_id=run_id, source=source, items=items)


# ---------------------------------------------------------------- the seed's call


@bp.post("/recommend")
@operation(
    "recommend",
    "Score given movies for a user (the seed's call)",
    {
        200: (models.RecommendResult, "the movies, best first"),
        400: (None, BAD + "; also an unknown genre, or a movie neither in the catalogue nor given genres"),
        413: (None, "the body is too large"),
        503: (None, "no active run, the store unreachable, or live scoring busy, unavailable or timed out"),
    },
    body=models.RecommendRequest,
    description="Pairs in the active run's recommendations come from the store; the rest are scored "
    "live by the batch's hybrid function; a movie the models never saw is scored from its "
    "genres by the content model alone.",
)
def recommend(body: models.RecommendRequest):
    user_id, movie_ids, given_genres = body.userId, body.movieIds, body.genres_given()
    with services().engine.connect() as conn:
        run_id = require_active_run(conn)
        if given_genres:
            known = services().genres(conn, run_id)
            given_genres = {m: _known_genres(known, names, m) for m, names in given_genres.items()}
        stored = store.get_stored_pairs(conn, run_id, user_id, movie_ids)
        if not stored and not store.is_run_user(conn, run_id, user_id):
            # no history: nothing personal to score (score null), so the run's popularity ranks the
            # movies; a movie outside the run's popular list has no known count (null), and comes last
            popular = store.get_popular_scores(conn, run_id, movie_ids)
            counts = {m: _count(popular.get(m)) for m in movie_ids}
            order = sorted(movie_ids, key=lambda m: (counts[m] is None, -(counts[m] or 0), m))
            cold = [{"movieId": m, "score": None, "popularity": counts[m], "source": "cold_start"} for m in order]
            return jsonify(cold)
        missing = [m for m in movie_ids if m not in stored]
        catalogue = store.get_movies(conn, missing) if missing else {}
    unknown = [m for m in missing if m not in catalogue and m not in given_genres]
    if unknown:
        raise bad_request(
            f"movie {unknown[0]} is not in the catalogue: give its genres in genres_lists "
            f"so the content model can score it"
            + (f" ({len(unknown)} such movies: {unknown[:10]})" if len(unknown) > 1 else "")
        )
    results: list[dict[str, Any]] = [
        {"movieId": m, "score": row["score"], "source": "precomputed"} for m, row in stored.items()
    ]
    if missing:
        # a movie without genres from the client is described by the catalogue
        genres = {m: given_genres.get(m) or catalogue[m]["genres"] for m in missing}
        scored = live_call("score", lambda s: s.score(run_id, user_id, missing, genres))
        results += [{"movieId": row["movie_id"], "score": row["score"], "source": "live"} for row in scored]
    results.sort(key=lambda item: (-float(item["score"]), int(item["movieId"])))
    return jsonify(results)


def _known_genres(known: dict[str, str], names: list[str], movie_id: int) -> list[str]:
    resolved = []
    for name in names:
        canonical = known.get(name.strip().casefold())
        if canonical is None:
            raise bad_request(
                f"unknown genre {name!r} for movie {movie_id}; known genres: {', '.join(sorted(known.values()))}"
            )
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved


# ---------------------------------------------------------------- movies and runs


@bp.get("/movies/<movie_id>")
@operation(
    "movie",
    "A movie from the catalogue",
    {200: (models.Movie, "the movie"), 400: (None, BAD), 404: (None, "not in the catalogue")},
    path=models.MoviePath,
)
def movie(path: models.MoviePath):
    mid = path.movie_id
    with services().engine.connect() as conn:
        found = store.get_movie(conn, mid)
    if found is None:
        raise not_found(f"movie {mid} is not in the catalogue")
    return jsonify(found)


@bp.get("/movies/<movie_id>/similar")
@operation(
    "similarMovies",
    "The nearest movies by ALS item factors, from the active run",
    {
        200: (models.SimilarMovies, "the similar movies, best first"),
        400: (None, BAD),
        404: (None, "not in the catalogue"),
        503: (None, NO_RUN),
    },
    path=models.MoviePath,
    query=models.SimilarQuery,
)
def similar(path: models.MoviePath, query: models.SimilarQuery):
    mid, k = path.movie_id, query.k
    with services().engine.connect() as conn:
        run_id = require_active_run(conn)
        found = store.get_movie(conn, mid)
        if found is None:
            raise not_found(f"movie {mid} is not in the catalogue")
        items = store.get_similar(conn, run_id, mid, k)
    return jsonify(movie_id=mid, title=found["title"], run_id=run_id, items=items)


@bp.get("/runs/active")
@operation(
    "activeRun",
    "The run being served, its parameters and metrics",
    {200: (models.ActiveRun, "the active run"), 503: (None, NO_RUN)},
)
def active_run():
    with services().engine.connect() as conn:
        active = store.get_active_run(conn)
        if active is None:
            raise no_active_run()
        run = store.get_run(conn, active["run_id"]) or {"run_id": active["run_id"], "params": {}, "metrics": {}}
    # the model's settings and provenance only: a run published by an older version may hold deployment settings
    # (the store's URL with its password among them), and those are nobody's business here
    public = {*MODEL_SETTINGS, *PROVENANCE}
    params = {name: value for name, value in (run.get("params") or {}).items() if name in public}
    return jsonify({**run, "params": params, "activated_at": active["activated_at"]})


@bp.get("/openapi.json")
@operation("openapi", "This document", {200: (None, "the OpenAPI document")})
def openapi():
    return document_response()
