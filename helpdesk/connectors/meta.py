"""`meta`: Meta's webhooks for WhatsApp Cloud, Messenger and Instagram messaging.

One delivery may batch many updates (`entry[]`, `changes[]`, `messaging[]`), from several
customers; each becomes its own event.
"""

from __future__ import annotations

import hashlib

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    ChannelConfig,
    Connector,
    HandshakeResponse,
    InboundEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
    body_hash,
    hmac_hex,
    same,
)
from helpdesk.connectors.meta_events import messaging_events, whatsapp_events
from helpdesk.connectors.payload import child, load_object, objects, strings, text

_OBJECTS = {"whatsapp_business_account", "page", "instagram"}


def sign(app_secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256`: `sha256=` + hex HMAC-SHA256(app secret, raw body)."""
    return "sha256=" + hmac_hex(app_secret, body)


@register
class MetaConnector(Connector):
    provider = "meta"
    kinds = frozenset({"whatsapp", "messenger", "instagram"})
    required_secrets = frozenset({"app_secret", "verify_token", "access_token"})
    # Which one applies depends on the channel's kind, so none is required here.
    optional_settings = frozenset({"phone_number_id", "page_id", "instagram_account_id"})

    def handshake(self, channel: ChannelConfig, request: WebhookRequest) -> HandshakeResponse:
        """Meta's subscription check: echo `hub.challenge` when `hub.verify_token` is ours."""
        expected = str(channel.secrets.get("verify_token") or "")
        given = request.query.get("hub.verify_token") or ""
        if (request.query.get("hub.mode") != "subscribe" or not expected
                or not same(expected, given)):
            return HandshakeResponse(403, {"error": {"code": "forbidden",
                                                     "message": "wrong verify token",
                                                     "fields": {}}},
                                     "application/json")
        return HandshakeResponse(200, request.query.get("hub.challenge") or "", "text/plain")

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        secret = str(channel.secrets.get("app_secret") or "")
        given = request.header("X-Hub-Signature-256").strip().lower()
        if not secret or not given:
            raise VerificationError("missing X-Hub-Signature-256")
        if not same(sign(secret, request.body), given):
            raise VerificationError("X-Hub-Signature-256 mismatch")

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        # Meta has no delivery id and may re-batch retries. The key names what the body
        # carries: every message id (wamid / mid), every status as id + status, every
        # receipt, sorted and hashed; a retry of the same updates gets the same key however
        # it is serialized, and any new update changes it. Bodies with none of these
        # (reactions, edits, other fields) fall back to the body hash.
        ids = sorted(_update_ids(_payload(request.body)))
        if not ids:
            return body_hash(request.body)
        return "meta:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        data = _payload(raw.body)
        events: list[InboundEvent] = []
        for entry in objects(data, "entry"):
            if data["object"] == "whatsapp_business_account":
                for change in objects(entry, "changes"):
                    events += whatsapp_events(child(change, "value"))
            else:
                identity_kind = "messenger" if data["object"] == "page" else "instagram"
                for item in objects(entry, "messaging"):
                    events += messaging_events(item, identity_kind)
        return events


def _payload(body: bytes) -> dict:
    data = load_object(body)
    if text(data, "object") not in _OBJECTS:
        raise PayloadError(f"object must be one of {sorted(_OBJECTS)}")
    if not objects(data, "entry"):
        raise PayloadError("entry must be a non-empty list")
    return data


def _update_ids(data: dict) -> list[str]:
    """The ids of every update in the body (see `dedupe_key`)."""
    ids: list[str] = []
    for entry in objects(data, "entry"):
        for change in objects(entry, "changes"):
            value = child(change, "value")
            ids += ["message:" + str(text(m, "id")) for m in objects(value, "messages")]
            ids += [f"status:{text(s, 'id')}:{text(s, 'status')}"
                    for s in objects(value, "statuses")]
        for item in objects(entry, "messaging"):
            ids += _messaging_ids(item)
    return ids


def _messaging_ids(item: dict) -> list[str]:
    ids = []
    for key in ("message", "postback", "message_edit", "reaction"):
        mid = text(child(item, key), "mid")
        if mid:
            ids.append(f"{key}:{mid}:{text(child(item, key), 'num_edit') or ''}")
    delivery = child(item, "delivery")
    ids += ["delivery:" + mid for mid in strings(delivery, "mids")]
    if delivery and not strings(delivery, "mids"):  # a watermark alone
        ids.append(f"delivery:{text(child(item, 'sender'), 'id')}:{text(delivery, 'watermark')}")
    read = child(item, "read")
    if read:
        ids.append(f"read:{text(child(item, 'sender'), 'id')}:{text(read, 'watermark')}"
                   f":{text(read, 'mid')}")
    return ids
