"""The API fuzzed from its own OpenAPI document (schemathesis) under a real gunicorn.

Every operation of /openapi.json gets schemathesis's examples, coverage (boundaries, wrong
types, missing fields, undeclared methods) and fuzzing phases, valid and invalid data, and
every answer is held to the document: no 5xx but a documented live-scoring 503, a declared
status, a declared content type, a body matching its declared schema (error bodies
included), declared headers (Retry-After), invalid data refused with a 4xx and valid data
accepted.

The store is the known one of tests/serving/data.py and Spark cannot start in the workers
(JAVA_HOME leads nowhere, as in test_gunicorn.py): the live path answers its documented 503
with Retry-After at once, instead of a JVM per worker on two shared cores.

schemathesis runs through its engine (what `schemathesis run` drives), not its pytest
plugin: `schemathesis.pytest.from_fixture` fails on pytest 9.2 (it sets the removed
`Function._nodeid`), and loading the schema at import time would need the server before the
fixtures start it.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import json
import re
import socket
import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.specs.openapi import checks as openapi_checks

from serving.openapi import SECURITY_SCHEME
from tests.serving import data
from tests.serving.server import Served

# the key the fuzzer writes with (the server accepts its digest), so the write routes are fuzzed
# past their lock; requests schemathesis makes without it must be refused with 401
KEY = "fuzz-key-not-a-secret"

# examples per operation and phase, and a seed: the same requests on every run (about 1,000 in all)
MAX_EXAMPLES = 300
SEED = 20260112

# 400s that valid data may get: rules the document states in words but JSON Schema cannot
# (the catalogue's genres and movies belong to the run, a rating's movie to the catalogue; one genre
# list per movie id; a movie once per timestamp in one call of ratings; a timestamp at most a day
# ahead of the server's clock)
CATALOGUE_RULES = re.compile(
    r"^unknown genre |^genres_lists has \d+ entries but movieIds has \d+|^(row \d+: )?movie \d+ is not in the catalogue"
    r"|^row \d+: movie \d+ at timestamp \d+ is already given in row \d+"
    r"|^row \d+: .*a day ahead of the server's clock"
)
# the only 503 this server gives: live scoring, which cannot start Spark here
LIVE_UNAVAILABLE = re.compile(r"Spark|live scoring|live fallback", re.IGNORECASE)


@schemathesis.check
def valid_data_is_accepted(ctx, response, case):
    """schemathesis's positive_data_acceptance, except for the catalogue's rules (above)."""
    if response.status_code == 400 and CATALOGUE_RULES.search(_message(response)):
        return None
    return openapi_checks.positive_data_acceptance(ctx, response, case)


@schemathesis.check
def unavailable_only_for_live_scoring(ctx, response, case):
    """A 503 here can only be live scoring that cannot start, and says when to come back."""
    if response.status_code != 503:
        return None
    if not LIVE_UNAVAILABLE.search(_message(response)):
        raise AssertionError(f"503 that is not live scoring: {response.text[:300]}")
    if int(response.headers.get("retry-after", ["0"])[0]) < 1:
        raise AssertionError("503 without Retry-After")
    return None


def _message(response) -> str:
    try:
        return str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return ""


CONFIG = {
    "seed": SEED,
    "auth": {"openapi": {SECURITY_SCHEME: {"bearer": KEY}}},
    "request-timeout": 30,  # a request that hangs fails its case instead of the whole run
    # no example database: the same requests every run, nothing written into the tree
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
    # no links between operations (all reads), so nothing for the stateful phase
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        "enabled": False,
        # 503 is the documented answer of live scoring that cannot answer (checked just above)
        "not_a_server_error": {"enabled": True, "expected-statuses": ["2xx", "3xx", "4xx", "503"]},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        # invalid data is a 400 (a path the routes cannot match a 404, a body over 64 KiB a 413,
        # a keyed route without its Authorization header a 401)
        "negative_data_rejection": {"enabled": True, "expected-statuses": ["400", "401", "404", "405", "413"]},
        # valid data is answered; 404 (a movie not in the catalogue), 413 (500 movies with long
        # genre lists can pass 64 KiB) and the live 503 are documented answers to valid data
        "positive_data_acceptance": {"enabled": False, "expected-statuses": ["200", "201", "404", "413", "503"]},
        "valid_data_is_accepted": {"enabled": True},
        "unavailable_only_for_live_scoring": {"enabled": True},
        "unsupported_method": {"enabled": True},
    },
}


@dataclass
class Fuzzed:
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def fuzz(base_url: str) -> Fuzzed:
    """Run schemathesis's phases over every operation of the served document."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", config=schemathesis.Config.from_dict(CONFIG))
    result = Fuzzed()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    result.statuses[(recorder.label, interaction.response.status_code)] += 1
            for nodes in recorder.checks.values():
                for node in nodes:
                    if node.failure_info is not None:
                        failure = node.failure_info.failure
                        result.failures.append(
                            f"{recorder.label} [{node.name}] {failure.title}: {failure.message}\n"
                            f"    {node.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            result.errors.append(str(getattr(event, "info", None) or getattr(event, "exception", event)))
    return result


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from movierec.store.runs import engine_for

    # a store of its own: the fuzzer's ratings must not reach the session's known store
    folder = tmp_path_factory.mktemp("gunicorn-fuzz")
    url = f"sqlite:///{folder / 'store.db'}"
    engine = engine_for(url)
    data.load(engine)
    engine.dispose()
    server = Served(
        url,
        folder,
        workers=2,
        env={"JAVA_HOME": "/nonexistent/java", "MOVIEREC_API_KEYS": hashlib.sha256(KEY.encode()).hexdigest()},
    )
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 25 s here; 300 s only stops a hang
def test_every_fuzzed_answer_conforms_to_the_document(served):
    started = time.monotonic()
    result = fuzz(served.base)
    took = time.monotonic() - started
    assert not result.errors, "\n".join(result.errors)
    unique = sorted(set(result.failures))
    assert not unique, f"{len(unique)} failing checks:\n" + "\n".join(unique[:20])
    # it really went through the API: every operation, and every kind of answer
    document = json.loads(_get(served, "/openapi.json")[2])
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    # (schemathesis leaves out the document's own URL)
    assert {label for label, _ in result.statuses} == operations - {"GET /openapi.json"}
    seen = {status for _, status in result.statuses}
    assert {200, 201, 400, 401, 404, 405, 503} <= seen, result.statuses
    assert result.requests >= 500, result.statuses
    assert not any(status >= 500 and status != 503 for status in seen)
    by_status = collections.Counter()
    for (_, status), count in result.statuses.items():
        by_status[status] += count
    print(f"fuzzed {result.requests} requests in {took:.0f} s: {dict(sorted(by_status.items()))}")


# ---------------------------------------------------------------- what gunicorn answers itself


def _get(served, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def _raw(served, request: bytes) -> tuple[int, str, str]:
    """Send bytes as they are (http.client refuses malformed requests) and read the answer."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers.get("Content-Type", ""), body.decode("latin-1")


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"GET /users/1/recommendations?genre=" + b"x" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400),
        (b"G(T /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n", 400),
    ],
    ids=["long-request-line", "long-header", "malformed-header", "bad-method", "bad-version"],
)
def test_what_gunicorn_refuses_is_answered_with_the_error_body(served, request_bytes, status):
    got, content_type, body = _raw(served, request_bytes)
    assert got == status, body
    assert content_type == "application/json", body
    answer = json.loads(body)
    assert set(answer) == {"status", "error", "message"} and answer["status"] == status and answer["message"]


# ---------------------------------------------------------------- what the fuzzing found, each kept fixed


def test_a_json_number_without_fraction_is_an_integer_id(sqlite_client):
    """JSON Schema's "integer" takes 2.0, and so the document's ids did; the body's strict check refused it."""
    as_integers = sqlite_client.post("/recommend", json={"userId": 1, "movieIds": [20, 5]})
    as_floats = sqlite_client.post("/recommend", json={"userId": 1.0, "movieIds": [20.0, 5]})
    assert as_floats.status_code == 200, as_floats.get_json()
    assert as_floats.get_json() == as_integers.get_json()
    refused = sqlite_client.post("/recommend", json={"userId": 1.5, "movieIds": [20]})
    assert refused.status_code == 400 and "userId must be a non-negative integer" in refused.get_json()["message"]


def test_a_decimal_without_fraction_in_the_url_is_an_integer_too(sqlite_client):
    """The fuzzer writes path and query integers as 12.0 too (JSON Schema's integer): same answer as 12."""
    plain = sqlite_client.get("/users/1/recommendations?k=3")
    assert plain.status_code == 200
    for path in ("/users/1.0/recommendations?k=3", "/users/1/recommendations?k=3.00"):
        answer = sqlite_client.get(path)
        assert answer.status_code == 200, (path, answer.get_json())
        assert answer.get_json() == plain.get_json()
    assert sqlite_client.get("/users/1.5/recommendations").status_code == 400
    assert sqlite_client.get("/users/.0/recommendations").status_code == 400
