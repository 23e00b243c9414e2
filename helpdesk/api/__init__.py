"""HTTP: parse, authorize, call a service, serialize. One module per resource."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter

from helpdesk.schemas.inputs import MAX_ID


class RowIdConverter(IntegerConverter):
    """`<int:…>` in our routes (all of them ids): an id beyond what an id column holds
    matches the route as an id no row has (0), so the request is authenticated first and
    then answered 404 like any unknown id, instead of 404 before its token is looked at
    (or an "integer out of range" from the database)."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number <= MAX_ID else 0


def init_app(app: Flask) -> None:
    from helpdesk.api import (  # noqa: F401
        admin,
        attachments,
        audit,
        auth,
        channels,
        chat,
        common,
        customers,
        deliveries,
        health,
        metrics,
        openapi,
        queue,
        surveys,
        teams,
        tickets,
        v1,
        webhooks,
    )

    app.url_map.converters["int"] = RowIdConverter
    app.before_request(common.limit_request_body)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(surveys.bp)
    app.register_blueprint(v1.bp)
