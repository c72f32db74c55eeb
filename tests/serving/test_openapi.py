"""/openapi.json is valid OpenAPI 3.1, lists every JSON route, and matches real answers."""
from __future__ import annotations

import re

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource

# routes that are not part of the JSON API: the page, its files, the reports it links to
NOT_API = {"/", "/static/<path:filename>", "/reports/<path:name>"}


@pytest.fixture
def document(sqlite_client):
    response = sqlite_client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_the_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)   # raises on any violation of the OpenAPI 3.1 schema


def test_the_validator_would_catch_a_broken_document(document):
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {"content": {}}}}}}}
    with pytest.raises(Exception):
        validate(broken)   # a response without its required description


def test_every_json_route_is_documented(app, document):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in NOT_API:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    assert ("/users/{user_id}/recommendations", "get") in routes and ("/recommend", "post") in routes


def _validator(document, schema):
    registry = Registry().with_resource("urn:movierec", Resource.from_contents(
        {**document, "$schema": "https://json-schema.org/draft/2020-12/schema"}))
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              **_rebase(schema)}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _rebase(schema):
    """Point the document's local $refs at the registered document."""
    if isinstance(schema, dict):
        return {k: ("urn:movierec" + v if k == "$ref" else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


@pytest.mark.parametrize("method,path,body", [
    ("get", "/users/1/recommendations?k=3", None),
    ("get", "/users/3/recommendations?genre=Comedy", None),
    ("get", "/users/abc/recommendations", None),
    ("post", "/recommend", {"userId": 1, "movieIds": [20, 5]}),
    ("post", "/recommend", {"userId": 1, "movieIds": []}),
    ("post", "/recommend", {"userId": 3, "movieIds": [1, 5]}),
    ("get", "/movies/31", None),
    ("get", "/movies/99", None),
    ("get", "/movies/1/similar?k=3", None),
    ("get", "/runs/active", None),
    ("get", "/healthz", None),
    ("get", "/readyz", None),
])
def test_real_answers_match_their_documented_schema(client, document, method, path, body):
    response = client.get(path) if method == "get" else client.post(path, json=body)
    template = next(p for p in document["paths"]
                    if re.fullmatch(re.sub(r"\{\w+\}", r"[^/]+", p), path.split("?")[0]))
    documented = document["paths"][template][method]["responses"]
    assert str(response.status_code) in documented, f"{response.status_code} not documented for {template}"
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    _validator(document, schema).validate(response.get_json())


def test_schema_check_would_catch_a_wrong_answer(document):
    schema = document["paths"]["/users/{user_id}/recommendations"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    with pytest.raises(jsonschema.ValidationError):
        _validator(document, schema).validate({"user_id": 1, "run_id": "r", "source": "guess", "items": []})
