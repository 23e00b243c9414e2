"""Emails that providers post already parsed (Postmark, Mailgun, SendGrid) as a `ParsedEmail`.

The header-derived facts (addresses, Message-ID, In-Reply-To, References, Date, auto-reply
markers) come from running the raw-email parser over the headers alone, so every email
provider threads and flags mail exactly like `raw_mime`; the bodies are the provider's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from helpdesk.connectors.base import MessageEvent, PayloadError
from helpdesk.connectors.forms import Form
from helpdesk.connectors.mime import (
    ParsedAttachment,
    ParsedEmail,
    bounced_ids_in_parts,
    html_to_text,
    parse_email,
    strip_quoted,
)
from helpdesk.connectors.raw_mime import email_event

# The body is not ours to decode: a transfer encoding would apply to an empty body.
_DROPPED = frozenset({"content-transfer-encoding"})
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_LINE_BREAKS = re.compile(r"[\r\n]+")


@dataclass
class EmailFields:
    """What a provider posts about one email, before it becomes a `ParsedEmail`."""

    headers: list[tuple[str, str]]
    text: str | None = None  # the whole text/plain body
    stripped: str | None = None  # the provider's own quote-stripped reply, when it has one
    html: str | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    fallback_id: str | None = None  # the provider's message id, for mail without a Message-ID
    sender: str | None = None  # a From to use when the headers have none


def header_pairs(block: bytes) -> list[tuple[str, str]]:
    """A raw header block (e.g. SendGrid's `headers` field) as (name, value) pairs."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(block.lstrip())
    return [(name, str(value)) for name, value in headers.raw_items()]


def header_block(pairs: Iterable[tuple[str, str]]) -> bytes:
    """(name, value) pairs as an RFC 5322 header block; folding and stray line breaks undone."""
    lines = []
    for name, value in pairs:
        if not _HEADER_NAME.fullmatch(name or "") or name.lower() in _DROPPED:
            continue
        lines.append(_encode(f"{name}: {_LINE_BREAKS.sub(' ', str(value))}"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _encode(line: str) -> bytes:
    try:
        return line.encode("utf-8", "surrogateescape")  # 8-bit bytes read by compat32
    except UnicodeEncodeError:
        return line.encode("utf-8", "replace")


def parsed_email(fields: EmailFields) -> ParsedEmail:
    """The email these fields describe; PayloadError when the headers name no email at all."""
    headers = list(fields.headers)
    if fields.sender and not any(name.lower() == "from" for name, _ in headers):
        headers.insert(0, ("From", fields.sender))
    parsed = parse_email(header_block(headers))
    full_text = _normalized(fields.text or (html_to_text(fields.html) if fields.html else ""))
    stripped = _normalized(fields.stripped or "")
    bounced = parsed.bounced_message_ids
    if parsed.is_bounce and not bounced:
        # Only the headers were parsed: the report's parts came as attachments, its words
        # as text (a bounce of our reply left it `sent`, and the customer unanswered).
        bounced = bounced_ids_in_parts(
            [(a.content_type, a.content or b"") for a in fields.attachments], full_text)
    return dataclasses.replace(
        parsed,
        bounced_message_ids=bounced,
        synthetic_id=parsed.message_id or fields.fallback_id or parsed.synthetic_id,
        text=stripped or (strip_quoted(full_text) if full_text else ""),
        full_text=full_text,
        html=fields.html or None,
        attachments=list(fields.attachments),
    )


def _normalized(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def form_email_event(form: Form, mime_field: str,
                     fields: Callable[[Form], EmailFields]) -> MessageEvent:
    """A form-posted email: the raw MIME part when the provider sent one, else its fields."""
    mime = form.part(mime_field)
    if mime is not None and mime.data.strip():
        parsed = parse_email(mime.data)
    else:
        parsed = parsed_email(fields(form))
    if not parsed.from_address:
        raise PayloadError("the email has no usable From address")
    return email_event(parsed)
