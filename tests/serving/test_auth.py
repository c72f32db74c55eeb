"""API keys: configured as SHA-256 digests (never keys), checked in constant time, 401 / 403 / 403-off as JSON,
and documented in /openapi.json."""

from __future__ import annotations

import hashlib
import logging
import time

import pytest

from movierec import config
from movierec.cli import main as movierec_main
from serving import auth

KEY = "k3y-for-tests_0123456789"
OTHER_KEY = "another-key-9876543210"
KEY_DIGEST = hashlib.sha256(KEY.encode()).hexdigest()  # what `printf %s KEY | sha256sum` prints
OTHER_DIGEST = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
RATING = [{"movie_id": 1, "rating": 4.0, "timestamp": 1_700_000_000}]


def _digests(**values) -> tuple[str, ...]:
    return config.api_key_digests(config.from_env({}, **values))


# ---------------------------------------------------------------- configuration


def test_digests_come_from_the_setting_and_the_file(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# the page's key\n\n  {OTHER_DIGEST.upper()}  # added 2026-03\n{KEY_DIGEST}\n")
    assert _digests() == ()
    assert _digests(api_keys=f" {KEY_DIGEST} ,, ") == (KEY_DIGEST,)
    assert _digests(api_keys_file=str(keys_file)) == (OTHER_DIGEST, KEY_DIGEST)
    assert _digests(api_keys=KEY_DIGEST, api_keys_file=str(keys_file)) == (KEY_DIGEST, OTHER_DIGEST)


@pytest.mark.parametrize("entry", [KEY, KEY_DIGEST[:-1], KEY_DIGEST + "0", "g" * 64])
def test_a_value_that_is_not_a_digest_is_a_config_error_that_does_not_echo_it(entry):
    with pytest.raises(config.ConfigError) as caught:
        config.from_env({"MOVIEREC_API_KEYS": f"{OTHER_DIGEST},{entry}"})
    message = str(caught.value)
    assert "MOVIEREC_API_KEYS" in message and "entry 2" in message and "\n" not in message
    assert entry not in message and KEY_DIGEST[:20] not in message


def test_a_bad_line_of_the_keys_file_is_named_by_number(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{KEY_DIGEST}\n# fine\n{KEY}\n")
    with pytest.raises(config.ConfigError) as caught:
        _digests(api_keys_file=str(keys_file))
    assert "line 3" in str(caught.value) and KEY not in str(caught.value)
    with pytest.raises(config.ConfigError, match="cannot read"):
        _digests(api_keys_file=str(tmp_path / "missing"))


def test_serve_refuses_a_plain_key_in_one_line(capsys, tmp_path):
    assert movierec_main(["serve", "--dry-run", "--api-keys", KEY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a SHA-256 hex digest" in err and KEY not in err
    keys_file = tmp_path / "keys"
    keys_file.write_text(KEY + "\n")
    assert movierec_main(["serve", "--dry-run", "--api-keys-file", str(keys_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 1" in err and KEY not in err
    keys_file.write_text(KEY_DIGEST + "\n")
    assert movierec_main(["serve", "--dry-run", "--api-keys-file", str(keys_file)]) == 0


def test_the_app_does_not_start_with_a_bad_keys_file(make_app, sqlite_store_url, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("not a digest\n")
    with pytest.raises(config.ConfigError):
        make_app(sqlite_store_url, api_keys_file=str(keys_file))


# ---------------------------------------------------------------- the check


def test_the_key_is_hashed_and_compared_with_each_digest():
    many = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(50)]
    for position in (0, 25, 49):
        digests = many[:position] + [KEY_DIGEST] + many[position:]
        assert auth.key_matches(KEY, digests)
    assert not auth.key_matches(KEY, many)
    assert not auth.key_matches(KEY_DIGEST, [KEY_DIGEST])  # the digest is not a key
    assert not auth.key_matches(KEY + " ", [KEY_DIGEST]) and not auth.key_matches(KEY[:-1], [KEY_DIGEST])


def test_the_check_takes_as_long_wherever_the_key_matches():
    """Every digest is compared every time: a key matching the first digest of many costs as much as
    one matching none (an early exit would make it thousands of times cheaper, and tell an attacker so)."""
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    first = [KEY_DIGEST] + digests

    def cost(key, accepted) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            auth.key_matches(key, accepted)
            best = min(best, time.perf_counter() - started)
        return best

    assert auth.key_matches(KEY, first) and not auth.key_matches(OTHER_KEY, first)
    assert cost(KEY, first) > 0.3 * cost(OTHER_KEY, first)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic " + KEY, "Token " + KEY, f"Bearer {KEY} extra", KEY],
)
def test_a_missing_or_malformed_header_is_401_json(make_app, fresh_store_url, header):
    client = make_app(fresh_store_url, api_keys=KEY_DIGEST).test_client()
    headers = {} if header is None else {"Authorization": header}
    for response in (client.post("/users/7/ratings", json=RATING, headers=headers), client.get("/users/7/ratings")):
        assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
        body = response.get_json()
        assert body["status"] == 401 and body["error"] == "Unauthorized" and "Authorization: Bearer" in body["message"]
    assert client.get("/users/7/ratings", headers={"Authorization": f"Bearer {KEY}"}).get_json()["ratings"] == []


@pytest.mark.parametrize("wrong", [OTHER_KEY, KEY_DIGEST, KEY.upper(), "é"])
def test_a_wrong_key_is_403_json_and_stores_nothing(make_app, fresh_store_url, wrong):
    client = make_app(fresh_store_url, api_keys=KEY_DIGEST).test_client()
    response = client.post("/users/7/ratings", json=RATING, headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 403 and "WWW-Authenticate" not in response.headers
    assert response.get_json() == {
        "status": 403,
        "error": "Forbidden",
        "message": "the API key is not accepted by this server",
    }
    assert client.get("/users/7/ratings", headers={"Authorization": f"Bearer {wrong}"}).status_code == 403
    assert client.get("/users/7/ratings", headers={"Authorization": f"Bearer {KEY}"}).get_json()["ratings"] == []


def test_the_scheme_name_is_case_insensitive(make_app, fresh_store_url):
    client = make_app(fresh_store_url, api_keys=KEY_DIGEST).test_client()
    assert client.post("/users/7/ratings", json=RATING, headers={"Authorization": f"bearer {KEY}"}).status_code == 201


def test_with_no_key_configured_writes_are_off(make_app, fresh_store_url):
    client = make_app(fresh_store_url).test_client()
    for headers in ({}, {"Authorization": f"Bearer {KEY}"}):
        response = client.post("/users/7/ratings", json=RATING, headers=headers)
        assert response.status_code == 403
        assert "disabled" in response.get_json()["message"] and "MOVIEREC_API_KEYS" in response.get_json()["message"]
        assert client.get("/users/7/ratings", headers=headers).status_code == 403
    # the public routes are as public as before
    assert client.get("/users/1/recommendations?k=3").status_code == 200


def test_any_configured_key_is_accepted(make_app, fresh_store_url, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(OTHER_DIGEST + "\n")
    client = make_app(fresh_store_url, api_keys=KEY_DIGEST, api_keys_file=str(keys_file)).test_client()
    for key, timestamp in ((KEY, 1_600_000_001), (OTHER_KEY, 1_600_000_002)):
        response = client.post(
            "/users/7/ratings",
            json=[{"movie_id": 1, "rating": 3.0, "timestamp": timestamp}],
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 201 and response.get_json()["stored"] == 1


def test_the_key_is_checked_before_the_body(make_app, fresh_store_url):
    """An unauthenticated client learns nothing from validation: 401, not 400, for a bad body."""
    client = make_app(fresh_store_url, api_keys=KEY_DIGEST).test_client()
    assert client.post("/users/7/ratings", data="not json").status_code == 401
    assert client.post("/users/0/ratings", json=[{"rating": 9}]).status_code == 401


def test_the_key_is_never_logged_or_echoed(make_app, fresh_store_url, caplog):
    client = make_app(fresh_store_url, api_keys=KEY_DIGEST).test_client()
    caplog.set_level(logging.DEBUG)
    answers = [
        client.post("/users/7/ratings", json=RATING, headers={"Authorization": f"Bearer {KEY}"}),
        client.post(
            "/users/7/ratings", json=[{"movie_id": 99, "rating": 4.0}], headers={"Authorization": f"Bearer {KEY}"}
        ),
        client.post("/users/7/ratings", json=RATING, headers={"Authorization": f"Bearer {KEY}x"}),
        client.get("/users/7/ratings", headers={"Authorization": f"Bearer {KEY}"}),
    ]
    assert [a.status_code for a in answers] == [201, 400, 403, 200]
    assert all(KEY not in a.get_data(as_text=True) for a in answers)
    assert KEY not in caplog.text and KEY_DIGEST not in caplog.text


def test_the_document_declares_the_bearer_scheme_on_the_keyed_routes(sqlite_client):
    document = sqlite_client.get("/openapi.json").get_json()
    assert document["components"]["securitySchemes"]["apiKey"]["type"] == "http"
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    keyed = {
        (path, method)
        for path, item in document["paths"].items()
        for method, entry in item.items()
        if entry.get("security") == [{"apiKey": []}]
    }
    assert keyed == {("/users/{user_id}/ratings", "post"), ("/users/{user_id}/ratings", "get")}
    for method in ("post", "get"):
        responses = document["paths"]["/users/{user_id}/ratings"][method]["responses"]
        assert {"401", "403"} <= set(responses)
        assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "401" not in document["paths"]["/users/{user_id}/recommendations"]["get"]["responses"]


# the one route that takes a body without changing anything: the seed's scoring call, public by contract
STATELESS_POSTS = {"/recommend"}


def test_every_route_that_can_change_state_wants_a_key(make_app, fresh_store_url):
    """Not only the documented ones: every rule of the app that accepts POST, PUT, PATCH or
    DELETE (a write route added later without the key would fail here), called with no key."""
    app = make_app(fresh_store_url, api_keys=KEY_DIGEST)
    client = app.test_client()
    writes = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"})
        if rule.rule not in STATELESS_POSTS
    ]
    assert writes, "the app has no write route: the feedback route is gone?"
    for rule, method in writes:
        path = rule.rule.replace("<user_id>", "7").replace("<movie_id>", "1")
        assert "<" not in path, f"give {rule.rule} a value for its variables here"
        response = client.open(path, method=method, json=RATING)
        assert response.status_code == 401, f"{method} {rule.rule} answered {response.status_code} without a key"
