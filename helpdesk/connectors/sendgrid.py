"""`sendgrid`: SendGrid Inbound Parse, the default (parsed) and the raw (`email`) variants."""

from __future__ import annotations

import json

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    ChannelConfig,
    Connector,
    InboundEvent,
    PayloadError,
    WebhookRequest,
    body_hash,
    require_basic_auth,
)
from helpdesk.connectors.email_fields import EmailFields, form_email_event, header_pairs
from helpdesk.connectors.forms import Form, FormPart, parse_form
from helpdesk.connectors.mime import ParsedAttachment
from helpdesk.connectors.mime_text import decode_bytes
from helpdesk.connectors.raw_mime import message_id_of


@register
class SendgridConnector(Connector):
    provider = "sendgrid"
    kinds = frozenset({"email"})
    optional_secrets = frozenset({"basic_auth_user", "basic_auth_password"})
    optional_settings = frozenset({"address"})
    content_types = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
    is_email = True

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        require_basic_auth(channel, request)

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        # SendGrid has no event id: the email's Message-ID, from `headers` or `email`.
        form = parse_form(request)
        block = form.part("email") or form.part("headers")
        message_id = message_id_of(block.data) if block is not None else None
        return f"message-id:{message_id}" if message_id else body_hash(request.body)

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        return [form_email_event(parse_form(raw), "email", _fields)]


def _json_object(form: Form, name: str) -> dict:
    """A JSON-object field; {} when missing or unreadable (these fields only help decoding)."""
    try:
        value = json.loads(form.get(name) or "{}")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _fields(form: Form) -> EmailFields:
    headers_part = form.part("headers")
    if headers_part is not None and headers_part.data.strip():
        headers = header_pairs(headers_part.data)
    else:
        headers = [(name.capitalize(), value) for name in ("from", "to", "cc", "subject")
                   if (value := form.get(name))]
    if not headers:
        raise PayloadError("no email fields (headers, from, subject)")
    charsets = _json_object(form, "charsets")
    return EmailFields(
        headers=headers,
        text=_decoded(form.part("text"), charsets.get("text")),
        html=_decoded(form.part("html"), charsets.get("html")),
        attachments=_attachments(form),
        sender=form.get("from"),
    )


def _decoded(part: FormPart | None, charset: object) -> str | None:
    """`text`/`html` keep the sender's charset (SendGrid transcodes only the headers)."""
    if part is None:
        return None
    return decode_bytes(part.data, charset if isinstance(charset, str) else None)


def _attachments(form: Form) -> list[ParsedAttachment]:
    info = _json_object(form, "attachment-info")
    found = []
    for part in form.files():
        meta = info.get(part.name)
        meta = meta if isinstance(meta, dict) else {}
        content_id = _str(meta.get("content-id"))
        found.append(ParsedAttachment(
            filename=_str(meta.get("filename")) or part.filename or part.name,
            content_type=_str(meta.get("type")) or part.content_type or
            "application/octet-stream",
            content=part.data, content_id=content_id, inline=bool(content_id)))
    return found


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
