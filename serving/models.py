"""The API's requests and answers, declared once as pydantic 2 models.

The same models validate what a client sends (serving.openapi.operation runs them before
a view) and make the OpenAPI document (serving.openapi.document reads their JSON Schema),
so a limit written here is the limit enforced and the limit documented.  Bad input becomes
one 400 message that names the field and what was expected (`explain`), never pydantic's
own wording or a 500.

Path and query values arrive as text: they must be plain ASCII digits (no "1.5", "1e3",
"1_000" or Arabic-Indic digits, which Python's int() or pydantic's lax mode would take).
The POST /recommend body is strict JSON: ids are JSON numbers that are integers, as JSON
Schema's "integer" says (`2` and `2.0` are one number; `2.5`, `"2"` and `true` are refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# the largest id (Spark ALS ids are 32-bit, as is the store's INTEGER): one definition with the data's rules
from movierec.data.movielens import FIRST_TIMESTAMP, LAST_TIMESTAMP, MAX_ID, MAX_RATING, MIN_RATING

DEFAULT_K = 10
MAX_K = 500  # deepest list served: the store holds the run's top_k, deeper is scored live
MAX_SIMILAR_K = 100
MAX_BODY_MOVIES = 500  # movies in one POST /recommend
MAX_FEEDBACK_ROWS = 500  # ratings in one POST /users/<id>/ratings
MAX_CLOCK_SKEW = 24 * 3600  # a rating's timestamp may be this many seconds ahead of the server's clock

Source = Literal["precomputed", "live", "cold_start"]


# ---------------------------------------------------------------- text to integers


def _whole(text: str) -> str:
    """`12.0` -> `12`: a decimal with a zero fraction is an integer, as JSON Schema's "integer" says
    (and as bodies read 12.0, see _json_integer), so a client that formats ids as numbers is served."""
    head, dot, fraction = text.partition(".")
    return head if dot and head and fraction and set(fraction) == {"0"} else text


def _digits(value: Any) -> Any:
    """Path ids: only ASCII digits (a sign, spaces or other scripts' digits are refused)."""
    if isinstance(value, str):
        value = _whole(value)
        if not (value.isascii() and value.isdigit()):
            raise PydanticCustomError("int_parsing", "not a decimal integer")
    return value


def _signed_digits(value: Any) -> Any:
    """Query integers: ASCII digits after an optional minus, so "-1" is out of range, not garbage."""
    if isinstance(value, str):
        text = _whole(value.strip())
        unsigned = text[1:] if text.startswith("-") else text
        if not (unsigned.isascii() and unsigned.isdigit()):
            raise PydanticCustomError("int_parsing", "not a decimal integer")
        return text
    return value


PathId = Annotated[int, Field(ge=0, le=MAX_ID), BeforeValidator(_digits)]  # constraints first: in the schema
QueryInt = Annotated[int, BeforeValidator(_signed_digits)]


def _json_integer(value: Any) -> Any:
    """A JSON number with no fraction is an integer (JSON Schema's "integer" takes 2.0): read it as one.

    Strict validation still refuses everything else that lax mode would take ("2", true, 2.5)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonId = Annotated[int, Field(strict=True, ge=0, le=MAX_ID), BeforeValidator(_json_integer)]
AnswerId = Annotated[int, Field(ge=0, le=MAX_ID)]
# ingest's rule for the ratings a client posts: ids are positive (movierec.data.validation's bad_id)
RatingPathId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_digits)]
RatingJsonId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID), BeforeValidator(_json_integer)]


# ---------------------------------------------------------------- inputs: path and query


class UserPath(BaseModel):
    user_id: PathId = Field(description=f"a user id, 0..{MAX_ID}", examples=[1])


class MoviePath(BaseModel):
    movie_id: PathId = Field(description=f"a movie id, 0..{MAX_ID}", examples=[1])


class RecommendationsQuery(BaseModel):
    """Unknown query parameters are ignored (a cache buster does no harm)."""

    k: QueryInt = Field(
        DEFAULT_K,
        ge=1,
        le=MAX_K,
        description=(
            f"how many (1..{MAX_K}; the store holds the run's top_k, deeper is scored live from the run's own "
            "candidates, and a list ends where they do: a deep page can be short)"
        ),
    )
    offset: QueryInt = Field(
        0, ge=0, le=MAX_K - 1, description=("skip this many of the (filtered) list: pages never repeat within a run")
    )
    genre: str | None = Field(
        None,
        min_length=1,
        description=("only movies of this genre (case-insensitive); unknown genres are a 400, and so is an empty one"),
        examples=["Comedy"],
    )


class SimilarQuery(BaseModel):
    k: QueryInt = Field(DEFAULT_K, ge=1, le=MAX_SIMILAR_K, description=f"how many (1..{MAX_SIMILAR_K})")


# ---------------------------------------------------------------- inputs: the seed's body


class RecommendRequest(BaseModel):
    """POST /recommend, the seed's call.

    `{"userId": 1, "movieIds": [1, 3], "genres_lists": [["Comedy"], ["Drama"]]}`"""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "example": {
                "userId": 1,
                "movieIds": [1, 3, 6],
                "genres_lists": [["Adventure", "Animation"], ["Comedy"], ["Action"]],
            }
        },
    )

    userId: JsonId = Field(
        description=f'a user id, 0..{MAX_ID}; a JSON integer (2.0 is 2; 2.5, "2" and true are refused)'
    )
    movieIds: list[JsonId] = Field(
        min_length=1,
        max_length=MAX_BODY_MOVIES,
        json_schema_extra={"uniqueItems": True},
        description=f"the movies to score: 1..{MAX_BODY_MOVIES} JSON integers, each movie once",
    )
    genres_lists: list[list[str] | None] | None = Field(
        None,
        description=(
            "one entry per movie id: its genres (needed only for movies not in the catalogue), or null / []; "
            "null or left out for the whole field means none given"
        ),
    )

    @field_validator("movieIds")
    @classmethod
    def _each_movie_once(cls, movie_ids: list[int]) -> list[int]:
        if len(set(movie_ids)) != len(movie_ids):
            repeated = sorted({m for m in movie_ids if movie_ids.count(m) > 1})
            raise PydanticCustomError(
                "unique_items", "movieIds repeats {repeated}: each movie once", {"repeated": repeated}
            )
        return movie_ids

    @model_validator(mode="after")
    def _one_genre_list_per_movie(self) -> RecommendRequest:
        if self.genres_lists is not None and len(self.genres_lists) != len(self.movieIds):
            raise PydanticCustomError(
                "genres_lists_length",
                "genres_lists has {given} entries but movieIds has {movies}: give one list per movie "
                "(null or [] where none)",
                {"given": len(self.genres_lists), "movies": len(self.movieIds)},
            )
        return self

    def genres_given(self) -> dict[int, list[str]]:
        """movie id -> the genre names given for it, for the movies that have some."""
        return {m: names for m, names in zip(self.movieIds, self.genres_lists or ()) if names}


# ---------------------------------------------------------------- inputs: ratings posted between runs


class RatingsUserPath(BaseModel):
    user_id: RatingPathId = Field(description=f"a user id, 1..{MAX_ID} (ingest's rule: ids are positive)")


RATING_FIELDS = {
    "movie_id": f"a movie id of the catalogue, a JSON integer from 1 to {MAX_ID}",
    "rating": f"a number from {MIN_RATING} to {MAX_RATING} in half stars",
    "timestamp": f"unix seconds, a JSON integer from {FIRST_TIMESTAMP} (1995, ingest's rule) to a day ahead of the "
    "server's clock, or left out (now)",
}


def _not_ahead(timestamp: int | None) -> int | None:
    import time

    if timestamp is not None and timestamp > time.time() + MAX_CLOCK_SKEW:
        raise PydanticCustomError("timestamp_ahead", "the timestamp is more than a day ahead of the server's clock")
    return timestamp


class RatingIn(BaseModel):
    """One rating, by ingest's rules for ratings.csv (movierec.data.validation)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    movie_id: RatingJsonId = Field(description=RATING_FIELDS["movie_id"])
    rating: float = Field(
        ge=MIN_RATING, le=MAX_RATING, multiple_of=0.5, allow_inf_nan=False, description=RATING_FIELDS["rating"]
    )
    timestamp: Annotated[int | None, BeforeValidator(_json_integer), AfterValidator(_not_ahead)] = Field(
        None, ge=FIRST_TIMESTAMP, lt=LAST_TIMESTAMP, description=RATING_FIELDS["timestamp"]
    )


class RatingsRequest(RootModel[list[RatingIn]]):
    """POST /users/<id>/ratings: `[{"movie_id": 1, "rating": 4.5, "timestamp": 1700000000}, ...]`.

    All rows are stored or none: one bad row makes the call a 400 naming the row (0-based)."""

    root: list[RatingIn] = Field(
        min_length=1,
        max_length=MAX_FEEDBACK_ROWS,
        description=f"1..{MAX_FEEDBACK_ROWS} ratings; a movie once per timestamp",
        json_schema_extra={
            "example": [{"movie_id": 1, "rating": 4.5, "timestamp": 1700000000}, {"movie_id": 3, "rating": 2.0}]
        },
    )


# ---------------------------------------------------------------- answers

# what `score` means in every list of recommendations, whatever its source
SCORE = (
    "the hybrid's score, cf_weight × cf_score + cb_weight × cb_score: each component a calibrated chance that the "
    "user likes the movie (0..1), so precomputed and live scores are one scale and can be compared; null for "
    "cold starts, which have no personal score (their order is popularity, a separate field)"
)


class Error(BaseModel):
    """Every answer other than 200."""

    status: int = Field(ge=400, le=599, description="the HTTP status again")
    error: str = Field(description="the status's name")
    message: str = Field(description="what is wrong, for a person: the field and what was expected")


class Movie(BaseModel):
    movie_id: AnswerId
    title: str | None
    year: int | None = Field(description="release year parsed from the title")
    genres: list[str]


class RecommendationItem(BaseModel):
    rank: int = Field(ge=1, description="position in the user's whole list (before a genre filter)")
    movie_id: AnswerId
    title: str | None
    year: int | None
    genres: list[str]
    score: float | None = Field(description=SCORE)
    cf_score: float | None = Field(description="collaborative (ALS) component, 0..1; null for cold starts")
    cb_score: float | None = Field(description="content (random forest) component, 0..1; null for cold starts")
    popularity: int | None = Field(
        None,
        ge=0,
        description=(
            "cold starts only (absent otherwise): the movie's number of ratings in the run's training data, "
            "which orders a cold start's list; a count, not a score, and not comparable with one"
        ),
    )


class UserRecommendations(BaseModel):
    user_id: AnswerId
    run_id: str
    source: Source = Field(
        description=(
            "precomputed: the store; live: scored now from the run's models (no stored rows, or the page "
            "reaches past them: the stored rows, then the run's other candidates, scores never rising with "
            "rank; or the user rated movies since the run, POST /users/<id>/ratings: the whole list for their "
            "ratings with those, a user the run never saw included); cold_start: a user without ratings the run "
            "or the store holds, answered with the run's most popular movies (score null, popularity set)"
        )
    )
    items: list[RecommendationItem]


class ScoredMovie(BaseModel):
    movieId: AnswerId
    score: float | None = Field(description=SCORE)
    popularity: int | None = Field(
        None,
        ge=0,
        description=(
            "cold_start only (absent otherwise): the movie's number of ratings in the run's training data, "
            "null when it is not among the run's popular_n most rated movies (the store keeps only those); "
            "a cold start's answer is ordered by it, most rated first, then the others by movie id"
        ),
    )
    source: Source = Field(
        description=(
            "precomputed: from the store; live: scored now; cold_start: a user the run has no ratings of, "
            "whose movies have no score (null) and are ranked by popularity"
        )
    )


class RecommendResult(RootModel[list[ScoredMovie]]):
    """One entry per movie asked for, best score first."""


class SimilarItem(BaseModel):
    rank: int = Field(ge=1)
    movie_id: AnswerId
    title: str | None
    year: int | None
    genres: list[str]
    score: float = Field(description="cosine similarity of ALS item factors")


class SimilarMovies(BaseModel):
    movie_id: AnswerId
    title: str | None
    run_id: str
    items: list[SimilarItem]


class ActiveRun(BaseModel):
    run_id: str
    status: str | None = Field(description="loading | published | rejected | failed")
    started_at: str | None = None
    finished_at: str | None = None
    published_at: str | None = None
    activated_at: str | None
    params: dict[str, Any] = Field(description="the settings the run used")
    metrics: dict[str, Any] = Field(description="the run's evaluation metrics")
    message: str | None = None
    active: bool | None = None


class RatingsStored(BaseModel):
    user_id: AnswerId
    stored: int = Field(ge=0, description="ratings this call added to the store (committed)")
    already_stored: int = Field(
        ge=0, description="ratings the store already held (same movie and timestamp): never stored twice"
    )


class StoredRating(BaseModel):
    movie_id: AnswerId
    rating: float
    timestamp: int = Field(description="unix seconds, as given (or when it was received)")
    received_at: str = Field(description="when the store received it, ISO-8601 UTC")


class UserRatings(BaseModel):
    user_id: AnswerId
    ratings: list[StoredRating] = Field(description="the ratings posted for the user, oldest first")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    run_id: str
    activated_at: str | None = None


# ---------------------------------------------------------------- what a validation error says

# what a value should have been, by field and depth ("[]" per list level)
EXPECTED = {
    "genre": "a genre name of the catalogue (case-insensitive), not empty",
    "movieIds": f"a non-empty list of movie ids (at most {MAX_BODY_MOVIES}, each once)",
    "genres_lists": "a list with one list of genre names (or null) per movie id, or null",
    "genres_lists[]": "a list of genre names, or null",
    "genres_lists[][]": "a genre name (a string)",
}
_INTEGER_ERRORS = {"int_type", "int_parsing", "int_parsing_size", "int_from_float", "bool_type"}
_RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
_JSON_TYPES = {
    dict: "object",
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_SHOWN_PROBLEMS = 3


def _bounds(model: type[BaseModel], field: str) -> tuple[int | None, int | None]:
    """The ge/le limits a field was declared with (its Field or its Annotated type)."""
    info = model.model_fields.get(field)
    low: int | None = None
    high: int | None = None
    for item in info.metadata if info else ():
        if isinstance(item, annotated_types.Ge):
            low = int(item.ge)  # type: ignore[call-overload]
        elif isinstance(item, annotated_types.Le):
            high = int(item.le)  # type: ignore[call-overload]
    return low, high


def _shown(value: Any) -> str:
    """A value as the client sent it, cut short: a message never echoes a whole body back."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(model: type[BaseModel], where: str, error: Mapping[str, Any]) -> str:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind in {"unique_items", "genres_lists_length"} or not loc:
        return error["msg"]  # our own validators' messages, and errors of the whole body
    field = str(loc[0])
    name = field.replace("_", " ") if where == "path" else field
    name += "".join(f"[{i}]" for i in loc[1:] if isinstance(i, int))
    depth = sum(isinstance(i, int) for i in loc[1:])
    if kind == "missing":
        expected = EXPECTED.get(field + "[]" * depth)
        return f"{name} is missing" + (f": it must be {expected}" if expected else "")
    if kind in _INTEGER_ERRORS | _RANGE_ERRORS:
        low, high = _bounds(model, field) if depth == 0 else (0, MAX_ID)
        if where == "query":
            # the number as read for a range error ("got 0"), the text as sent when it is no number
            shown = (
                int(value) if kind in _RANGE_ERRORS and isinstance(value, str) and len(value) <= 20 else _shown(value)
            )
            return f"{name} must be an integer from {low} to {high}, got {shown}"
        if kind in _RANGE_ERRORS:
            return f"{name} must be between {low} and {high}, got {_shown(value)}"
        return f"{name} must be a non-negative integer, got {_shown(value)}"
    if kind == "too_long":
        context = error.get("ctx", {})
        return f"{name} has {context.get('actual_length')} entries; at most {context.get('max_length')} per call"
    expected = EXPECTED.get(field + "[]" * depth)
    if expected:
        return f"{name} must be {expected}, got {_shown(value)}"
    return f"{name}: {error['msg']}"


def _rating_problem(error: Mapping[str, Any]) -> str:
    """What is wrong with one field of one posted rating (a RatingsRequest row)."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if len(loc) < 2:
        return f"row {loc[0]} must be a JSON object like " + '{"movie_id": 1, "rating": 4.5}' + f", got {_shown(value)}"
    row, field = loc[0], str(loc[1])
    if kind == "extra_forbidden":
        return f"row {row}: unknown field {field!r}; expected {', '.join(RATING_FIELDS)}"
    expected = RATING_FIELDS.get(field)
    if expected is None:
        return f"row {row}: {field}: {error['msg']}"
    if kind == "missing":
        return f"row {row}: {field} is missing: it must be {expected}"
    return f"row {row}: {field} must be {expected}, got {_shown(value)}"


def _explain_ratings(err: ValidationError) -> str:
    errors = err.errors(include_url=False)
    whole = next((e for e in errors if not e["loc"]), None)
    if whole is not None:
        if whole["type"] == "too_short":
            return f"the body has no ratings: give 1 to {MAX_FEEDBACK_ROWS}"
        if whole["type"] == "too_long":
            return f"the body has {whole['ctx']['actual_length']} ratings; at most {MAX_FEEDBACK_ROWS} per call"
        body = whole["input"]
        return (
            "the body must be a JSON list of ratings like "
            + '[{"movie_id": 1, "rating": 4.5, "timestamp": 1700000000}]'
            + f", got a JSON {_JSON_TYPES.get(type(body), type(body).__name__)}"
        )
    problems = [_rating_problem(e) for e in errors]
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    return shown + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")


def explain(err: ValidationError, model: type[BaseModel], where: str) -> str:
    """One message for a client, naming each wrong field and what it should be.

    `where` is "path", "query" or "body" (path names read "user id", not "user_id").  Unknown
    body fields are listed together first; at most three problems are spelled out."""
    if model is RatingsRequest:
        return _explain_ratings(err)
    errors = err.errors(include_url=False)
    if where == "body" and any(e["type"] == "model_type" and not e["loc"] for e in errors):
        body = next(e["input"] for e in errors if not e["loc"])
        return f"the body must be a JSON object, got a JSON {_JSON_TYPES.get(type(body), type(body).__name__)}"
    problems = []
    extra = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if extra:
        problems.append(f"unknown field(s) {extra}; expected {', '.join(model.model_fields)}")
    problems += [_problem(model, where, e) for e in errors if e["type"] != "extra_forbidden"]
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    return shown + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")
