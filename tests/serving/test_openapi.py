"""/openapi.json is valid OpenAPI 3.1 made from serving/models.py, lists every JSON route, and
matches every route's real answers, errors included; /docs is Swagger UI served by the app itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource

from serving import models

# routes that are not part of the JSON API: the page, its files, the reports it links to, the docs page
NOT_API = {"/", "/static/<path:filename>", "/reports/<path:name>", "/docs", "/docs/assets/<name>"}


@pytest.fixture
def document(sqlite_client):
    response = sqlite_client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def test_the_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_the_validator_would_catch_a_broken_document(document):
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {"content": {}}}}}}}
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    with pytest.raises(OpenAPIValidationError):
        validate(broken)  # a response without its required description


def test_every_json_route_is_documented(sqlite_client, document):
    routes = set()
    for rule in sqlite_client.application.url_map.iter_rules():
        if rule.rule in NOT_API:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    assert ("/users/{user_id}/recommendations", "get") in routes and ("/recommend", "post") in routes


def _parameter(document, path, name):
    return next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name)


def test_the_documented_limits_are_the_models(document):
    """What the code enforces is what the document says (the disagreements it used to have included)."""
    recs = "/users/{user_id}/recommendations"
    assert _parameter(document, recs, "user_id")["schema"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": models.MAX_ID,
    }
    assert _parameter(document, recs, "k")["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": models.MAX_K,
        "default": models.DEFAULT_K,
    }
    assert _parameter(document, recs, "offset")["schema"]["maximum"] == models.MAX_K - 1
    genre = _parameter(document, recs, "genre")
    assert genre["schema"] == {"type": "string", "minLength": 1} and genre["required"] is False
    assert _parameter(document, "/movies/{movie_id}/similar", "k")["schema"]["maximum"] == models.MAX_SIMILAR_K

    body = document["components"]["schemas"]["RecommendRequest"]
    assert body["required"] == ["userId", "movieIds"] and body["additionalProperties"] is False
    assert body["properties"]["userId"]["type"] == "integer"
    assert "2.0" in body["properties"]["userId"]["description"]  # strict JSON integers, said in words
    movie_ids = body["properties"]["movieIds"]
    assert (movie_ids["minItems"], movie_ids["maxItems"], movie_ids["uniqueItems"]) == (1, models.MAX_BODY_MOVIES, True)
    # genres_lists: null means "not given", as do null entries
    check = jsonschema.Draft202012Validator(body)
    for fine in (
        {"userId": 1, "movieIds": [1]},
        {"userId": 1, "movieIds": [1], "genres_lists": None},
        {"userId": 1, "movieIds": [1, 2], "genres_lists": [None, ["Comedy"]]},
    ):
        check.validate(fine)
    for wrong in (
        {"userId": True, "movieIds": [1]},
        {"userId": 1, "movieIds": []},
        {"userId": 1, "movieIds": [1, 1]},
        {"userId": 1, "movieIds": [1], "x": 1},
    ):
        assert not check.is_valid(wrong), wrong


def test_the_document_says_what_score_and_popularity_mean(document):
    """score is one kind of number in every list (null for cold starts); popularity is the count."""
    schemas = document["components"]["schemas"]
    for name in ("RecommendationItem", "ScoredMovie"):
        fields = schemas[name]["properties"]
        assert {"type": "null"} in fields["score"]["anyOf"] and "calibrated chance" in fields["score"]["description"]
        assert "null for cold starts" in fields["score"]["description"]
        assert {"type": "integer", "minimum": 0} in fields["popularity"]["anyOf"]
        assert "number of ratings" in fields["popularity"]["description"]
        assert "popularity" not in schemas[name].get("required", [])


def _validator(document, schema):
    registry = Registry().with_resource(
        "urn:movierec", Resource.from_contents({**document, "$schema": "https://json-schema.org/draft/2020-12/schema"})
    )
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **_rebase(schema)}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _rebase(schema):
    """Point the document's local $refs at the registered document."""
    if isinstance(schema, dict):
        return {k: ("urn:movierec" + v if k == "$ref" else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


TOO_LARGE = json.dumps({"userId": 1, "movieIds": [1], "padding": "x" * 70_000})
TOO_MANY_RATINGS = json.dumps([{"movie_id": 1, "rating": 4.5, "timestamp": t} for t in range(2_000)])
KEY = "test-key-openapi"
ONE_RATING = [{"movie_id": 1, "rating": 4.5, "timestamp": 1_700_000_000}]

# (store, method, path, body, status): "known" is tests/serving/data.py, "empty" has nothing
# published, "busy" is the known store with the live fallback held busy (live calls time out);
# "keyed" is a fresh copy of the known store with an API key configured and sent, "keyless" the
# same without sending it, "unreachable" a PostgreSQL that does not answer (key configured and sent)
ANSWERS = [
    ("known", "get", "/users/1/recommendations?k=3", None, 200),
    ("known", "get", "/users/3/recommendations?genre=Comedy", None, 200),
    ("known", "get", "/users/abc/recommendations", None, 400),
    ("known", "get", "/users/1/recommendations?genre=", None, 400),
    ("known", "get", "/users/1/recommendations?k=501", None, 400),
    ("empty", "get", "/users/1/recommendations", None, 503),
    ("busy", "get", "/users/2/recommendations", None, 503),
    ("known", "post", "/recommend", {"userId": 1, "movieIds": [20, 5]}, 200),
    ("known", "post", "/recommend", {"userId": 3, "movieIds": [1, 5]}, 200),
    ("known", "post", "/recommend", {"userId": 1, "movieIds": []}, 400),
    ("known", "post", "/recommend", {"userId": 2.5, "movieIds": [1]}, 400),
    ("known", "post", "/recommend", TOO_LARGE, 413),
    ("empty", "post", "/recommend", {"userId": 1, "movieIds": [1]}, 503),
    ("busy", "post", "/recommend", {"userId": 1, "movieIds": [20, 21]}, 503),
    ("known", "get", "/movies/31", None, 200),
    ("known", "get", "/movies/-5", None, 400),
    ("known", "get", "/movies/99", None, 404),
    ("known", "get", "/movies/1/similar?k=3", None, 200),
    ("known", "get", "/movies/1/similar?k=0", None, 400),
    ("known", "get", "/movies/99/similar", None, 404),
    ("empty", "get", "/movies/1/similar", None, 503),
    ("known", "get", "/runs/active", None, 200),
    ("empty", "get", "/runs/active", None, 503),
    ("known", "get", "/healthz", None, 200),
    ("known", "get", "/readyz", None, 200),
    ("empty", "get", "/readyz", None, 503),
    ("known", "get", "/metrics", None, 200),
    ("known", "get", "/openapi.json", None, 200),
    ("keyed", "post", "/users/7/ratings", ONE_RATING, 201),
    ("keyed", "post", "/users/7/ratings", [{"movie_id": 99, "rating": 4.5}], 400),
    ("keyless", "post", "/users/7/ratings", ONE_RATING, 401),
    ("known", "post", "/users/7/ratings", ONE_RATING, 403),
    ("keyed", "post", "/users/7/ratings", TOO_MANY_RATINGS, 413),
    ("unreachable", "post", "/users/7/ratings", ONE_RATING, 503),
    ("keyed", "get", "/users/7/ratings", None, 200),
    ("keyed", "get", "/users/0/ratings", None, 400),
    ("keyless", "get", "/users/7/ratings", None, 401),
    ("known", "get", "/users/7/ratings", None, 403),
    ("unreachable", "get", "/users/7/ratings", None, 503),
]
UNREACHABLE = "postgresql+psycopg://movierec@127.0.0.1:1/nothing"  # port 1: connection refused at once


def _template(document, path):
    return next(p for p in document["paths"] if re.fullmatch(re.sub(r"\{\w+\}", r"[^/]+", p), path.split("?")[0]))


def test_the_cases_cover_every_documented_answer(document):
    covered = {(_template(document, path), method, str(status)) for _, method, path, _, status in ANSWERS}
    documented = {
        (path, method, status)
        for path, item in document["paths"].items()
        for method, entry in item.items()
        for status in entry["responses"]
    }
    assert covered == documented


def _check_answer(document, response, method, path, status):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    documented = document["paths"][_template(document, path)][method]["responses"][str(status)]
    ((media_type, content),) = documented["content"].items()
    assert response.mimetype == media_type
    answer = response.get_json() if media_type == "application/json" else response.get_data(as_text=True)
    _validator(document, content["schema"]).validate(answer)
    for header, declared in documented.get("headers", {}).items():
        if declared["schema"]["type"] == "integer":
            assert int(response.headers[header]) >= 1
        else:
            assert response.headers[header].startswith("Bearer")  # WWW-Authenticate of a 401
    if status >= 400:
        assert answer["status"] == status and answer["message"]


def _send(client, method, path, body, headers=None):
    if method == "get":
        return client.get(path, headers=headers)
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", headers=headers)


@pytest.mark.parametrize("store,method,path,body,status", [a for a in ANSWERS if a[0] != "busy"])
def test_real_answers_match_their_documented_schema(
    make_app, sqlite_store_url, fresh_store_url, tmp_path, document, store, method, path, body, status
):
    from serving.auth import digest

    urls = {"known": sqlite_store_url, "keyed": fresh_store_url, "keyless": fresh_store_url, "unreachable": UNREACHABLE}
    url = urls.get(store, f"sqlite:///{tmp_path / 'empty.db'}")
    keys = {"api_keys": digest(KEY)} if store in {"keyed", "keyless", "unreachable"} else {}
    headers = {"Authorization": f"Bearer {KEY}"} if store in {"keyed", "unreachable"} else None
    _check_answer(
        document, _send(make_app(url, **keys).test_client(), method, path, body, headers), method, path, status
    )


@pytest.mark.parametrize("store,method,path,body,status", [a for a in ANSWERS if a[0] == "busy"])
def test_answers_while_live_scoring_is_busy_match_too(
    client, blocked_live, document, store, method, path, body, status
):
    _check_answer(document, _send(client, method, path, body), method, path, status)


def test_schema_check_would_catch_a_wrong_answer(document):
    schema = document["paths"]["/users/{user_id}/recommendations"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    with pytest.raises(jsonschema.ValidationError):
        _validator(document, schema).validate({"user_id": 1, "run_id": "r", "source": "guess", "items": []})
    error = document["paths"]["/recommend"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    with pytest.raises(jsonschema.ValidationError):
        _validator(document, error).validate({"status": 400, "message": "no error name"})


def test_docs_are_swagger_ui_served_by_this_app(sqlite_client):
    page = sqlite_client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "://" not in html  # no CDN, no absolute URL at all: everything from this server
    assert 'url: "/openapi.json"' in html and "validatorUrl: null" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4
    kinds = {}
    for asset in assets:
        assert asset.startswith("/docs/assets/")
        response = sqlite_client.get(asset)
        assert response.status_code == 200, asset
        kinds[Path(urlsplit(asset).path).suffix] = response
    assert kinds[".css"].mimetype == "text/css" and b".swagger-ui" in kinds[".css"].get_data()
    assert kinds[".js"].mimetype in {"text/javascript", "application/javascript"}
    assert b"SwaggerUI" in sqlite_client.get("/docs/assets/swagger-ui-bundle.js").get_data()
    for outside in ("/docs/assets/index.html", "/docs/assets/..%2F__init__.py", "/docs/assets/swagger-ui.js.map"):
        missing = sqlite_client.get(outside)
        assert missing.status_code == 404 and missing.is_json, outside


@pytest.mark.browser
@pytest.mark.slow
def test_docs_render_in_a_browser_that_can_reach_only_this_server(sqlite_store_url, tmp_path, document):
    """Swagger UI lists every operation with the network cut off: nothing is fetched from elsewhere."""
    from playwright.sync_api import sync_playwright

    from tests.serving.server import Served

    served = Served(sqlite_store_url, tmp_path / "gunicorn-docs", workers=1, env={"JAVA_HOME": "/nonexistent/java"})
    elsewhere, errors = [], []
    try:
        served.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))

            def only_here(route):
                if route.request.url.startswith(served.base + "/"):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", only_here)
            page.goto(served.base + "/docs")
            page.locator(".opblock").first.wait_for(timeout=20_000)
            summaries = page.locator(".opblock-summary-path").all_inner_texts()
            browser.close()
    finally:
        served.stop()
    operations = sum(len(item) for item in document["paths"].values())
    assert len(summaries) == operations, summaries
    assert any("/users/{user_id}/recommendations" in text.replace("\u200b", "") for text in summaries)
    assert elsewhere == [] and errors == []
