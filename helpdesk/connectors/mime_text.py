"""Text helpers for the MIME parser: charsets, header values (RFC 2047 words, addresses,
message ids, dates), format=flowed, HTML to text and quote stripping.

Everything here is pure and total: bad input degrades to a best-effort string, it never raises.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser

# Labels that decode anything, so a lie (UTF-8 bytes labelled Latin-1) can't be detected by
# failure: valid UTF-8 with 8-bit bytes wins, else Windows-1252 (as browsers do for Latin-1).
_LATIN = frozenset({"ascii", "iso8859-1", "cp1252"})
# Tried after the declared charset and UTF-8 have failed: common mislabels of a wider charset.
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "euc_jp": "cp932",
    "euc_kr": "cp949", "iso2022_jp": "iso2022_jp_2", "big5": "big5hkscs",
}


def _codec(charset: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None when unknown (e.g. `NONE`)."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(label).name  # bytes-to-bytes codecs fail in decode_bytes
    except (LookupError, ValueError):
        return None
    return None if name in _NOT_CHARSETS else name


# Python codecs that are no mail charset: they read escapes (`\\ud800` became a lone
# surrogate, which no database stores) or hostnames.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna",
                           "undefined"})
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # no database stores one


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode `data` honouring `charset`, falling back to UTF-8 then Windows-1252 (never raises)."""
    declared = _codec(charset)
    if declared in _LATIN:
        chain = ["utf-8", "cp1252"]
    else:
        chain = [declared, "utf-8", _SUPERSETS.get(declared or ""), "cp1252"]
    for name in chain:
        if name is None:
            continue
        try:
            text = data.decode(name)
        except (UnicodeError, LookupError):
            continue
        if not LONE_SURROGATE.search(text):  # (UTF-7 can spell a lone surrogate)
            return text
    return data.decode("latin-1")


_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([qQbB])\?([^?\s]*)\?=")


def _word_bytes(kind: str, text: str) -> bytes | None:
    if kind in "bB":
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    return binascii.a2b_qp(text.encode("utf-8"), header=True)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; adjacent words in one charset are joined before decoding."""
    if "=?" not in value:
        return value
    out: list[str] = []
    charset, buf, in_word, pos = "", b"", False, 0
    for match in _ENCODED_WORD.finditer(value):
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue
        gap = value[pos:match.start()]
        same = in_word and not gap.strip() and match.group(1).lower() == charset
        if in_word and not same:
            out.append(decode_bytes(buf, charset))
            buf = b""
        if not in_word or gap.strip():
            out.append(gap)
        charset, buf, in_word, pos = match.group(1).lower(), buf + data, True, match.end()
    if in_word:
        out.append(decode_bytes(buf, charset))
    out.append(value[pos:])
    return "".join(out)


def header_value(raw: str) -> str:
    """A raw header value (8-bit bytes surrogate-escaped by the parser) as unfolded text."""
    try:
        data = raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = raw.encode("utf-8", "replace")
    return re.sub(r"\r?\n(?=[ \t])", "", decode_bytes(data)).replace("\r", "").strip()


def fix_surrogates(text: str) -> str:
    """Re-decode surrogate-escaped bytes (e.g. an unknown charset in an encoded word)."""
    if not re.search("[\udc80-\udcff]", text):
        return text
    return decode_bytes(text.encode("utf-8", "surrogateescape"))


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


_ID_TOKEN = re.compile(r"<([^<>]*)>|([^\s,;<>]+)")


# What a stored Message-ID holds (`messages.message_id`); a longer one (no mailer writes one,
# but PostgreSQL refused the mail that had it) is kept as its hash, everywhere it is named.
MAX_MESSAGE_ID = 500
MAX_SUBJECT = 500  # (`tickets.subject`, `messages.subject`)


def message_ids(values: Iterable[str]) -> list[str]:
    """Message ids without brackets, in order, deduplicated; tokens without '@' are dropped;
    one longer than MAX_MESSAGE_ID is named by its hash (the same in every header)."""
    found: list[str] = []
    for value in values:
        value = re.sub(r'\([^()]*\)|"[^"]*"', " ", value)  # comments and quoted phrases
        for match in _ID_TOKEN.finditer(value):
            token = "".join((match.group(1) if match.group(1) is not None
                             else match.group(2)).split())
            if "@" in token.strip("@"):
                found.append(token if len(token) <= MAX_MESSAGE_ID else
                             hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
                             + "@sha256.invalid")  # (a msg-id still, in our replies' headers)
    return unique(found)


# A match can only begin where a run of address characters begins: the lookbehind keeps a
# search from trying every position inside a long run without an `@` (quadratic: a 200 KB
# To line held a worker for hours).
_ADDRESS = re.compile(r"(?<![^\s<>\"(),;:@\[\]])[^\s<>\"(),;:@\[\]]+@[^\s<>\"(),;:@\[\]]+")


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# One plain address, bare or after a name of atoms (RFC 2047 words among them): what most
# mail carries, read without the modern header parser (~8x the time; the same pairs).
_SIMPLE_ADDRESS = re.compile(
    rf"\s*(?:({_ATOM}(?: {_ATOM})*)\s*<({_DOT_ATOM}@{_DOT_ATOM})>|({_DOT_ATOM}@{_DOT_ATOM}))\s*")


# Longer address lists are read by `email.utils.getaddresses` alone: the modern parser's time
# grows with the square of the list (80 KB of To: 4.5 s; 200 KB: 24 s), getaddresses' not.
LONG_ADDRESS_LIST = 8 * 1024


def parse_addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; entries without a usable address are dropped."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        simple = _SIMPLE_ADDRESS.fullmatch(value)
        if simple is not None:
            name, address = simple.group(1, 2) if simple.group(2) else ("", simple.group(3))
            pairs.append((fix_surrogates(decode_words(name)).strip(), address.lower()))
            continue
        try:
            if len(value) > LONG_ADDRESS_LIST:
                raise ValueError("read by getaddresses")
            header = email.policy.default.header_factory("to", value)
            found = [(a.display_name, a.addr_spec) for a in header.addresses]
        except Exception:  # noqa: BLE001 - the modern parser raises on e.g. "foo@"
            found = email.utils.getaddresses([value])
        for name, addr in found:
            match = _ADDRESS.search(addr)
            if match:
                display = fix_surrogates(decode_words(name or "")).strip()
                pairs.append((display, match.group(0).lower()))
    return pairs


_COLON_ZONE = re.compile(r"([+-]\d\d):(\d\d)$")


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as aware UTC (no zone / -0000 taken as UTC); None when unparseable."""
    if not value:
        return None
    # "-04:00": an ISO-style zone (Postmark's Date field) that email.utils reads as no zone.
    value = _COLON_ZONE.sub(r"\1\2", value.strip())
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31 23:59 -1200 is past the calendar's end in UTC
        return None


def unflow(text: str, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed: join soft-broken lines of the same quote depth."""
    out: list[str] = []
    buf: str | None = None
    depth = 0
    for line in text.split("\n"):
        level = len(line) - len(line.lstrip(">"))
        body = line[level:]
        body = body[1:] if body.startswith(" ") else body
        flowed = body.endswith(" ") and body != "-- "
        if buf is not None and level != depth:
            out.append(">" * depth + (" " if depth else "") + buf)
            buf = None
        buf, depth = (buf or "") + (body[:-1] if flowed and delsp else body), level
        if not flowed:
            out.append(">" * depth + (" " if depth and buf else "") + buf)
            buf = None
    if buf is not None:
        out.append(">" * depth + (" " if depth else "") + buf)
    return "\n".join(out)


_SKIP_TAGS = frozenset({"script", "style", "title", "template"})
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"})
_LINE_TAGS = frozenset({
    "div", "li", "tr", "ul", "ol", "dl", "dt", "dd", "pre", "section", "article", "header",
    "footer", "nav", "aside", "form", "address", "center", "figure", "figcaption", "hr",
})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        self._break(tag, start=True)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        self._break(tag, start=False)

    def _break(self, tag: str, start: bool) -> None:
        if tag == "br" and start:
            self.parts.append("\n")
        elif tag in _PARAGRAPH_TAGS:
            self._newlines(2)
        elif tag in _LINE_TAGS:
            self._newlines(1)
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def _newlines(self, count: int) -> None:
        """End the current line/paragraph without stacking breaks from nested blocks."""
        tail = "".join(self.parts[-6:])
        have = tail[len(tail.rstrip(" \n")):].count("\n")
        self.parts.append("\n" * max(0, count - have))

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Readable text from HTML: scripts and styles dropped, block tags as line breaks."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # noqa: BLE001 - html.parser is lenient, but never let markup crash ingest
        text = re.sub(r"<[^>]*>", " ", html)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_QUOTE_HEADERS = [
    re.compile(  # Gmail/Apple/Thunderbird: "On <date>, <name> wrote:" (may wrap over 3 lines)
        r"^[ \t]*(?:On|Le|Am|El|Il|Op|Em|Den)\s(?:[^\n]*\n){0,2}?[^\n]*?"
        r"(?:wrote|a écrit|schrieb|escribió|ha scritto|schreef|escreveu|skrev)\s*:[ \t]*$",
        re.M | re.I,
    ),
    re.compile(
        r"^[ \t]*-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine)"
        r"[ \t]*-{2,}", re.M | re.I,
    ),
    re.compile(  # Outlook: "From: ..." followed within three lines by "Sent:"/"Date:"
        r"^[ \t]*\*?(?:From|Von|De)[ \t]?:.*\n(?:.*\n){0,2}?[ \t]*\*?(?:Sent|Date|Gesendet|Envoyé)"
        r"[ \t]?:", re.M | re.I,
    ),
]


def _quote_start(text: str) -> int:
    starts = [m.start() for rx in _QUOTE_HEADERS for m in rx.finditer(text)
              if rx is not _QUOTE_HEADERS[0] or re.search(r"\d", m.group(0))]
    return min(starts, default=len(text))


def _drop_signature(lines: list[str]) -> list[str]:
    marks = [i for i, line in enumerate(lines) if line.rstrip() == "--"]
    if marks and len(lines) - marks[-1] <= 15:
        return lines[:marks[-1]]
    return lines


def _tidy(lines: list[str]) -> str:
    while lines and (not lines[-1].strip() or re.fullmatch(r"\s*_{5,}\s*", lines[-1])):
        lines.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in lines)).strip()


def strip_quoted(text: str) -> str:
    """The new part of a reply: quoted history, reply headers and a trailing signature removed.

    Falls back to the less-stripped text (and finally the input) rather than returning "".
    """
    text = text.replace("\r\n", "\n")
    head = text[:_quote_start(text)]
    lines = [line for line in head.split("\n") if not line.lstrip().startswith(">")]
    for candidate in (_tidy(_drop_signature(lines)), _tidy(lines)):
        if candidate:
            return candidate
    return text.strip()
