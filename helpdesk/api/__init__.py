"""HTTP: parse, authorize, call a service, serialize. One module per resource."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


class RowIdConverter(IntegerConverter):
    """`<int:…>` in our routes: an id beyond what an id column holds is simply not found."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


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
