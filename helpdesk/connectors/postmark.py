"""`postmark`: Postmark's inbound webhook, one email as JSON per request."""

from __future__ import annotations

import base64
import binascii
from email.utils import formataddr

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    ChannelConfig,
    Connector,
    InboundEvent,
    PayloadError,
    WebhookRequest,
    require_basic_auth,
)
from helpdesk.connectors.email_fields import EmailFields, parsed_email
from helpdesk.connectors.mime import ParsedAttachment, parse_email
from helpdesk.connectors.payload import child, load_object, objects, text
from helpdesk.connectors.raw_mime import email_event

# Top-level fields that Postmark lifts out of `Headers`, put back as the headers they were.
_TOP_HEADERS = (("To", "To"), ("Cc", "Cc"), ("Subject", "Subject"), ("Date", "Date"),
                ("ReplyTo", "Reply-To"))


@register
class PostmarkConnector(Connector):
    provider = "postmark"
    kinds = frozenset({"email"})
    optional_secrets = frozenset({"basic_auth_user", "basic_auth_password"})
    optional_settings = frozenset({"address"})
    is_email = True

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        require_basic_auth(channel, request)

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        # Postmark's own id: its retries repeat it (the RFC Message-ID is in `Headers`).
        return "message:" + text(load_object(request.body), "MessageID", required=True)

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        data = load_object(raw.body)
        postmark_id = text(data, "MessageID", required=True)
        raw_email = data.get("RawEmail")
        if isinstance(raw_email, str) and raw_email.strip():  # only with RawEmailEnabled
            parsed = parse_email(raw_email.encode("utf-8", "replace"))
        else:
            parsed = parsed_email(_fields(data, postmark_id))
        if not parsed.from_address:
            raise PayloadError("the email has no usable From address")
        return [email_event(parsed)]


def _fields(data: dict, postmark_id: str) -> EmailFields:
    return EmailFields(
        headers=_headers(data),
        text=text(data, "TextBody"),
        stripped=text(data, "StrippedTextReply"),
        html=text(data, "HtmlBody"),
        attachments=[_attachment(item, index)
                     for index, item in enumerate(objects(data, "Attachments"), start=1)],
        fallback_id=f"postmark:{postmark_id}",
    )


def _headers(data: dict) -> list[tuple[str, str]]:
    """The original headers: the lifted top-level fields, then everything in `Headers`."""
    pairs = [("From", _sender(data))]
    pairs += [(header, value) for key, header in _TOP_HEADERS
              if (value := text(data, key)) is not None]
    lifted = {"from", "to", "cc", "subject", "date", "reply-to"}
    for item in objects(data, "Headers"):
        name, value = text(item, "Name"), text(item, "Value") or ""
        if name and name.lower() not in lifted:
            pairs.append((name, value))
    return pairs


def _sender(data: dict) -> str:
    full = child(data, "FromFull")
    address = text(full, "Email")
    if not address:
        return text(data, "From", required=True)
    try:
        return formataddr((text(full, "Name") or text(data, "FromName") or "", address))
    except UnicodeError:  # a non-ASCII address (RFC 6532): the parser reads it raw
        return address


def _attachment(item: dict, index: int) -> ParsedAttachment:
    content_id = text(item, "ContentID")
    try:
        content = base64.b64decode(text(item, "Content") or "", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"Attachments[{index}].Content is not base64") from exc
    return ParsedAttachment(
        filename=text(item, "Name") or f"attachment-{index}",
        content_type=text(item, "ContentType") or "application/octet-stream",
        content=content, content_id=content_id, inline=bool(content_id))
