"""The JSON API: recommendations, the seed's POST /recommend, movies, the active run."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from serving import store
from serving.errors import ApiError, bad_request, int_arg, not_found, parse_id, unavailable

bp = Blueprint("api", __name__)

MAX_K = 500            # deepest list served: the store holds the run's top_k, deeper is scored live
MAX_SIMILAR_K = 100
MAX_BODY_MOVIES = 500  # movies in one POST /recommend
NO_RUN_RETRY_AFTER = 60


# ---------------------------------------------------------------- helpers

def services():
    return current_app.extensions["movierec"]


def require_active_run(conn) -> str:
    run_id = store.get_active_run_id(conn)
    if run_id is None:
        raise unavailable("no run has been published yet: the store has no active run", NO_RUN_RETRY_AFTER)
    return run_id


def resolve_genre(conn, run_id: str, text: str) -> str:
    """The catalogue's spelling of a genre name (case-insensitive), or a 400 naming the known ones."""
    known = services().genres(conn, run_id)
    name = known.get(text.strip().casefold())
    if name is None:
        raise bad_request(f"unknown genre {text!r}; known genres: {', '.join(sorted(known.values()))}")
    return name


def live_call(kind: str, call: Callable[[Any], Any]):
    """Run `call(scorer)` on the live fallback, count it, and turn its failures into answers."""
    from serving import live   # imported only when a request needs Spark

    scorer = services().live()
    started = time.perf_counter()
    outcome = "ok"
    try:
        return call(scorer)
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
def user_recommendations(user_id: str):
    uid = parse_id(user_id, "user id")
    k = int_arg(request.args, "k", 10, 1, MAX_K)
    offset = int_arg(request.args, "offset", 0, 0, MAX_K - 1)
    genre_text = request.args.get("genre")
    engine = services().engine
    genre = None
    if genre_text is not None:
        with engine.connect() as conn:
            genre = resolve_genre(conn, require_active_run(conn), genre_text)
    # the hot path: a page within the stored list, answered before in this activation of the
    # run (one small statement to learn which activation serves), else read in one statement
    pages, run_key, page = services().pages, None, (uid, k, offset, genre)
    if pages.size > 0:
        run_key = store.get_active_run_key(engine)
        body = pages.get(run_key, page)
        if body is not None:
            return current_app.response_class(body, mimetype="application/json")
    run_id, items = store.get_stored_page(engine, uid, k, offset, genre)
    if run_id is not None and len(items) == k:
        answer = _user_answer(uid, run_id, "precomputed", items)
        if run_key is not None and run_key[0] == run_id:
            pages.put(run_key, page, answer.get_data())
        return answer
    with engine.connect() as conn:
        run_id = require_active_run(conn)
        stored = store.get_stored_list(conn, run_id, uid)
        if not stored and not store.is_run_user(conn, run_id, uid):
            items = store.get_popular(conn, run_id, k, offset, genre)
            return _user_answer(uid, run_id, "cold_start", items)
    # the page reaches past what the store holds: continue the stored list with live scores
    # (no store connection is held while Spark works)
    depth = MAX_K if genre is not None else offset + k
    ranked = _continue_live(stored, live_call("recommend", lambda s: s.recommend(run_id, uid, depth)))
    with engine.connect() as conn:
        catalogue = store.get_movies(conn, [row["movie_id"] for row in ranked])
    if genre is not None:
        ranked = [row for row in ranked if genre in catalogue.get(row["movie_id"], {}).get("genres", ())]
    items = [_with_movie(row, catalogue) for row in ranked[offset:offset + k]]
    return _user_answer(uid, run_id, "live", items)


def _continue_live(stored: list[dict], live_rows: list[dict]) -> list[dict]:
    """The stored list, then the live list's movies not already in it, ranked 1..n (n <= MAX_K).

    Pages of one run therefore never repeat a movie, and a page within the stored part is
    the same whether it came from the store or from here."""
    seen = {row["movie_id"] for row in stored}
    merged = list(stored) + [row for row in live_rows if row["movie_id"] not in seen]
    return [{**row, "rank": position} for position, row in enumerate(merged[:MAX_K], start=1)]


def _with_movie(row: dict, catalogue: dict[int, dict]) -> dict[str, Any]:
    movie = catalogue.get(row["movie_id"], {})
    return {"rank": row["rank"], "movie_id": row["movie_id"], "title": movie.get("title"),
            "year": movie.get("year"), "genres": movie.get("genres", []), "score": row["score"],
            "cf_score": row.get("cf_score"), "cb_score": row.get("cb_score")}


def _user_answer(user_id: int, run_id: str, source: str, items: list[dict]):
    return jsonify(user_id=user_id, run_id=run_id, source=source, items=items)


# ---------------------------------------------------------------- the seed's call

@bp.post("/recommend")
def recommend():
    body = _json_body()
    user_id, movie_ids, given_genres = _parse_recommend_body(body)
    with services().engine.connect() as conn:
        run_id = require_active_run(conn)
        if given_genres:
            known = services().genres(conn, run_id)
            given_genres = {m: _known_genres(known, names, m) for m, names in given_genres.items()}
        stored = store.get_stored_pairs(conn, run_id, user_id, movie_ids)
        if not stored and not store.is_run_user(conn, run_id, user_id):
            # no history: nothing personal to score, so the run's popularity ranks the movies
            popular = store.get_popular_scores(conn, run_id, movie_ids)
            results = [{"movieId": m, "score": popular.get(m, 0.0), "source": "cold_start"} for m in movie_ids]
            return jsonify(sorted(results, key=lambda item: (-item["score"], item["movieId"])))
        missing = [m for m in movie_ids if m not in stored]
        catalogue = store.get_movies(conn, missing) if missing else {}
    unknown = [m for m in missing if m not in catalogue and m not in given_genres]
    if unknown:
        raise bad_request(f"movie {unknown[0]} is not in the catalogue: give its genres in genres_lists "
                          f"so the content model can score it"
                          + (f" ({len(unknown)} such movies: {unknown[:10]})" if len(unknown) > 1 else ""))
    results = [{"movieId": m, "score": row["score"], "source": "precomputed"} for m, row in stored.items()]
    if missing:
        # a movie without genres from the client is described by the catalogue
        genres = {m: given_genres.get(m) or catalogue[m]["genres"] for m in missing}
        scored = live_call("score", lambda s: s.score(run_id, user_id, missing, genres))
        results += [{"movieId": row["movie_id"], "score": row["score"], "source": "live"} for row in scored]
    results.sort(key=lambda item: (-item["score"], item["movieId"]))
    return jsonify(results)


def _json_body() -> Any:
    """The body as JSON, whatever its Content-Type (the seed's clients did not always set it)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    too_large = ApiError(413, f"the body is larger than {limit} bytes; at most {limit} are accepted")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) >= limit:   # a body without Content-Length (chunked) is cut off at the limit
        raise too_large
    try:
        return json.loads(raw)
    except ValueError:   # includes bodies that are not UTF-8
        raise bad_request("the body must be a JSON object like "
                          '{"userId": 1, "movieIds": [1, 3], "genres_lists": [["Comedy"], ["Drama"]]}') from None


def _parse_recommend_body(body: Any) -> tuple[int, list[int], dict[int, list[str]]]:
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a JSON object, got a JSON {type(body).__name__}")
    extra = set(body) - {"userId", "movieIds", "genres_lists"}
    if extra:
        raise bad_request(f"unknown field(s) {sorted(extra)}; expected userId, movieIds, genres_lists")
    if "userId" not in body:
        raise bad_request("userId is missing")
    user_id = parse_id(body["userId"], "userId")
    movie_ids_raw = body.get("movieIds")
    if not isinstance(movie_ids_raw, list) or not movie_ids_raw:
        raise bad_request("movieIds must be a non-empty list of movie ids")
    if len(movie_ids_raw) > MAX_BODY_MOVIES:
        raise bad_request(f"movieIds has {len(movie_ids_raw)} entries; at most {MAX_BODY_MOVIES} per call")
    movie_ids = [parse_id(value, f"movieIds[{i}]") for i, value in enumerate(movie_ids_raw)]
    if len(set(movie_ids)) != len(movie_ids):
        repeated = sorted({m for m in movie_ids if movie_ids.count(m) > 1})
        raise bad_request(f"movieIds repeats {repeated}: each movie once")
    genres: dict[int, list[str]] = {}
    lists = body.get("genres_lists")
    if lists is not None:
        if not isinstance(lists, list):
            raise bad_request("genres_lists must be a list with one list of genre names per movie id")
        if len(lists) != len(movie_ids):
            raise bad_request(f"genres_lists has {len(lists)} entries but movieIds has {len(movie_ids)}: "
                              f"give one list per movie (null or [] where none)")
        for i, (movie_id, names) in enumerate(zip(movie_ids, lists)):
            if names is None or names == []:
                continue
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise bad_request(f"genres_lists[{i}] must be a list of genre names, got {names!r}")
            genres[movie_id] = names
    return user_id, movie_ids, genres


def _known_genres(known: dict[str, str], names: list[str], movie_id: int) -> list[str]:
    resolved = []
    for name in names:
        canonical = known.get(name.strip().casefold())
        if canonical is None:
            raise bad_request(f"unknown genre {name!r} for movie {movie_id}; "
                              f"known genres: {', '.join(sorted(known.values()))}")
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved


# ---------------------------------------------------------------- movies and runs

@bp.get("/movies/<movie_id>")
def movie(movie_id: str):
    mid = parse_id(movie_id, "movie id")
    with services().engine.connect() as conn:
        found = store.get_movie(conn, mid)
    if found is None:
        raise not_found(f"movie {mid} is not in the catalogue")
    return jsonify(found)


@bp.get("/movies/<movie_id>/similar")
def similar(movie_id: str):
    mid = parse_id(movie_id, "movie id")
    k = int_arg(request.args, "k", 10, 1, MAX_SIMILAR_K)
    with services().engine.connect() as conn:
        run_id = require_active_run(conn)
        found = store.get_movie(conn, mid)
        if found is None:
            raise not_found(f"movie {mid} is not in the catalogue")
        items = store.get_similar(conn, run_id, mid, k)
    return jsonify(movie_id=mid, title=found["title"], run_id=run_id, items=items)


@bp.get("/runs/active")
def active_run():
    with services().engine.connect() as conn:
        active = store.get_active_run(conn)
        if active is None:
            raise unavailable("no run has been published yet: the store has no active run", NO_RUN_RETRY_AFTER)
        run = store.get_run(conn, active["run_id"]) or {"run_id": active["run_id"], "params": {}, "metrics": {}}
    return jsonify({**run, "activated_at": active["activated_at"]})


@bp.get("/openapi.json")
def openapi():
    from serving.openapi import document

    return jsonify(document())
