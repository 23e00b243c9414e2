"""`twilio`: Programmable Messaging (SMS, MMS, WhatsApp) and Voice webhooks, answered in TwiML.

Every Twilio callback is a signed form post to the channel's one URL. Messaging posts carry a
`MessageSid`, voice posts a `CallSid`; the voice callbacks are told apart by their parameters
(`twilio_voice.call_kind`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    AttachmentIn,
    ChannelConfig,
    Connector,
    HandshakeResponse,
    IdentityRef,
    InboundEvent,
    MessageEvent,
    PayloadError,
    StatusEvent,
    VerificationError,
    WebhookRequest,
    location_text,
    same,
)
from helpdesk.connectors.forms import parse_form
from helpdesk.connectors.payload import media_filename
from helpdesk.connectors.twilio_voice import (
    EMPTY_TWIML,
    agent_leg,
    agent_twiml,
    call_event,
    call_kind,
    dedupe_key,
    incoming_twiml,
)

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Twilio's message statuses as our delivery statuses; `received`/`receiving` are inbound.
_MESSAGE_STATUSES = {"accepted": "queued", "scheduled": "queued", "queued": "queued",
                     "sending": "queued", "sent": "sent", "delivered": "delivered",
                     "read": "read", "failed": "failed", "undelivered": "failed",
                     "canceled": "failed"}
_INBOUND_STATUSES = frozenset({"received", "receiving"})
MAX_MEDIA = 20


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1 of the URL and the sorted name+value pairs."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values)
                            for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_urls(url: str) -> list[str]:
    """The URL as received and with the default port toggled (Twilio is inconsistent)."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or (port is not None and port != default):
        return [url]
    netloc = parts.netloc.rsplit(":", 1)[0] if port else f"{parts.netloc}:{default}"
    return [url, urlunsplit(parts._replace(netloc=netloc))]


def form_params(request: WebhookRequest) -> dict[str, str]:
    """The posted parameters, first value of each."""
    params: dict[str, str] = {}
    for name, value in parse_form(request).pairs():
        params.setdefault(name, value)
    return params


def _is_call(params: Mapping[str, str]) -> bool:
    return bool(params.get("CallSid")) and not params.get("MessageSid")


@register
class TwilioConnector(Connector):
    provider = "twilio"
    kinds = frozenset({"sms", "whatsapp", "voice"})
    required_secrets = frozenset({"auth_token"})
    required_settings = frozenset({"account_sid", "phone_number"})
    content_types = frozenset({"application/x-www-form-urlencoded"})

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        token = str(channel.secrets.get("auth_token") or "")
        given = request.header("X-Twilio-Signature").strip()
        if not token or not given:
            raise VerificationError("missing X-Twilio-Signature")
        try:
            pairs = parse_form(request).pairs()
        except PayloadError as exc:
            raise VerificationError("unreadable form: no signature to check") from exc
        if not any([same(signature(token, url, pairs), given)
                    for url in signed_urls(request.url)]):
            raise VerificationError("X-Twilio-Signature mismatch")

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        params = form_params(request)
        if _is_call(params):
            return dedupe_key(params)
        sid = _message_sid(params)
        status = params.get("MessageStatus") or ""
        if status and status not in _INBOUND_STATUSES:
            return f"status:{sid}:{status}"
        return f"message:{sid}"

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        params = form_params(raw)
        if _is_call(params):
            return [call_event(params, raw.query)]
        status = params.get("MessageStatus") or ""
        if status and status not in _INBOUND_STATUSES:
            return [_status_event(params)] if status in _MESSAGE_STATUSES else []
        return [_message_event(params)]

    def acknowledge(self, channel: ChannelConfig, request: WebhookRequest,
                    context: Mapping[str, Any]) -> HandshakeResponse:
        """TwiML: a caller is queued or sent to voicemail, an agent's softphone is connected
        to the next caller; the rest get `<Response/>`."""
        try:
            params = form_params(request)
        except PayloadError:
            params = {}
        twiml = EMPTY_TWIML
        kind = call_kind(params) if _is_call(params) else None
        if kind == "incoming":
            twiml = incoming_twiml(request.url, bool(context.get("agents_online")))
        elif kind == "agent_leg" and (params.get("CallStatus") or "") in ("ringing", "queued"):
            twiml = agent_twiml(request.url, agent_leg(params))
        return HandshakeResponse(200, twiml, "text/xml")


def _message_sid(params: Mapping[str, str]) -> str:
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid:
        raise PayloadError("MessageSid is required")
    return sid


def _status_event(params: Mapping[str, str]) -> StatusEvent:
    status = _MESSAGE_STATUSES[params.get("MessageStatus") or ""]
    error = None
    if status == "failed":
        code = params.get("ErrorCode") or "unknown"
        detail = params.get("ErrorMessage")
        error = f"Twilio error {code}" + (f": {detail}" if detail else "")
    return StatusEvent(external_id=_message_sid(params), status=status, error=error)


def _message_event(params: Mapping[str, str]) -> MessageEvent:
    sender = (params.get("From") or "").strip()
    if not sender:
        raise PayloadError("From is required")
    return MessageEvent(
        external_id=_message_sid(params),
        identities=[IdentityRef("phone", _phone(sender))],
        text=params.get("Body") or _location(params),
        sender_name=params.get("ProfileName") or None,
        attachments=_media(params),
    )


def _location(params: Mapping[str, str]) -> str:
    """A WhatsApp location (Latitude, Longitude, Label, Address) in words, as Meta's are;
    '' when the message is not one."""
    latitude, longitude = params.get("Latitude"), params.get("Longitude")
    if not (latitude and longitude):
        return ""
    return location_text(params.get("Label"), params.get("Address"), latitude, longitude)


def _phone(address: str) -> str:
    """`whatsapp:+E164` and bare numbers as a phone number."""
    if address.lower().startswith("whatsapp:"):
        address = address.split(":", 1)[1]
    return address.strip()


def _media(params: Mapping[str, str]) -> list[AttachmentIn]:
    try:
        count = int(params.get("NumMedia") or 0)
    except ValueError as exc:
        raise PayloadError("NumMedia is not a number") from exc
    media = []
    for index in range(max(0, min(count, MAX_MEDIA))):
        url = params.get(f"MediaUrl{index}")
        if not url:
            raise PayloadError(f"MediaUrl{index} is missing")
        content_type = params.get(f"MediaContentType{index}") or "application/octet-stream"
        stem = url.rstrip("/").rsplit("/", 1)[-1] or f"media-{index}"
        media.append(AttachmentIn(filename=media_filename(stem, content_type),
                                  content_type=content_type, size=0, url=url))
    return media
