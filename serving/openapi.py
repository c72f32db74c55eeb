"""Each route's inputs and answers declared once: validated with serving.models, documented from them.

`@operation(...)` on a view names its path, query and body models and its answers.  Before
the view runs, the wrapper validates the request with those models (a 400 from
`models.explain` on bad input) and passes the results as `path=`, `query=`, `body=`; the
OpenAPI 3.1 document at /openapi.json is generated from the same declarations (the
models' JSON Schema, 2020-12, which is OpenAPI 3.1's dialect), and /docs serves Swagger UI
over it.  The document therefore cannot say one thing while the code checks another.

Why not a library.  flask-openapi3 4.x is the closest (pydantic 2, its Swagger UI plugin
bundles the assets), but it was measured at about 1,100 requests/s on a path + query route
against 4,000 for the same route with the same pydantic model called directly: it
regenerates the query model's JSON Schema on every request (about 0.5 ms); it also reads
bodies with `get_json(silent=True)`, which drops the seed's clients that send no
Content-Type, and it needs its own Flask subclass and documents validation errors as a
list, not our error body.  spectree 3.x links its pages to a CDN unless offapi is installed,
reads bodies the same way and does not model path parameters; APIFlask is built on
marshmallow and its docs default to a CDN too.  Working around each would leave the library
doing little but the document, which is this module's ~150 lines.

Offline: the Swagger UI files come from the `swagger-ui-bundle-v2` package (the Swagger UI
release as package data, no Python code of its own besides the path) and are served by this
app under /docs/assets/; the page references nothing outside this server.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, Flask, current_app, request, send_from_directory, url_for
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from serving import models
from serving.errors import ApiError, bad_request

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/"
# routes that are not part of the JSON API: the page and its files, the reports, these docs
NOT_DOCUMENTED = {"static", "page.index", "page.report", "openapi.docs", "openapi.docs_asset"}
BODY_EXAMPLE = '{"userId": 1, "movieIds": [1, 3], "genres_lists": [["Comedy"], ["Drama"]]}'
SECURITY_SCHEME = "apiKey"
KEY_ANSWERS: dict[int, str] = {
    401: "no API key: the header `Authorization: Bearer <key>` is missing or malformed",
    403: "the API key is not accepted, or no key is configured on this server (keyed routes are then off)",
}


@dataclass(frozen=True)
class Operation:
    """One route's declaration: what it takes and what it answers (status -> model, description)."""

    operation_id: str
    summary: str
    answers: Mapping[int, tuple[type[BaseModel] | None, str]]
    description: str = ""
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    media_type: str = "application/json"
    retry_after: frozenset[int] = field(default_factory=lambda: frozenset({503}))
    keyed: bool = False  # needs an API key (serving.auth.require_key sets it): 401 and 403 are then answers too


# ---------------------------------------------------------------- declaring and validating


def operation(
    operation_id: str, summary: str, answers: Mapping[int, tuple[type[BaseModel] | None, str]], **details: Any
) -> Callable[[Callable], Callable]:
    """Declare a view's inputs and answers; its request is validated with the same models.

    The view is called with `path=`, `query=` and `body=` model instances for what was
    declared, instead of Flask's raw path arguments."""
    op = Operation(operation_id, summary, answers, **details)

    def decorate(view: Callable) -> Callable:
        if op.path is None and op.query is None and op.body is None:
            view.openapi = op  # type: ignore[attr-defined]
            return view

        @functools.wraps(view)
        def validated(**path_args: str):
            given: dict[str, BaseModel] = {}
            if op.path is not None:
                given["path"] = _validate(op.path, path_args, "path")
            if op.query is not None:
                given["query"] = _validate(op.query, request.args.to_dict(), "query")
            if op.body is not None:
                given["body"] = _validate(op.body, read_json_body(), "body")
            return view(**given)

        validated.openapi = op  # type: ignore[attr-defined]
        return validated

    return decorate


def _validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise bad_request(models.explain(err, model, where)) from None


def read_json_body() -> Any:
    """The body as JSON, whatever its Content-Type (the seed's clients did not always set it).

    A body over MAX_CONTENT_LENGTH is a 413, also when it comes chunked without a length."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    too_large = ApiError(413, f"the body is larger than {limit} bytes; at most {limit} are accepted")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) >= limit:  # a body without Content-Length (chunked) is cut off at the limit
        raise too_large
    try:
        return json.loads(raw)
    except ValueError:  # includes bodies that are not UTF-8
        raise bad_request(f"the body must be a JSON object like {BODY_EXAMPLE}") from None
    except RecursionError:  # "[[[[…" a few thousand deep: the decoder's stack, not ours to give a 500
        raise bad_request(f"the body is nested too deeply; it must be a JSON object like {BODY_EXAMPLE}") from None


# ---------------------------------------------------------------- routes without inputs, declared here

EXTERNAL: dict[str, Operation] = {  # the views of serving/ops.py
    "ops.healthz": Operation("healthz", "The process is alive", {200: (models.Health, "alive")}),
    "ops.readyz": Operation(
        "readyz",
        "The store answers and has an active run",
        {200: (models.Ready, "ready"), 503: (None, "store unreachable or nothing published")},
    ),
    "ops.metrics": Operation(
        "metrics",
        "Prometheus metrics (text exposition format, not JSON)",
        {200: (None, "metrics")},
        media_type="text/plain",
    ),
}


# ---------------------------------------------------------------- the document


def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        description = prop.pop("description", "")
        if "anyOf" in prop:  # Optional[X]: a query parameter is left out, never null
            branches = [branch for branch in prop.pop("anyOf") if branch.get("type") != "null"]
            prop.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        examples = prop.pop("examples", None)
        parameter = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "description": description,
            "schema": prop,
        }
        if examples:  # a real value for Swagger UI's "Try it out" and for schemathesis's examples phase
            parameter["example"] = examples[0]
        parameters.append(parameter)
    return parameters


def _answer(
    op: Operation,
    status: int,
    model: type[BaseModel] | None,
    description: str,
    refs: Mapping[type[BaseModel], dict[str, str]],
) -> dict[str, Any]:
    if status >= 400:
        # the error body, with its `status` the answer's own (a 404's body says 404)
        schema: dict[str, Any] = {"allOf": [refs[models.Error], {"properties": {"status": {"const": status}}}]}
    elif model is not None:
        schema = refs[model]
    else:
        schema = {"type": "string"} if op.media_type != "application/json" else {"type": "object"}
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json" if status >= 400 else op.media_type: {"schema": schema}},
    }
    if status in op.retry_after:
        answer["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    if op.keyed and status == 401:
        answer["headers"] = {
            "WWW-Authenticate": {"description": "the scheme to authenticate with: Bearer", "schema": {"type": "string"}}
        }
    return answer


def _operations(app: Flask) -> list[tuple[str, str, Operation]]:
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in NOT_DOCUMENTED:
            continue
        op = getattr(app.view_functions[rule.endpoint], "openapi", None) or EXTERNAL.get(rule.endpoint)
        if op is None:
            continue  # an undeclared route stays out; tests/serving/test_openapi.py fails on it
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        declared = set(op.path.model_fields) if op.path else set()
        if declared != set(rule.arguments):
            raise ValueError(f"{rule.rule}: the path model declares {sorted(declared)}")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), op))
    return found


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the app's declared routes, built from their models."""
    operations = _operations(app)
    used: set[type[BaseModel]] = {models.Error}
    for _, _, op in operations:
        used.update(m for m, _ in op.answers.values() if m is not None)
    inputs = {op.body for _, _, op in operations if op.body is not None}
    keyed: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "serialization") for m in sorted(used, key=lambda m: m.__name__)
    ]
    keyed += [(m, "validation") for m in sorted(inputs, key=lambda m: m.__name__)]
    refs_by_mode, definitions = models_json_schema(keyed, ref_template=REF + "{model}")
    refs = {m: refs_by_mode[(m, mode)] for m, mode in keyed}

    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in operations:
        entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
        if op.description:
            entry["description"] = op.description
        parameters = (_parameters(op.path, "path") if op.path else []) + (
            _parameters(op.query, "query") if op.query else []
        )
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[op.body]}}}
        answers = dict(op.answers)
        if op.keyed:
            entry["security"] = [{SECURITY_SCHEME: []}]
            for status, text in KEY_ANSWERS.items():
                answers.setdefault(status, (None, text))
        entry["responses"] = {
            str(status): _answer(op, status, model, text, refs) for status, (model, text) in sorted(answers.items())
        }
        paths.setdefault(path, {})[method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "movierec",
            "version": "1.0.0",
            "description": "Hybrid movie recommendations (Spark ALS 70% + content random forest 30%). "
            "Every error answer (4xx, 5xx) is JSON: {status, error, message}, also the HTTP server's own "
            "refusals before any route (414: request line over 4094 bytes; 431: a header over 8190 bytes "
            "or more than 100 headers; 400: a malformed request). "
            "Routes marked with a lock need an API key (`Authorization: Bearer <key>`). "
            "Interactive docs: /docs.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: the server accepts the keys whose SHA-256 hex digests it is "
                    "configured with (MOVIEREC_API_KEYS, MOVIEREC_API_KEYS_FILE); with none configured, "
                    "keyed routes answer 403.",
                }
            },
        },
    }


# ---------------------------------------------------------------- serving it


def document_response():
    """/openapi.json (a route of the api blueprint, which the page links as `api.openapi`)."""
    cached = current_app.extensions.get("movierec.openapi")
    if cached is None:  # routes are fixed once the app serves: build the document once
        cached = current_app.extensions["movierec.openapi"] = json.dumps(document(current_app)).encode()
    return current_app.response_class(cached, mimetype="application/json")


DOCS_ASSETS = {
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
}
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>movierec API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}" sizes="32x32">
  <style>body {{ margin: 0; }}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{bundle}"></script>
  <script src="{preset}"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: {spec}, dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"
      }});
    }};
  </script>
</body>
</html>
"""


def _assets_dir() -> str:
    from swagger_ui_bundle import swagger_ui_path  # imported when the docs are asked for

    return str(swagger_ui_path)


@bp.get("/docs")
def docs():
    """Swagger UI over /openapi.json, every file from this server (it works offline)."""

    def asset(name: str) -> str:
        return url_for("openapi.docs_asset", name=name)

    page = DOCS_PAGE.format(
        css=asset("swagger-ui.css"),
        icon=asset("favicon-32x32.png"),
        bundle=asset("swagger-ui-bundle.js"),
        preset=asset("swagger-ui-standalone-preset.js"),
        spec=json.dumps(url_for("api.openapi")),
    )
    return current_app.response_class(page, mimetype="text/html")


@bp.get("/docs/assets/<name>")
def docs_asset(name: str):
    if name not in DOCS_ASSETS:
        raise NotFound(f"no such docs file: {name}")
    return send_from_directory(_assets_dir(), name, max_age=24 * 3600)
