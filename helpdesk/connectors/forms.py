"""Form bodies (urlencoded and multipart), read as raw bytes so no charset is guessed early.

Twilio signs its form fields, Mailgun and SendGrid post whole emails as form fields; SendGrid's
`text` and `html` keep their original charset, so values stay bytes until a connector decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder

from helpdesk.connectors.base import PayloadError, WebhookRequest

MAX_PARTS = 1000


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str = ""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class Form:
    parts: list[FormPart]

    def get(self, name: str) -> str | None:
        """The first value of a field as UTF-8 text, None when absent."""
        part = self.part(name)
        return part.text if part is not None else None

    def part(self, name: str) -> FormPart | None:
        return next((part for part in self.parts if part.name == name), None)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (name, value) of the text fields, in order."""
        return [(part.name, part.text) for part in self.parts if part.filename is None]

    def files(self) -> list[FormPart]:
        return [part for part in self.parts if part.filename is not None]


def parse_form(request: WebhookRequest) -> Form:
    """The request's form fields and files; PayloadError for anything that is not a form."""
    mimetype, options = parse_options_header(request.content_type)
    mimetype = mimetype.lower()  # (media types ignore case: Multipart/Form-Data passed the 415)
    if mimetype == "multipart/form-data":
        return _multipart(request.body, options.get("boundary") or "")
    if mimetype in ("application/x-www-form-urlencoded", ""):
        return _urlencoded(request.body)
    raise PayloadError(f"not a form body: {mimetype}")


def _urlencoded(body: bytes) -> Form:
    parts = []
    for pair in body.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        parts.append(FormPart(name=_unquote(name).decode("utf-8", "replace"),
                              data=_unquote(value)))
    return Form(parts)


def _unquote(value: bytes) -> bytes:
    return unquote_to_bytes(value.replace(b"+", b" "))


def _multipart(body: bytes, boundary: str) -> Form:
    if not boundary:
        raise PayloadError("multipart body without a boundary")
    try:
        try:
            return Form(_decode(body, boundary.encode("latin-1")))
        except UnicodeDecodeError:
            return Form(_decode(_utf8_part_headers(body, boundary.encode("latin-1")),
                                boundary.encode("latin-1")))
    except PayloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - werkzeug raises assorted errors on junk
        raise PayloadError(f"unreadable multipart body: {type(exc).__name__}") from exc


def _utf8_part_headers(body: bytes, boundary: bytes) -> bytes:
    """The body with every part's headers in UTF-8: werkzeug reads them as UTF-8 only, and
    one raw Latin-1 byte (an old mail client's `filename="caf\xe9.txt"`, passed on as it
    came) made it give up on the whole form, the mail lost with it."""
    delimiter = b"--" + boundary
    pieces = body.split(delimiter)
    for n, piece in enumerate(pieces[1:], start=1):
        end = min((i for i in (piece.find(b"\r\n\r\n"), piece.find(b"\n\n")) if i >= 0),
                  default=-1)
        if end < 0:
            continue
        head = piece[:end]
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            pieces[n] = head.decode("cp1252", "replace").encode("utf-8") + piece[end:]
    return delimiter.join(pieces)


def _decode(body: bytes, boundary: bytes) -> list[FormPart]:
    decoder = MultipartDecoder(boundary, max_parts=MAX_PARTS)
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts: list[FormPart] = []
    current: Field | File | None = None
    chunks: list[bytes] = []
    while True:
        event = decoder.next_event()
        if isinstance(event, Field | File):
            current, chunks = event, []
        elif isinstance(event, Data) and current is not None:
            chunks.append(event.data)
            if not event.more_data:
                parts.append(FormPart(
                    name=current.name or "", data=b"".join(chunks),
                    filename=current.filename if isinstance(current, File) else None,
                    content_type=current.headers.get("content-type", "")))
        elif isinstance(event, Epilogue):
            return parts
