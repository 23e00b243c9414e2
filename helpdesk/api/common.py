"""Request parsing and response helpers shared by the REST blueprints."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from marshmallow import Schema
from sqlalchemy import Select, func, select

from helpdesk.errors import ApiError
from helpdesk.extensions import db


def json_body(schema: Schema) -> dict[str, Any]:
    """Load the JSON body with `schema`: 415 not JSON, 413 too large, 400 malformed/invalid."""
    if not request.is_json:
        raise ApiError(415, "send Content-Type: application/json", "unsupported_media_type")
    limit = current_app.config["MAX_WEBHOOK_BYTES"]
    if (request.content_length or 0) > limit:
        raise ApiError(413, f"body larger than {limit} bytes", "too_large")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise ApiError(413, f"body larger than {limit} bytes", "too_large")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "body is not valid JSON", "malformed_json")
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object", "validation_error")
    return schema.load(data)


def query_args(schema: Schema) -> dict[str, Any]:
    return schema.load(request.args.to_dict())


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
