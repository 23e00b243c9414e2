"""`/webhooks/<provider>/<channel_key>`: verify, store, acknowledge (DESIGN.md step 1)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from flask import Blueprint, Response, current_app, request

from helpdesk.api import rate_limit
from helpdesk.api.common import body_limit
from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    ChannelConfig,
    Connector,
    HandshakeResponse,
    PayloadError,
    VerificationError,
    WebhookRequest,
    body_hash,
)
from helpdesk.errors import ApiError, NotFound
from helpdesk.services.ingest import channel_cache, deliveries
from helpdesk.services.routing import presence

bp = Blueprint("webhooks", __name__)


def public_url() -> str:
    """The URL the provider posted to, as it signed it: `HELPDESK_PUBLIC_URL` (behind a
    proxy), else this request's scheme and host; then the path, and the query string as
    received (`request.url` decodes its percent-escapes, and Twilio signs the bytes)."""
    base = current_app.config["PUBLIC_URL"] or request.root_url.rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


def read_body(limit: int) -> bytes:
    if (request.content_length or 0) > limit:
        raise ApiError(413, f"body larger than {limit} bytes", "too_large")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, f"body larger than {limit} bytes", "too_large")
    return body


def as_response(answer: HandshakeResponse) -> Response:
    body = answer.body
    if isinstance(body, dict):
        body = json.dumps(body)
    return Response(body, status=answer.status, content_type=answer.content_type)


def webhook_request(body: bytes) -> WebhookRequest:
    return WebhookRequest(method=request.method, url=public_url(), headers=dict(request.headers),
                          body=body, content_type=request.content_type or "",
                          query=request.args.to_dict())


def _channel_and_connector(provider: str, key: str) -> tuple[ChannelConfig, Connector]:
    """The channel (404 unless it exists) once its rate limit allows one more request."""
    connector = get_connector(provider)
    config = channel_cache.lookup(provider, key) if connector else None
    if config is None:
        raise NotFound("channel")
    # The rate limit's round trip also tells whether a remembered channel is still current.
    version = rate_limit.check(f"webhook:{config.id}", current_app.config["WEBHOOK_RATE"],
                               read=channel_cache.VERSION)
    config = channel_cache.confirm(provider, key, version)
    if config is None:
        raise NotFound("channel")
    return config, connector


@bp.get("/webhooks/<provider>/<key>")
def handshake(provider: str, key: str) -> Response:
    config, connector = _channel_and_connector(provider, key)
    return as_response(connector.handshake(config, webhook_request(b"")))


@bp.post("/webhooks/<provider>/<key>")
def receive(provider: str, key: str) -> Response:
    config, connector = _channel_and_connector(provider, key)
    body = read_body(body_limit(provider))
    if request.mimetype not in connector.content_types:
        raise ApiError(415, f"{provider} takes {', '.join(sorted(connector.content_types))}",
                       "unsupported_media_type")
    incoming = webhook_request(body)
    try:
        connector.verify(config, incoming)
    except VerificationError as exc:
        raise ApiError(401, f"webhook verification failed: {exc}", "bad_signature") from exc
    key = dedupe_key(connector, config, incoming)
    token = connector.replay_token(config, incoming)
    if token is not None and not deliveries.replay_token_fresh(config, token, key):
        raise ApiError(401, "webhook verification failed: token seen before", "replayed_token")
    deliveries.store(config, incoming, key, replay_token=token)
    return as_response(connector.acknowledge(config, incoming, AckContext()))


class AckContext(Mapping):
    """What a connector may ask about when answering (computed only if asked)."""

    _loaders: ClassVar[dict[str, Callable[[], Any]]] = {
        "agents_online": lambda: bool(presence.online_agent_ids()),
    }

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            self._values[name] = self._loaders[name]()
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


def dedupe_key(connector: Connector, config, incoming: WebhookRequest) -> str:
    try:
        return connector.dedupe_key(config, incoming)
    except PayloadError as exc:
        if connector.rejects_bad_payloads:
            raise ApiError(400, str(exc), "invalid_payload") from exc
        return body_hash(incoming.body)  # stored, then quarantined as failed by the worker
