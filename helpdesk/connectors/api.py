"""The generic `api` provider: our own signed JSON format (API.md "Webhooks")."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from helpdesk import strict_json
from helpdesk.connectors import register
from helpdesk.connectors.base import (
    AttachmentIn,
    ChannelConfig,
    Connector,
    IdentityRef,
    InboundEvent,
    MessageEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
    hmac_hex,
    same,
)
from helpdesk.connectors.payload import MAX_INTEGER

WINDOW_SECONDS = 300
PRIORITIES = ("low", "normal", "high", "urgent")  # message.priority, the sender's own flag


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, for both directions."""
    return "sha256=" + hmac_hex(secret, timestamp.encode() + b"." + body)


def load_json(body: bytes) -> Any:
    try:
        return strict_json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise PayloadError(f"body is not valid JSON: {str(exc)[:200]}") from exc


# Fields that are identifiers (or a phone number) may be JSON numbers, read as their digits;
# the others (names, addresses, bodies, file names and types) must be strings.
MAX_ATTACHMENT_SIZE = MAX_INTEGER  # the size column's range
_NUMBERS_ALLOWED = frozenset({"event_id", "id", "thread_id", "external_id", "phone"})


def _text(data: dict, key: str, where: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise PayloadError(f"{where}.{key} is required")
        return None
    allowed = str | int if key in _NUMBERS_ALLOWED else str
    if not isinstance(value, allowed) or isinstance(value, bool):
        raise PayloadError(f"{where}.{key} must be a string")
    if required and not str(value).strip():
        raise PayloadError(f"{where}.{key} must not be empty")
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON's escaped lone surrogate: no database stores it
        raise PayloadError(f"{where}.{key} is not valid Unicode (a lone surrogate)") from exc
    longest = _LONGEST.get((where, key))
    if longest is not None and len(text) > longest:
        raise PayloadError(f"{where}.{key} is longer than {longest} characters")
    return text


# What the columns hold: a longer message id was cut, and two ids alike in their first 255
# characters were one message (the second dropped as a duplicate).
_LONGEST = {("message", "id"): 255, ("message", "thread_id"): 255}


@register
class ApiConnector(Connector):
    provider = "api"
    kinds = frozenset({"api"})
    required_secrets = frozenset({"signing_secret"})
    optional_settings = frozenset({"callback_url"})
    rejects_bad_payloads = True

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        timestamp = request.header("X-Helpdesk-Timestamp")
        signature = request.header("X-Helpdesk-Signature")
        if not timestamp or not signature:
            raise VerificationError("missing X-Helpdesk-Timestamp or X-Helpdesk-Signature")
        try:
            age = abs(time.time() - int(timestamp))
        except (ValueError, OverflowError) as exc:  # OverflowError: 400 digits
            raise VerificationError("X-Helpdesk-Timestamp is not Unix seconds") from exc
        if age > WINDOW_SECONDS:
            raise VerificationError("timestamp outside the 5-minute window")
        expected = sign(channel.secrets.get("signing_secret", ""), timestamp, request.body)
        if not same(expected, signature):
            raise VerificationError("signature mismatch")

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        return "event:" + str(self._payload(request.body, channel.id)["event_id"])

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        payload = self._payload(raw.body, channel.id)
        customer, message = payload["customer"], payload["message"]
        return [MessageEvent(
            external_id=str(message["id"]),
            identities=_identities(customer, channel.id),
            text=message.get("text") or "",
            html=message.get("html"),
            sender_name=customer.get("name"),
            sent_at=_timestamp(message.get("sent_at")),
            thread_key=_text(message, "thread_id", "message"),
            sender_priority=message.get("priority") or None,
            attachments=[AttachmentIn(filename=a.get("filename") or "attachment",
                                      content_type=a.get("content_type") or
                                      "application/octet-stream",
                                      size=int(a.get("size") or 0), url=a.get("url"))
                         for a in message.get("attachments") or []],
        )]

    def _payload(self, body: bytes, channel_id: int) -> dict:
        data = load_json(body)
        if not isinstance(data, dict):
            raise PayloadError("body must be a JSON object")
        _text(data, "event_id", "body", required=True)
        if data.get("type") != "message":
            raise PayloadError("type must be 'message'")
        customer, message = data.get("customer"), data.get("message")
        if not isinstance(customer, dict):
            raise PayloadError("customer is required and must be an object")
        if not isinstance(message, dict):
            raise PayloadError("message is required and must be an object")
        for key in ("name", "email", "phone", "external_id"):
            _text(customer, key, "customer")
        if not any(customer.get(key) for key in ("email", "phone", "external_id")):
            raise PayloadError("customer needs an email, a phone or an external_id")
        if not _usable_identity(customer, channel_id):
            raise PayloadError("customer needs a valid email, phone or external_id (none "
                               "could be read: blank, not an address or a number, or longer "
                               "than an identity holds)")
        _text(message, "id", "message", required=True)
        for key in ("text", "html", "thread_id"):
            _text(message, key, "message")
        if not (message.get("text") or message.get("html") or message.get("attachments")):
            raise PayloadError("message needs text, html or attachments")
        attachments = message.get("attachments") or []
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise PayloadError("message.attachments must be a list of objects")
        for attachment in attachments:
            _attachment_url(attachment.get("url"))
            for key in ("filename", "content_type"):
                _text(attachment, key, "message.attachments[]")
            size = attachment.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                     or not 0 <= size <= MAX_ATTACHMENT_SIZE):
                raise PayloadError("message.attachments[].size must be a whole number of "
                                   f"bytes, at most {MAX_ATTACHMENT_SIZE}")
        _timestamp(message.get("sent_at"))
        if message.get("priority") not in (None, *PRIORITIES):
            raise PayloadError(f"message.priority must be one of {', '.join(PRIORITIES)}")
        return data


def _identities(customer: dict, channel_id: int) -> list[IdentityRef]:
    """The customer's identities as named: `external_id` scoped to the channel (API.md), a
    blank one left out (every customer sending `" "` would have been one person)."""
    identities = []
    for kind, key in (("email", "email"), ("phone", "phone"), ("external", "external_id")):
        value = str(customer.get(key) or "")
        if value.strip():  # (as sent: an id stored with its spaces stays that customer's)
            identities.append(IdentityRef(kind, f"{channel_id}:{value}" if kind == "external"
                                          else value))
    return identities


def _usable_identity(customer: dict, channel_id: int) -> bool:
    """Whether one of the customer's identities survives normalizing as stored (the others
    are dropped at processing, as for every channel)."""
    from helpdesk.services.ingest.identity import InvalidIdentity, normalize

    for identity in _identities(customer, channel_id):
        try:
            normalize(identity.kind, identity.value)
            return True
        except InvalidIdentity:
            continue
    return False


def _attachment_url(value: Any) -> None:
    """Only http(s) URLs: `file:`, `gopher:` and the like would make us read what we must not."""
    if value is None:
        return
    try:
        parts = urlsplit(value.strip()) if isinstance(value, str) else None
    except ValueError:  # "http://[::1/x": an IPv6 host left open
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise PayloadError("message.attachments[].url must be an http or https URL")


def _timestamp(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError("message.sent_at must be an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise PayloadError("message.sent_at needs a time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise PayloadError("message.sent_at is out of range") from exc
