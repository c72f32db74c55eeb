"""Ratings posted between runs: POST and GET /users/<id>/ratings, both keyed (serving.auth).

POST stores a list of ratings by ingest's rules (serving.models.RatingIn for the values,
movierec.store.feedback for the catalogue and the store) in one transaction and answers
201 only after the commit; a bad row makes the call a 400 naming the row, and nothing is
stored.  A rating the store already holds (same user, movie and timestamp) is not stored
again, so a client may repeat a call whose answer it lost.

GET lists what the store holds for the user.  It needs a key too: a user's ratings are
theirs, not the public's (the recommendations route, public, shows only the movies).
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, url_for

from movierec.store import feedback as store_feedback
from serving import models
from serving.auth import require_key
from serving.errors import bad_request
from serving.openapi import operation

bp = Blueprint("feedback", __name__)

BAD = "bad input: the message names the row (0-based) and what was expected; nothing was stored"


def _engine():
    return current_app.extensions["movierec"].engine


@bp.post("/users/<user_id>/ratings")
@require_key()
@operation(
    "addRatings",
    "Store a user's new ratings (all of them or none)",
    {
        201: (models.RatingsStored, "every rating is stored (committed), or was already"),
        400: (None, BAD + "; also a movie not in the catalogue"),
        413: (None, "the body is too large"),
        503: (None, "the store is unreachable"),
    },
    path=models.RatingsUserPath,
    body=models.RatingsRequest,
    description=f"At most {models.MAX_FEEDBACK_ROWS} ratings a call, each checked by ingest's rules for "
    "ratings.csv; a rating without a timestamp is given the server's time. A rating the store already holds "
    "(same user, movie and timestamp) is counted in already_stored and kept as it was.",
)
def add_ratings(path: models.RatingsUserPath, body: models.RatingsRequest):
    now = int(time.time())
    rows = [(row.movie_id, row.rating, now if row.timestamp is None else row.timestamp) for row in body.root]
    try:
        added = store_feedback.add_feedback(_engine(), path.user_id, rows)
    except store_feedback.BadFeedback as err:
        raise bad_request(str(err)) from None
    response = jsonify(user_id=path.user_id, stored=added.stored, already_stored=added.already_stored)
    response.status_code = 201
    response.headers["Location"] = url_for("feedback.user_ratings", user_id=path.user_id)
    return response


@bp.get("/users/<user_id>/ratings")
@require_key()
@operation(
    "userRatings",
    "The ratings posted for a user (what the store holds beyond ratings.csv)",
    {
        200: (models.UserRatings, "the user's posted ratings, oldest first"),
        400: (None, "the user id is not an integer from 1 to MAX_ID"),
        503: (None, "the store is unreachable"),
    },
    path=models.RatingsUserPath,
)
def user_ratings(path: models.RatingsUserPath):
    with _engine().connect() as conn:
        ratings = store_feedback.list_feedback(conn, path.user_id)
    return jsonify(user_id=path.user_id, ratings=ratings)
