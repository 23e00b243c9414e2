"""Request parsing and response helpers shared by the REST blueprints.

Every JSON body and query string passes the same checks before a schema sees it (docs/
errors.md): at most MAX_JSON_DEPTH levels of nesting, and no text the database cannot store
(NUL characters, lone surrogates). The size cap is applied to the stream, before any parsing
(`limit_request_body`).
"""

from __future__ import annotations

import io
from typing import Any

from flask import current_app, request
from marshmallow import Schema
from sqlalchemy import Select, func, select

from helpdesk import strict_json
from helpdesk.connectors import get_connector
from helpdesk.errors import ApiError, Invalid
from helpdesk.extensions import db

MAX_JSON_DEPTH = 32
UNSTORABLE = "must not contain NUL characters or lone surrogates"


def storable(text: str) -> bool:
    """Text the database can hold: no NUL, no lone surrogate (what `\\ud800` decodes to)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def limit_request_body() -> None:
    """Before every request: cap the body read from the stream, chunked bodies included
    (werkzeug answers 413 as soon as a read goes past the cap)."""
    limit = body_limit((request.view_args or {}).get("provider", "")
                       if request.blueprint == "webhooks" else None)
    request.max_content_length = limit
    if request.content_length is None and "wsgi.input_terminated" in request.environ:
        _buffer_chunked_body(limit)


def _buffer_chunked_body(limit: int) -> None:
    """werkzeug checks only a declared Content-Length, and silently truncates a chunked body
    at the cap: read it here, at most one byte past the cap. Over the cap, the request then
    declares that length, so reading its body is a 413 at the step that reads it, as for a
    declared Content-Length: after authentication, and for webhooks after the channel's
    404 and 429 (API.md's order)."""
    environ = request.environ
    stream, chunks, size = environ["wsgi.input"], [], 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    environ["wsgi.input"] = io.BytesIO(b"".join(chunks))
    environ["CONTENT_LENGTH"] = str(size)
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)


def body_limit(provider: str | None = None) -> int:
    """The largest body a request may carry: HELPDESK_MAX_EMAIL_BYTES for an email
    provider's webhooks, HELPDESK_MAX_WEBHOOK_BYTES for everything else."""
    connector = get_connector(provider) if provider else None
    return current_app.config["MAX_EMAIL_BYTES" if connector and connector.is_email
                              else "MAX_WEBHOOK_BYTES"]


def json_body(schema: Schema, *, optional: bool = False) -> dict[str, Any]:
    """Load the JSON body with `schema`: 415 not JSON, 413 too large, 400 malformed/invalid
    (also for a request that sent no body and no type: its required fields are missing).
    `optional`: a JSON request without a body (every field optional) is `{}` (JSON still:
    any other type is a "simple" cross-origin request, which browsers send from any page
    without asking the CORS preflight)."""
    if not request.is_json:
        unsupported = ApiError(415, "send Content-Type: application/json",
                               "unsupported_media_type")
        if request.content_type or optional or request.get_data(cache=True):
            raise unsupported  # (a typed body is not read: its type is wrong, whatever size)
        # Nothing sent at all (no body, no type) where fields are required: the fields are
        # missing (400 naming them), not of a wrong type. Where none is required (a PATCH,
        # a chat session) it stays a 415: that request would act on nothing.
        schema.load({})
        raise unsupported
    raw = request.get_data(cache=True)
    if optional and not raw:
        return schema.load({})
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object", "validation_error")
    return schema.load(data)


def parse_json(raw: bytes) -> Any:
    """JSON that passes the common checks (400 otherwise, naming the offending fields)."""
    try:
        data = strict_json.loads(raw)
    except RecursionError as exc:
        raise _too_deep() from exc
    except ValueError as exc:
        raise ApiError(400, f"body is not valid JSON: {str(exc)[:200]}", "malformed_json") from exc
    bad = _unstorable_fields(data)
    if bad:
        raise Invalid("invalid input", {name: [UNSTORABLE] for name in bad})
    return data


def _too_deep() -> ApiError:
    return ApiError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "malformed_json")


def _unstorable_fields(data: Any) -> list[str]:
    """Top-level field names (or `_body`) holding unstorable text; iterative, depth-bounded."""
    bad: list[str] = []
    stack: list[tuple[Any, int, str]] = [(data, 0, "_body")]
    while stack:
        value, depth, field = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, str):
            if not storable(value) and field not in bad:
                bad.append(field)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = key if depth == 0 else field
                if not storable(key) and name not in bad:
                    bad.append(name if storable(name) else "_body")
                stack.append((item, depth + 1, name if storable(name) else "_body"))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, field) for item in value)
    return bad


def query_args(schema: Schema) -> dict[str, Any]:
    args = request.args.to_dict()
    bad = [name if storable(name) else "_query" for name, value in args.items()
           if not (storable(name) and storable(value))]
    if bad:
        raise Invalid("invalid query", {name: [UNSTORABLE] for name in bad})
    return schema.load(args)


def paginate(query: Select, page: int, per_page: int, schema: Schema) -> dict[str, Any]:
    total = db.session.execute(
        select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).scalars()
    return {"items": schema.dump(list(rows), many=True), "page": page, "per_page": per_page,
            "total": total}


def page_of(items: list, page: int, per_page: int) -> dict[str, Any]:
    start = (page - 1) * per_page
    return {"items": items[start:start + per_page], "page": page, "per_page": per_page,
            "total": len(items)}
