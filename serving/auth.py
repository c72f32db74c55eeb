"""API keys for the routes that change state (and for reads of a user's own ratings).

A client sends `Authorization: Bearer <key>`.  The server knows only each accepted key's
SHA-256 hex digest (MOVIEREC_API_KEYS, MOVIEREC_API_KEYS_FILE; see movierec.config), so a
leaked configuration, log or `movierec config` output gives no usable key.  The presented
key is hashed and compared with every configured digest by `hmac.compare_digest`, all of
them every time, so how long the check takes says nothing about which digest, or how much
of one, matched.

    missing or malformed header -> 401 (WWW-Authenticate: Bearer)
    a key that is not accepted  -> 403
    no key configured at all    -> 403: keyed routes are off on this server, not open

`@require_key()` goes between the route and `@operation`, so a request is authenticated
before its body is read or validated; it also marks the operation for /openapi.json.
The key itself is never logged or echoed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from flask import current_app, request

from serving.errors import ApiError

EXTENSION = "movierec.api_keys"  # app.extensions entry: the accepted digests, read once by create_app
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="movierec"'}
SETTINGS_HINT = "MOVIEREC_API_KEYS / MOVIEREC_API_KEYS_FILE"


def digest(key: str) -> str:
    """The SHA-256 hex digest a key is configured as (what `printf %s KEY | sha256sum` prints)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, digests: Sequence[str]) -> bool:
    """Whether the key's digest is one of `digests`, compared in constant time with every one of them."""
    presented = digest(key).encode("ascii")
    matched = False
    for accepted in digests:
        # `|` and not `or`: no early exit, every digest is compared whatever the earlier ones gave
        matched |= hmac.compare_digest(presented, accepted.encode("ascii"))
    return matched


def presented_key(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header (scheme case-insensitive), else None."""
    if not header:
        return None
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or " " in key:
        return None
    return key


def check(header: str | None, digests: Sequence[str]) -> None:
    """Raise the ApiError a request with this Authorization header gets; return if its key is accepted."""
    if not digests:
        raise ApiError(
            403,
            f"this route needs an API key and none is configured on this server ({SETTINGS_HINT}): "
            "writes are disabled here",
        )
    key = presented_key(header)
    if key is None:
        raise ApiError(401, "this route needs an API key: send the header `Authorization: Bearer <key>`", CHALLENGE)
    if not key_matches(key, digests):
        raise ApiError(403, "the API key is not accepted by this server")


def require_key() -> Callable[[Callable], Callable]:
    """A view decorator: the request must carry an accepted API key (401 / 403 otherwise).

    Place it under the route decorator and above `@operation`; the operation is marked as
    keyed, so /openapi.json documents the bearer scheme and the 401 and 403 answers."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def keyed(*args: Any, **kwargs: Any) -> Any:
            check(request.headers.get("Authorization"), current_app.extensions.get(EXTENSION, ()))
            return view(*args, **kwargs)

        op = getattr(view, "openapi", None)
        if op is not None:
            keyed.openapi = dataclasses.replace(op, keyed=True)  # type: ignore[attr-defined]
        return keyed

    return decorate
