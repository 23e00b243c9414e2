"""HTTP: parse, authorize, call a service, serialize. One module per resource."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, UnicodeConverter

from helpdesk.schemas.inputs import MAX_ID


class RowIdConverter(IntegerConverter):
    """`<int:…>` in our routes (all of them ids): an id beyond what an id column holds
    matches the route as an id no row has (0), so the request is authenticated first and
    then answered 404 like any unknown id, instead of 404 before its token is looked at
    (or an "integer out of range" from the database)."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number <= MAX_ID else 0


class NoNulConverter(UnicodeConverter):
    """`<name>` in our routes (channel keys, chat sessions, survey tokens: never a NUL): a
    `%00` in one matches no route, a 404 like any unknown key, where PostgreSQL's driver
    refused the lookup's parameter (a 500)."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        super().__init__(url_map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]")


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
    app.url_map.converters["default"] = app.url_map.converters["string"] = NoNulConverter
    app.before_request(common.limit_request_body)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(surveys.bp)
    app.register_blueprint(v1.bp)
