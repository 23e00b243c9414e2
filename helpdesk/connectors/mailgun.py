"""`mailgun`: Mailgun routes' `forward()`, parsed fields or raw MIME (`body-mime`)."""

from __future__ import annotations

import json
import time

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    ChannelConfig,
    Connector,
    InboundEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
    body_hash,
    hmac_hex,
    same,
)
from helpdesk.connectors.email_fields import EmailFields, form_email_event
from helpdesk.connectors.forms import Form, FormPart, parse_form
from helpdesk.connectors.mime import ParsedAttachment
from helpdesk.connectors.raw_mime import message_id_of

WINDOW_SECONDS = 300
# Headers Mailgun also posts as fields of their own; read when `message-headers` is unusable.
_HEADER_FIELDS = ("Message-Id", "In-Reply-To", "References", "Date", "To", "Cc", "Reply-To",
                  "Auto-Submitted", "Precedence", "X-Autoreply", "Return-Path")


def sign(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's `signature`: hex HMAC-SHA256(signing key, timestamp + token)."""
    return hmac_hex(signing_key, (timestamp + token).encode())


@register
class MailgunConnector(Connector):
    provider = "mailgun"
    kinds = frozenset({"email"})
    required_secrets = frozenset({"signing_key"})
    optional_settings = frozenset({"address"})
    content_types = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
    is_email = True

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        try:
            form = parse_form(request)
        except PayloadError as exc:
            raise VerificationError("unreadable form: no signature to check") from exc
        timestamp, token = form.get("timestamp") or "", form.get("token") or ""
        signature = form.get("signature") or ""
        if not (timestamp and token and signature):
            raise VerificationError("missing timestamp, token or signature")
        try:
            age = abs(time.time() - int(timestamp))
        except (ValueError, OverflowError) as exc:  # OverflowError: 400 digits
            raise VerificationError("timestamp is not Unix seconds") from exc
        if age > WINDOW_SECONDS:
            raise VerificationError("timestamp outside the 5-minute window")
        key = str(channel.secrets.get("signing_key") or "")
        if not key or not same(sign(key, timestamp, token), signature.strip().lower()):
            raise VerificationError("signature mismatch")

    def replay_token(self, channel: ChannelConfig, request: WebhookRequest) -> str | None:
        # The signature covers only timestamp + token, not the fields: a replayed triple
        # verifies with any body, so the pipeline must refuse a token it has seen.
        try:
            return parse_form(request).get("token") or None
        except PayloadError:
            return None

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        form = parse_form(request)
        message_id = _message_id(form)
        return f"message-id:{message_id}" if message_id else body_hash(request.body)

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        return [form_email_event(parse_form(raw), "body-mime", _fields)]


def _message_id(form: Form) -> str | None:
    """The `Message-Id` field, else the one in `message-headers` (what parsing reads), else
    the raw MIME's (`body-mime`, the "store and notify" form)."""
    value = (form.get("Message-Id") or "").strip().strip("<>").strip()
    if value:
        return value
    for name, header in _headers(form):
        if name.lower() == "message-id" and (value := header.strip().strip("<>").strip()):
            return value
    mime = form.part("body-mime")
    return message_id_of(mime.data) if mime is not None else None


def _fields(form: Form) -> EmailFields:
    if not any(form.get(name) for name in ("from", "sender", "body-plain", "body-html")):
        raise PayloadError("no email fields (from, sender, body-plain, body-html)")
    return EmailFields(
        headers=_headers(form),
        text=form.get("body-plain"),
        stripped=form.get("stripped-text"),
        html=form.get("body-html"),
        attachments=[_attachment(part) for part in form.files()
                     if part.name.startswith("attachment")],
        sender=form.get("sender"),
    )


def _headers(form: Form) -> list[tuple[str, str]]:
    """`message-headers` (every header, in order), else the fields Mailgun lifts out."""
    try:
        pairs = json.loads(form.get("message-headers") or "null")
    except (ValueError, RecursionError):
        pairs = None
    if isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 and
                                       all(isinstance(v, str) for v in p) for p in pairs):
        headers = [(name, value) for name, value in pairs]
    else:
        headers = [(name, value) for name in _HEADER_FIELDS if (value := form.get(name))]
    if form.get("from") and not any(name.lower() == "from" for name, _ in headers):
        headers.insert(0, ("From", form.get("from") or ""))
    if form.get("subject") and not any(name.lower() == "subject" for name, _ in headers):
        headers.append(("Subject", form.get("subject") or ""))
    return headers


def _attachment(part: FormPart) -> ParsedAttachment:
    return ParsedAttachment(filename=part.filename or part.name,
                            content_type=part.content_type or "application/octet-stream",
                            content=part.data, content_id=None, inline=False)
