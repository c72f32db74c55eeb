"""The OpenAPI 3.1 document of the JSON routes, served at /openapi.json.

Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect), so the tests check real answers
against them with jsonschema: the document cannot drift from what the API says.
"""
from __future__ import annotations

from typing import Any

from serving.api import MAX_BODY_MOVIES, MAX_K, MAX_SIMILAR_K
from serving.errors import MAX_ID

REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json(schema: dict, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    answer = _json(_ref("Error"), description)
    if retry_after:
        answer["headers"] = {"Retry-After": {"description": "seconds to wait before trying again",
                                             "schema": {"type": "integer", "minimum": 1}}}
    return answer


NULLABLE_NUMBER = {"type": ["number", "null"]}
ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "error", "message"],
        "properties": {
            "status": {"type": "integer", "description": "the HTTP status again"},
            "error": {"type": "string", "description": "the status's name"},
            "message": {"type": "string", "description": "what is wrong, for a person"},
        },
    },
    "Movie": {
        "type": "object",
        "required": ["movie_id", "title", "year", "genres"],
        "properties": {
            "movie_id": ID,
            "title": {"type": ["string", "null"]},
            "year": {"type": ["integer", "null"], "description": "release year parsed from the title"},
            "genres": {"type": "array", "items": {"type": "string"}},
        },
    },
    "RecommendationItem": {
        "type": "object",
        "required": ["rank", "movie_id", "title", "year", "genres", "score", "cf_score", "cb_score"],
        "properties": {
            "rank": {"type": "integer", "minimum": 1, "description": "position in the user's whole list (before a genre filter)"},
            "movie_id": ID,
            "title": {"type": ["string", "null"]},
            "year": {"type": ["integer", "null"]},
            "genres": {"type": "array", "items": {"type": "string"}},
            "score": {"type": "number", "description": "cf_weight × cf_score + cb_weight × cb_score; popularity for cold starts"},
            "cf_score": {**NULLABLE_NUMBER, "description": "collaborative (ALS) component, 0..1; null for cold starts"},
            "cb_score": {**NULLABLE_NUMBER, "description": "content (random forest) component, 0..1; null for cold starts"},
        },
    },
    "UserRecommendations": {
        "type": "object",
        "required": ["user_id", "run_id", "source", "items"],
        "properties": {
            "user_id": ID,
            "run_id": {"type": "string"},
            "source": {"type": "string", "enum": ["precomputed", "live", "cold_start"],
                       "description": "precomputed: the store; live: scored now by Spark (no stored rows, "
                                      "or the page reaches past them); cold_start: a user the run has no "
                                      "ratings of, answered with the run's most popular movies"},
            "items": {"type": "array", "items": _ref("RecommendationItem")},
        },
    },
    "RecommendRequest": {
        "type": "object",
        "required": ["userId", "movieIds"],
        "additionalProperties": False,
        "properties": {
            "userId": ID,
            "movieIds": {"type": "array", "items": ID, "minItems": 1, "maxItems": MAX_BODY_MOVIES, "uniqueItems": True},
            "genres_lists": {
                "type": "array",
                "description": "one entry per movie id: its genres (needed only for movies not in the catalogue), or null / []",
                "items": {"type": ["array", "null"], "items": {"type": "string"}},
            },
        },
        "example": {"userId": 1, "movieIds": [1, 3, 6],
                    "genres_lists": [["Adventure", "Animation"], ["Comedy"], ["Action"]]},
    },
    "RecommendResult": {
        "type": "array",
        "description": "one entry per movie asked for, best score first",
        "items": {
            "type": "object",
            "required": ["movieId", "score", "source"],
            "properties": {
                "movieId": ID,
                "score": {"type": "number"},
                "source": {"type": "string", "enum": ["precomputed", "live", "cold_start"],
                           "description": "cold_start: a user the run has no ratings of; the score is then "
                                          "the movie's popularity in the run (0 outside its popular list)"},
            },
        },
    },
    "SimilarMovies": {
        "type": "object",
        "required": ["movie_id", "title", "run_id", "items"],
        "properties": {
            "movie_id": ID,
            "title": {"type": ["string", "null"]},
            "run_id": {"type": "string"},
            "items": {"type": "array", "items": {
                "type": "object",
                "required": ["rank", "movie_id", "title", "year", "genres", "score"],
                "properties": {
                    "rank": {"type": "integer", "minimum": 1},
                    "movie_id": ID,
                    "title": {"type": ["string", "null"]},
                    "year": {"type": ["integer", "null"]},
                    "genres": {"type": "array", "items": {"type": "string"}},
                    "score": {"type": "number", "description": "cosine similarity of ALS item factors"},
                },
            }},
        },
    },
    "Run": {
        "type": "object",
        "required": ["run_id", "status", "params", "metrics", "activated_at"],
        "properties": {
            "run_id": {"type": "string"},
            "status": {"type": ["string", "null"]},
            "started_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]},
            "published_at": {"type": ["string", "null"]},
            "activated_at": {"type": ["string", "null"]},
            "params": {"type": "object", "description": "the settings the run used"},
            "metrics": {"type": "object", "description": "the run's evaluation metrics"},
            "message": {"type": ["string", "null"]},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "run_id"],
        "properties": {"status": {"const": "ready"}, "run_id": {"type": "string"},
                       "activated_at": {"type": ["string", "null"]}},
    },
}


def _int_param(name: str, where: str, description: str, low: int, high: int | None = None,
               default: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low}
    if high is not None:
        schema["maximum"] = high
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": where, "required": where == "path", "description": description, "schema": schema}


USER_ID = _int_param("user_id", "path", "a user id", 0, MAX_ID)
MOVIE_ID = _int_param("movie_id", "path", "a movie id", 0, MAX_ID)
NO_RUN = _error("no run has been published yet", retry_after=True)
BAD = _error("bad input: the message says what is wrong")

PATHS: dict[str, Any] = {
    "/users/{user_id}/recommendations": {"get": {
        "operationId": "userRecommendations",
        "summary": "A user's recommendations from the active run",
        "parameters": [
            USER_ID,
            _int_param("k", "query", f"how many (1..{MAX_K}; the store holds the run's top_k, deeper is scored live)", 1, MAX_K, 10),
            _int_param("offset", "query", "skip this many of the (filtered) list: pages never repeat within a run", 0, MAX_K - 1, 0),
            {"name": "genre", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "only movies of this genre (case-insensitive); unknown genres are a 400"},
        ],
        "responses": {
            "200": _json(_ref("UserRecommendations"), "the page of the user's list"),
            "400": BAD,
            "503": _error("no active run, or live scoring is needed and unavailable or timed out", retry_after=True),
        },
    }},
    "/recommend": {"post": {
        "operationId": "recommend",
        "summary": "Score given movies for a user (the seed's call)",
        "description": "Pairs in the active run's recommendations come from the store; the rest are scored "
                       "live by the batch's hybrid function; a movie the models never saw is scored from its "
                       "genres by the content model alone.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RecommendRequest")}}},
        "responses": {
            "200": _json(_ref("RecommendResult"), "the movies, best first"),
            "400": BAD,
            "413": _error("the body is too large"),
            "503": _error("no active run, or live scoring unavailable or timed out", retry_after=True),
        },
    }},
    "/movies/{movie_id}": {"get": {
        "operationId": "movie",
        "summary": "A movie from the catalogue",
        "parameters": [MOVIE_ID],
        "responses": {"200": _json(_ref("Movie"), "the movie"), "400": BAD,
                      "404": _error("not in the catalogue")},
    }},
    "/movies/{movie_id}/similar": {"get": {
        "operationId": "similarMovies",
        "summary": "The nearest movies by ALS item factors, from the active run",
        "parameters": [MOVIE_ID, _int_param("k", "query", f"how many (1..{MAX_SIMILAR_K})", 1, MAX_SIMILAR_K, 10)],
        "responses": {"200": _json(_ref("SimilarMovies"), "the similar movies, best first"), "400": BAD,
                      "404": _error("not in the catalogue"), "503": NO_RUN},
    }},
    "/runs/active": {"get": {
        "operationId": "activeRun",
        "summary": "The run being served, its parameters and metrics",
        "responses": {"200": _json(_ref("Run"), "the active run"), "503": NO_RUN},
    }},
    "/healthz": {"get": {
        "operationId": "healthz", "summary": "The process is alive",
        "responses": {"200": _json(_ref("Health"), "alive")},
    }},
    "/readyz": {"get": {
        "operationId": "readyz", "summary": "The store answers and has an active run",
        "responses": {"200": _json(_ref("Ready"), "ready"),
                      "503": _error("store unreachable or nothing published", retry_after=True)},
    }},
    "/metrics": {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (text exposition format, not JSON)",
        "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
    "/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document",
        "responses": {"200": {"description": "the OpenAPI document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "movierec", "version": "1.0.0",
                 "description": "Hybrid movie recommendations (Spark ALS 70% + content random forest 30%). "
                                "Errors are JSON: {status, error, message}."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
