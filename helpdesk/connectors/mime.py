"""RFC 5322 / MIME parsing for inbound email: pure, database-free, tolerant of broken mail.

`parse_email` turns raw bytes into a `ParsedEmail`. Header values are read raw and decoded
here (8-bit bytes as UTF-8 or Windows-1252, then RFC 2047 words), so a lying or unknown
charset degrades to readable text instead of an exception. Only input that is not an email
at all raises `PayloadError`.
"""

from __future__ import annotations

import email.message
import email.policy
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesParser

from helpdesk.connectors.base import PayloadError, body_hash
from helpdesk.connectors.mime_text import (
    MAX_SUBJECT,
    decode_bytes,
    decode_words,
    fix_surrogates,
    header_value,
    html_to_text,
    message_ids,
    parse_addresses,
    parse_date,
    strip_quoted,
    unflow,
    unique,
)

__all__ = ["ParsedAttachment", "ParsedEmail", "html_to_text", "parse_email", "strip_quoted"]

# At least one of these must be present for the input to count as an email.
_MAIL_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "received", "mime-version",
    "content-type", "return-path", "delivered-to", "sender", "reply-to", "in-reply-to",
    "references", "content-transfer-encoding",
})
# Machinery of delivery/disposition reports: read for bounce data, never shown as attachments.
_REPORT_TYPES = frozenset({
    "message/delivery-status", "message/global-delivery-status", "message/rfc822-headers",
    "message/global-headers", "text/rfc822-headers", "message/disposition-notification",
})
_ORIGINAL_TYPES = frozenset({
    "message/rfc822", "message/global", "message/rfc822-headers", "message/global-headers",
})
_TYPES = mimetypes.MimeTypes()  # built-in table only: deterministic across hosts
_EXTENSIONS = {"text/calendar": ".ics", "message/global": ".eml", "text/vcard": ".vcf"}
_GENERATOR_POLICY = email.policy.compat32.clone(mangle_from_=False)


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str | None
    inline: bool

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class ParsedEmail:
    message_id: str | None
    synthetic_id: str
    subject: str
    from_address: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    date: datetime | None
    in_reply_to: list[str]
    references: list[str]
    text: str
    full_text: str
    html: str | None
    attachments: list[ParsedAttachment]
    is_auto_reply: bool
    is_bounce: bool
    bounced_message_ids: list[str]
    headers: dict[str, str]
    priority: str | None = None  # the sender's flag (Priority, Importance, X-Priority)


@dataclass
class _Body:
    texts: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    has_plain: bool = False


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse one RFC 5322 message; raise PayloadError only when `raw` is not an email at all.

    `compat32` is tried first: every header is read raw and decoded here, so the modern
    policy's header objects only cost time (it re-parses Content-Type on every look: 2.0 ms
    a mail against 0.67 ms for the burst corpus of bench/burst.py, with the same result on
    it and on every sample mail). If anything raises on a malformed message, the message is
    re-parsed with `email.policy.default` and extracted again.
    """
    raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    if not raw.strip():
        raise PayloadError("empty email")
    try:
        return _extract(BytesParser(policy=email.policy.compat32).parsebytes(raw), raw)
    except PayloadError:
        raise
    except Exception:  # noqa: BLE001 - garbage may still make either policy raise
        pass
    try:
        return _extract(BytesParser(policy=email.policy.default).parsebytes(raw), raw)
    except PayloadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise PayloadError(f"unparseable email: {exc}") from exc


def _extract(msg: Message, raw: bytes) -> ParsedEmail:
    if not any(name.lower() in _MAIL_HEADERS for name, _ in msg.raw_items()):
        raise PayloadError("no email headers found")
    senders = parse_addresses(_raw_values(msg, "from"))
    own_ids = message_ids(_raw_values(msg, "message-id"))
    leaves = list(_leaves(msg))
    body = _Body()
    _collect(msg, body)
    full_text = "\n\n".join(t.strip("\n") for t in body.texts if t.strip()).strip()
    bounce = _is_bounce(msg, leaves, senders[0][1] if senders else None)
    return ParsedEmail(
        message_id=own_ids[0] if own_ids else None,
        synthetic_id=own_ids[0] if own_ids else body_hash(raw),
        subject=" ".join(decode_words(_header(msg, "subject") or "").split())[:MAX_SUBJECT],
        from_address=senders[0][1] if senders else None,
        from_name=(senders[0][0] or None) if senders else None,
        to=_emails(msg, "to"),
        cc=_emails(msg, "cc"),
        reply_to=_emails(msg, "reply-to"),
        date=parse_date(_header(msg, "date")),
        in_reply_to=message_ids(_raw_values(msg, "in-reply-to")),
        references=message_ids(_raw_values(msg, "references")),
        text=strip_quoted(full_text) if full_text else "",
        full_text=full_text,
        html="\n".join(body.html) if body.html else None,
        attachments=[_attachment(p, i) for i, p in enumerate(filter(_is_attachment, leaves), 1)],
        is_auto_reply=_is_auto_reply(msg),
        is_bounce=bounce,
        bounced_message_ids=_bounced_ids(leaves, full_text) if bounce else [],
        headers=_display_headers(msg),
        priority=sender_priority(msg),
    )


# --- headers ---------------------------------------------------------------------------------

def _raw_values(msg: Message, name: str) -> list[str]:
    return [header_value(str(value)) for key, value in msg.raw_items() if key.lower() == name]


def _header(msg: Message, name: str) -> str | None:
    values = _raw_values(msg, name)
    return values[0] if values else None


def _display_headers(msg: Message) -> dict[str, str]:
    values = {name: _header(msg, name) for name in ("from", "to", "cc", "reply-to", "subject",
                                                     "date")}
    return {name: decode_words(value).strip() for name, value in values.items() if value}


def _emails(msg: Message, name: str) -> list[str]:
    return unique(addr for _, addr in parse_addresses(_raw_values(msg, name)))


def _first_word(value: str) -> str:
    return re.split(r"[\s;(]", value.strip().lower(), maxsplit=1)[0]


_PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
_PRIORITY_WORDS = {
    "priority": {"urgent": "urgent", "normal": "normal", "non-urgent": "low"},  # RFC 2156
    "importance": {"high": "high", "normal": "normal", "low": "low"},
    "x-priority": {"1": "high", "2": "high", "3": "normal", "4": "low", "5": "low"},
    "x-msmail-priority": {"high": "high", "normal": "normal", "low": "low"},
}


def sender_priority(msg: Message) -> str | None:
    """The priority the sender set: `Priority: urgent`, `Importance: high`, `X-Priority: 1`
    or `2`, `X-MSMail-Priority: High` (low, normal, high or urgent; the highest given)."""
    found = None
    for name, words in _PRIORITY_WORDS.items():
        value = _header(msg, name)
        if value is None:
            continue
        word = _first_word(value)
        if name == "x-priority":
            word = word[:1]
        level = words.get(word)
        if level and (found is None or _PRIORITY_RANK[level] > _PRIORITY_RANK[found]):
            found = level
    return found


def _is_auto_reply(msg: Message) -> bool:
    auto = _header(msg, "auto-submitted")
    if auto is not None and _first_word(auto) != "no":
        return True
    for name in ("x-autoreply", "x-autorespond"):
        value = _header(msg, name)
        if value is not None and _first_word(value) not in ("no", "false", "0"):
            return True
    if _first_word(_header(msg, "precedence") or "") in ("bulk", "junk", "list"):
        return True
    return re.fullmatch(r"<\s*>", _header(msg, "return-path") or "x") is not None


# --- structure -------------------------------------------------------------------------------

def _leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order; message/* parts are leaves (not descended into)."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.get_payload():
            yield from _leaves(sub)
    else:
        yield part


def _is_attachment(part: Message) -> bool:
    ctype = part.get_content_type()
    if part.get_content_disposition() == "attachment":
        return True
    if ctype in _REPORT_TYPES:
        return False
    maintype = ctype.split("/")[0]
    if maintype in ("text", "multipart"):
        return ctype not in ("text/plain", "text/html") and maintype == "text"
    return maintype != "message" or ctype in ("message/rfc822", "message/global")


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    text = decode_bytes(data if isinstance(data, bytes) else b"", part.get_content_charset())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if str(part.get_param("format") or "").lower() == "flowed":
        text = unflow(text, str(part.get_param("delsp") or "").lower() == "yes")
    return text


def _collect(part: Message, body: _Body) -> None:
    """Readable body pieces in display order; alternatives prefer text/plain."""
    ctype = part.get_content_type()
    if ctype.startswith("multipart/") and part.is_multipart():
        payload = part.get_payload()
        if ctype == "multipart/alternative":
            _collect_alternative(payload, body)
            return
        for sub in payload[:1] if ctype == "multipart/report" else payload:
            _collect(sub, body)
        return
    if _is_attachment(part):
        return
    if ctype == "text/html":
        html = _part_text(part)
        body.html.append(html)
        body.texts.append(html_to_text(html))
    elif ctype == "text/plain" or ctype.startswith("multipart/"):  # unsplittable multipart
        body.texts.append(_part_text(part))
        body.has_plain = True


def _collect_alternative(children: list[Message], body: _Body) -> None:
    subs = []
    for child in children:
        subs.append(_Body())
        _collect(child, subs[-1])
    plain = next((s for s in subs if s.has_plain and any(t.strip() for t in s.texts)), None)
    rich = next((s for s in subs if s.html), None)
    chosen = plain or rich or next((s for s in subs if s.texts), None)
    if chosen:
        body.texts.extend(chosen.texts)
        body.has_plain = body.has_plain or chosen.has_plain
    if rich:
        body.html.extend(rich.html)


# --- attachments -----------------------------------------------------------------------------

def _part_bytes(part: Message) -> bytes:
    if part.is_multipart():  # message/*: the parser already split it into messages
        return b"".join(_message_bytes(sub) for sub in part.get_payload())
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _message_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=_GENERATOR_POLICY)
    except Exception:  # noqa: BLE001
        return str(msg).encode("utf-8", "surrogateescape")


def _filename(part: Message) -> str | None:
    """The decoded filename, read with compat32's tolerant RFC 2231 handling."""
    helper = email.message.Message()
    for name in ("content-disposition", "content-type"):
        value = _header(part, name)
        if value:
            helper[name] = value
    name = decode_words(fix_surrogates(helper.get_filename() or ""))
    name = re.sub(r"[\x00-\x1f]", "", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name or None


def _attachment(part: Message, index: int) -> ParsedAttachment:
    ctype = part.get_content_type()
    cid = (_header(part, "content-id") or "").strip().strip("<>").strip() or None
    disposition = part.get_content_disposition()
    ext = _EXTENSIONS.get(ctype) or _TYPES.guess_extension(ctype) or ".bin"
    return ParsedAttachment(
        filename=_filename(part) or f"attachment-{index}{ext}",
        content_type=ctype,
        content=_part_bytes(part),
        content_id=cid,
        inline=disposition == "inline" or (disposition is None and cid is not None),
    )


# --- bounces ---------------------------------------------------------------------------------

def _is_bounce(msg: Message, leaves: list[Message], sender: str | None) -> bool:
    has_status = any(p.get_content_type() in ("message/delivery-status",
                                              "message/global-delivery-status") for p in leaves)
    if msg.get_content_type() == "multipart/report":
        report = str(msg.get_param("report-type") or "").lower()
        if report == "delivery-status" or has_status:
            return True
    local = (sender or "").split("@")[0]
    return local in ("mailer-daemon", "postmaster") and has_status


_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ACTION = re.compile(rb"^[ \t]*Action:[ \t]*([a-z]+)", re.M | re.I)


def _only_delayed(statuses: list[bytes]) -> bool:
    """A report whose status parts say only `delayed`, `relayed`, `delivered` or
    `expanded` (RFC 3464) returns nothing: no reply of ours failed."""
    actions = {action.lower() for status in statuses for action in _ACTION.findall(status)}
    return bool(actions) and b"failed" not in actions


def _bounced_ids(leaves: list[Message], text: str) -> list[str]:
    """Message-IDs of the original message(s) quoted in a delivery report that says they
    failed (not a delay notice)."""
    return bounced_ids_in_parts([(p.get_content_type(), _part_bytes(p)) for p in leaves
                                 if p.get_content_type() in _STATUS_TYPES + _HEADER_TYPES],
                                text)


# The parts of a report that hold its original message, or the original's headers.
_HEADER_TYPES = (*_ORIGINAL_TYPES, "text/rfc822-headers")


def bounced_ids_in_parts(parts: list[tuple[str, bytes]], text: str) -> list[str]:
    """Message-IDs of the original message(s) a delivery report that says they failed names
    (not a delay notice), from its parts ((content type, bytes): the `text/rfc822-headers`
    or `message/rfc822`, as parsed here or as a provider posts them as attachments), else
    quoted in its text."""
    parts = [(content_type.split(";")[0].strip().lower(), data) for content_type, data in parts]
    if _only_delayed([data for content_type, data in parts if content_type in _STATUS_TYPES]):
        return []
    found: list[str] = []
    parser = BytesParser(policy=email.policy.compat32)
    for content_type, data in parts:
        if content_type in _HEADER_TYPES and data:
            found.extend(message_ids(_raw_values(parser.parsebytes(data, headersonly=True),
                                                 "message-id")))
    return unique(found) or _quoted_ids(text)


def _quoted_ids(text: str) -> list[str]:
    return unique(message_ids(re.findall(r"^[ \t]*Message-ID:[ \t]*(.+)$", text,
                                         re.M | re.I)))
