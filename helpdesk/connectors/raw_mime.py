"""`raw_mime`: an RFC 5322 message posted as the request body."""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    AttachmentIn,
    ChannelConfig,
    Connector,
    IdentityRef,
    InboundEvent,
    MessageEvent,
    VerificationError,
    WebhookRequest,
    body_hash,
    hmac_hex,
    same,
)
from helpdesk.connectors.mime import ParsedEmail, parse_email


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID header alone, without parsing the body."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:256 * 1024])
    value = str(headers.get("Message-ID") or "").strip().strip("<>").strip()
    return value or None


def email_event(parsed: ParsedEmail) -> MessageEvent:
    """One parsed email as a customer message (shared by every email provider)."""
    flags = []
    if parsed.is_auto_reply:
        flags.append("auto_reply")
    if parsed.is_bounce:
        flags.append("bounce")
    identities = [IdentityRef("email", parsed.from_address)] if parsed.from_address else []
    return MessageEvent(
        external_id=parsed.synthetic_id,
        identities=identities,
        text=parsed.text,
        full_text=parsed.full_text,
        html=parsed.html,
        sender_name=parsed.from_name,
        subject=parsed.subject,
        sent_at=_plausible(parsed.date),
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        attachments=[AttachmentIn(filename=a.filename, content_type=a.content_type,
                                  size=a.size, content=a.content)
                     for a in parsed.attachments],
        flags=flags,
        bounced_message_ids=parsed.bounced_message_ids,
        sender_priority=parsed.priority,
        recipients=[*parsed.to, *parsed.cc],
        reply_to=_reply_to(parsed),
    )


def _reply_to(parsed: ParsedEmail) -> str | None:
    """The one address a Reply-To names, when it is not the From (RFC 5322: where the
    author asks replies to go). Several addresses would send the reply to all of them:
    then the From it is. The customer is still who the From names."""
    if len(parsed.reply_to) != 1 or parsed.reply_to[0] == parsed.from_address:
        return None
    return parsed.reply_to[0] if len(parsed.reply_to[0]) <= 320 else None


def _plausible(date: datetime | None) -> datetime | None:
    """A Date header in the future is a wrong clock: use the time we received it."""
    if date is None or date > datetime.now(UTC):
        return None
    return date


@register
class RawMimeConnector(Connector):
    provider = "raw_mime"
    kinds = frozenset({"email"})
    optional_secrets = frozenset({"signing_secret"})
    optional_settings = frozenset({"address"})
    content_types = frozenset({"message/rfc822", "application/octet-stream", "text/plain"})
    is_email = True

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        secret = channel.secrets.get("signing_secret")
        if not secret:
            return  # the unguessable URL key is the credential
        expected = "sha256=" + hmac_hex(secret, request.body)
        if not same(expected, request.header("X-Helpdesk-Signature")):
            raise VerificationError("X-Helpdesk-Signature mismatch")

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        message_id = message_id_of(request.body)
        return f"message-id:{message_id}" if message_id else body_hash(request.body)

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        return [email_event(parse_email(raw.body))]
