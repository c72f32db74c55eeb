"""Every error becomes one JSON shape: {"status": 400, "error": "Bad Request", "message": "..."}.

Bad input is a 4xx that says what is wrong; an unexpected failure is a 500 that says
nothing about the code (the traceback goes to the log, not to the client).  What a request
may contain is declared in serving/models.py; `models.explain` turns a model's complaint
into the message of a 400 (see serving/openapi.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, jsonify
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 200, with a message for the client."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def unavailable(message: str, retry_after: int) -> ApiError:
    return ApiError(503, message, {"Retry-After": str(max(1, int(retry_after)))})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None):
    response = jsonify(status=status, error=HTTP_STATUS_CODES.get(status, "Error"), message=message)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.message, err.headers)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        if isinstance(err, InternalServerError):
            return _unexpected(err.original_exception or err)
        message = err.description or HTTP_STATUS_CODES.get(err.code or 500, "")
        headers = {k: v for k, v in err.get_headers() if k.lower() in {"allow", "retry-after"}}
        return error_response(err.code or 500, message, headers)

    @app.errorhandler(DBAPIError)
    def _store_error(err: DBAPIError):
        log.error("store error", exc_info=err)
        return error_response(
            503, f"the store is unreachable or not ready ({type(err.orig).__name__})", {"Retry-After": "5"}
        )

    @app.errorhandler(Exception)
    def _unexpected(err: BaseException):
        log.error("unhandled error", exc_info=err)
        return error_response(500, "internal error; the server log has the details")
