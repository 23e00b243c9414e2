"""What every connector shares: the request it verifies, the events it produces.

A connector turns one provider's webhook into normalized events. It knows
nothing of the database: the ingest pipeline hands it a `ChannelConfig` and a
`WebhookRequest` (plain data) and gets `InboundEvent`s back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from typing import Any, ClassVar


class VerificationError(Exception):
    """The request is not from the provider (bad or missing signature, stale timestamp)."""


class PayloadError(Exception):
    """The request is verified but its body cannot be understood."""


@dataclass(frozen=True)
class ChannelConfig:
    id: int
    kind: str
    provider: str
    key: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request as received; `url` is the public URL used for signatures."""

    method: str
    url: str
    headers: Mapping[str, str]  # case-insensitive lookups: use `header()`
    body: bytes
    content_type: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)

    def header(self, name: str, default: str = "") -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default


@dataclass
class HandshakeResponse:
    status: int
    body: str | bytes | dict
    content_type: str = "text/plain"


def storable(value: Any) -> Any:
    """Text without NUL characters: JSON (`\\u0000`) and forms (`%00`) carry them, PostgreSQL
    refuses them in text columns, and a customer's message must not be lost for one."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")
    if isinstance(value, list) and any(isinstance(item, str) and "\x00" in item
                                       for item in value):
        return [storable(item) for item in value]
    return value


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(item.name for item in fields(cls))


class _Storable:
    """What connectors hand the pipeline is storable text, whatever the provider sent."""

    def __post_init__(self) -> None:
        for name in _field_names(type(self)):
            value = getattr(self, name)
            cleaned = storable(value)
            if cleaned is not value:
                setattr(self, name, cleaned)


@dataclass
class IdentityRef(_Storable):
    """How a sender is named by the channel; the identity service normalizes `value`."""

    kind: str
    value: str
    verified: bool = True


@dataclass
class AttachmentIn(_Storable):
    filename: str
    content_type: str
    size: int
    content: bytes | None = None
    url: str | None = None


@dataclass
class InboundEvent(_Storable):
    type: ClassVar[str] = "event"


@dataclass
class MessageEvent(InboundEvent):
    """A message from a customer."""

    type: ClassVar[str] = "message"
    external_id: str
    identities: list[IdentityRef]
    text: str = ""
    html: str | None = None
    sender_name: str | None = None
    subject: str | None = None
    sent_at: datetime | None = None
    thread_key: str | None = None
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    attachments: list[AttachmentIn] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    full_text: str | None = None
    bounced_message_ids: list[str] = field(default_factory=list)
    identity_verified: bool = True
    # The sender's own priority flag (email headers, the api format's `priority`): low,
    # normal, high or urgent; an urgency factor, never the ticket's priority by itself.
    sender_priority: str | None = None
    recipients: list[str] = field(default_factory=list)  # email: To and Cc addresses
    # Email: where the sender asks replies to go (one Reply-To address other than From).
    reply_to: str | None = None


@dataclass
class StatusEvent(InboundEvent):
    """A provider's report on one of our outbound messages."""

    type: ClassVar[str] = "status"
    external_id: str
    status: str  # queued | sent | delivered | read | failed
    error: str | None = None
    at: datetime | None = None


@dataclass
class WatermarkEvent(InboundEvent):
    """A receipt that names no message (Messenger's `read`, and `delivery` without `mids`):
    every outbound message to `recipient` on the channel sent up to `up_to` reached
    `status`."""

    type: ClassVar[str] = "watermark"
    recipient: IdentityRef
    status: str  # delivered | read
    up_to: datetime


CALL_STATUS_RANK = {"queued": 0, "ringing": 1, "in-progress": 2, "completed": 3, "busy": 3,
                    "failed": 3, "no-answer": 3, "canceled": 3}


@dataclass
class CallEvent(InboundEvent):
    """One provider callback about a voice call (API.md "Voice")."""

    type: ClassVar[str] = "call"
    external_id: str  # the call's id (Twilio CallSid)
    # incoming | status | enqueue_result | dial_result | recording | transcription
    kind: str
    identities: list[IdentityRef] = field(default_factory=list)
    sender_name: str | None = None
    direction: str = "inbound"
    status: str | None = None  # the provider's call status (Twilio CallStatus)
    sequence: int | None = None  # the provider's order of status callbacks, when given
    rank: int | None = None  # CALL_STATUS_RANK of `status`: orders callbacks without `sequence`
    # answered | abandoned | voicemail | missed, when this callback alone decides it
    outcome: str | None = None
    queue_result: str | None = None
    dial_status: str | None = None
    wait_seconds: int | None = None
    call_duration: int | None = None
    dial_call_duration: int | None = None
    recording_url: str | None = None
    recording_sid: str | None = None
    transcript: str | None = None
    transcription_sid: str | None = None
    # The agent who took the call (from the `<Queue url>` dequeue callback).
    agent_id: int | None = None
    at: datetime | None = None


def hmac_hex(secret: str | bytes, payload: bytes, digest: str = "sha256") -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, payload, digest).hexdigest()


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison of two signatures."""
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def location_text(label: str | None, address: str | None, latitude: Any,
                  longitude: Any) -> str:
    """A shared location as a message's text: "Location: label · address · lat, long"
    (what WhatsApp, through Meta or Twilio, sends instead of text)."""
    both = latitude is not None and longitude is not None
    where = [label, address, f"{latitude}, {longitude}" if both else None]
    return "Location: " + " · ".join(part for part in where if part)


def body_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def require_basic_auth(channel: ChannelConfig, request: WebhookRequest) -> None:
    """When the channel has `basic_auth_user`/`basic_auth_password`, the request must match."""
    user = str(channel.secrets.get("basic_auth_user") or "")
    password = str(channel.secrets.get("basic_auth_password") or "")
    if not user and not password:
        return  # the unguessable URL key is the credential
    scheme, _, encoded = request.header("Authorization").strip().partition(" ")
    if scheme.lower() != "basic":
        raise VerificationError("missing HTTP basic auth")
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise VerificationError("unreadable HTTP basic auth") from exc
    given_user, _, given_password = given.partition(":")
    # Both compared, always, so timing does not tell which one was wrong.
    if not (same(user, given_user) & same(password, given_password)):
        raise VerificationError("wrong HTTP basic auth")


class Connector(ABC):
    """Base class: one subclass per provider, registered in `connectors/__init__.py`."""

    provider: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    required_secrets: ClassVar[frozenset[str]] = frozenset()
    optional_secrets: ClassVar[frozenset[str]] = frozenset()
    required_settings: ClassVar[frozenset[str]] = frozenset()
    optional_settings: ClassVar[frozenset[str]] = frozenset()
    content_types: ClassVar[frozenset[str]] = frozenset({"application/json"})
    is_email: ClassVar[bool] = False
    # Our own formats answer 400 for garbage; providers' get 200 and a failed delivery.
    rejects_bad_payloads: ClassVar[bool] = False

    def handshake(self, channel: ChannelConfig, request: WebhookRequest) -> HandshakeResponse:
        """Answer a GET (subscription handshakes); providers without one answer 405."""
        return HandshakeResponse(405, {"error": {"code": "method_not_allowed",
                                                 "message": "this webhook takes POST",
                                                 "fields": {}}},
                                 "application/json")

    @abstractmethod
    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        """Raise VerificationError unless the request is the provider's (401)."""

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        """The provider's event id (else a body hash); PayloadError when unreadable."""
        return body_hash(request.body)

    def replay_token(self, channel: ChannelConfig, request: WebhookRequest) -> str | None:
        """A single-use token the provider signed, for refusing replays; None when it has none."""
        return None

    @abstractmethod
    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        """The stored delivery as normalized events; any exception quarantines it."""

    def acknowledge(self, channel: ChannelConfig, request: WebhookRequest,
                    context: Mapping[str, Any]) -> HandshakeResponse:
        return HandshakeResponse(200, {"ok": True}, "application/json")
