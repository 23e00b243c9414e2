"""The registry of connectors: one module per provider, registered here and only here."""

from __future__ import annotations

from helpdesk.connectors.base import Connector

_REGISTRY: dict[str, Connector] = {}
_loaded = False


def register(connector: type[Connector]) -> type[Connector]:
    _REGISTRY[connector.provider] = connector()
    return connector


def get_connector(provider: str) -> Connector | None:
    _load()
    return _REGISTRY.get(provider)


def providers() -> dict[str, Connector]:
    _load()
    return dict(_REGISTRY)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from helpdesk.connectors import (  # noqa: F401
        api,
        mailgun,
        meta,
        postmark,
        raw_mime,
        sendgrid,
        telegram,
        twilio,
        widget,
        x,
    )
