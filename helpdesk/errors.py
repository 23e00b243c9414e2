"""JSON errors, always: `{"error": {"code", "message", "fields"}}` (`fields` empty unless the
error names fields)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from marshmallow import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large",
              415: "unsupported_media_type", 416: "range_not_satisfiable",
              422: "unprocessable", 429: "rate_limited",
              503: "unavailable"}


def dependency_down(exc: BaseException) -> bool:
    """Redis or the database not answering (unreachable, timed out, a connection lost or
    refused): a client may retry; not a bug in the request (a DataError from bad input is)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated
                                            or isinstance(exc, OperationalError))


class ApiError(Exception):
    """An error a client caused or must know about; rendered as JSON with `status`."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 fields: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or HTTP_CODES.get(status, "error")
        self.fields = fields
        self.headers = headers or {}


# Domain errors: what services raise. Each knows the status the API answers it with, so
# services never build HTTP errors themselves.


class Invalid(ApiError):
    """Input that is well-formed but not acceptable here (400 `validation_error`)."""

    def __init__(self, message: str, fields: dict[str, Any]):
        super().__init__(400, message, "validation_error", fields)


class Unauthorized(ApiError):
    def __init__(self, message: str, code: str = "unauthorized",
                 headers: dict[str, str] | None = None):
        super().__init__(401, message, code, headers=headers)


class Forbidden(ApiError):
    def __init__(self, message: str):
        super().__init__(403, message, "forbidden")


class NotFound(ApiError):
    def __init__(self, what: str = "resource"):
        super().__init__(404, f"{what} not found", "not_found")


class Conflict(ApiError):
    def __init__(self, message: str, code: str = "conflict"):
        super().__init__(409, message, code)


class Unprocessable(ApiError):
    def __init__(self, message: str, code: str = "unprocessable"):
        super().__init__(422, message, code)


def error_body(code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    """The one shape of every error, REST and Socket.IO acknowledgements alike: `fields`
    always (empty unless named fields were wrong)."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(status: int, code: str, message: str, fields: dict | None = None,
                   headers: dict | None = None):
    response = jsonify(error_body(code, message, fields))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError):
        fields = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return error_response(400, "validation_error", "invalid input", fields)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        from flask import request

        limit = request.max_content_length
        return error_response(413, "too_large", f"body larger than {limit} bytes")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        allow = dict(exc.get_headers()).get("Allow")  # a 405 names the methods it takes
        return error_response(status, HTTP_CODES.get(status, "error"),
                              exc.description or exc.name,
                              headers={"Allow": allow} if allow else None)

    @app.errorhandler(RedisError)
    def _redis_error(exc: RedisError):
        # Redis down or unreachable (presence, work sessions, rate limits, the token cache
        # read it): a dependency is down, not a bug in the request.
        if not dependency_down(exc):
            return _unexpected(exc)
        log.warning("redis unavailable: %s", type(exc).__name__)
        return error_response(503, "unavailable", "Redis is not answering; retry",
                              headers={"Retry-After": "1"})

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        # A lost connection (the server restarted, failed over, or killed our backend) or
        # one refused: the pool has dropped it, and the client may retry. Only those: a
        # DataError from bad input is a bug to see, not an outage.
        if not dependency_down(exc):
            return _unexpected(exc)
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        from helpdesk.extensions import db

        db.session.rollback()  # let go of the dead connection before teardown uses the session
        return error_response(503, "unavailable", "the database is not answering; retry",
                              headers={"Retry-After": "1"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
