"""SendGrid Inbound Parse: the default (parsed) and raw (full MIME) multipart variants."""

from __future__ import annotations

import base64
import json

import pytest

from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    ChannelConfig,
    MessageEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
)
from tests.support.payloads import junk_bodies, sample

URL = "https://helpdesk.example.com/webhooks/sendgrid/chan-key"
BOUNDARY = "xYzZY"  # SendGrid's own
CONNECTOR = get_connector("sendgrid")
JPEG, DOCX = b"\xff\xd8\xff\xe0 jpeg", b"PK\x03\x04 docx"


def channel(**secrets: str) -> ChannelConfig:
    return ChannelConfig(id=6, kind="email", provider="sendgrid", key="chan-key",
                         settings={"address": "example@example.comom"}, secrets=secrets)


def part(name: str, value: bytes, filename: str | None = None, content_type: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"Content-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + value + b"\r\n"


def form(pairs: list[tuple[str, str | bytes]], files: list[tuple[str, str, str, bytes]] = (),
         headers: dict[str, str] | None = None) -> WebhookRequest:
    """A multipart body as SendGrid sends it: text fields may be in any charset (bytes)."""
    body = b"".join(part(name, value if isinstance(value, bytes) else value.encode())
                    for name, value in pairs)
    body += b"".join(part(name, content, filename, content_type)
                     for name, filename, content_type, content in files)
    body += f"--{BOUNDARY}--\r\n".encode()
    return WebhookRequest("POST", URL, headers or {}, body,
                          f"multipart/form-data; boundary={BOUNDARY}")


def default_fields(**changes: str | bytes | None) -> list[tuple[str, str | bytes]]:
    pairs = [tuple(pair) for pair in json.loads(sample("sendgrid", "default_fields.json"))]
    pairs = [(k, changes.pop(k, v)) for k, v in pairs] + list(changes.items())
    return [(k, v) for k, v in pairs if v is not None]


FILES = [("attachment1", "MG_2359.jpg", "image/jpeg", JPEG),
         ("attachment2", "DockMcWordface.docx", "", DOCX)]


def raw_request() -> WebhookRequest:
    pairs = [tuple(pair) for pair in json.loads(sample("sendgrid", "raw_fields.json"))]
    return form([("email", sample("sendgrid", "raw_email.eml"))] + pairs)


def parse(request: WebhookRequest) -> MessageEvent:
    (event,) = CONNECTOR.parse(channel(), request)
    return event


def test_registered_with_the_documented_contract():
    assert CONNECTOR.is_email
    assert CONNECTOR.optional_secrets == {"basic_auth_user", "basic_auth_password"}
    assert "multipart/form-data" in CONNECTOR.content_types


def test_basic_auth_is_optional():
    CONNECTOR.verify(channel(), form(default_fields(), FILES))
    secured = channel(basic_auth_user="sg", basic_auth_password="pw")
    good = {"Authorization": "Basic " + base64.b64encode(b"sg:pw").decode()}
    CONNECTOR.verify(secured, form(default_fields(), FILES, good))
    with pytest.raises(VerificationError):
        CONNECTOR.verify(secured, form(default_fields(), FILES))
    bad = {"Authorization": "Basic " + base64.b64encode(b"sg:nope").decode()}
    with pytest.raises(VerificationError):
        CONNECTOR.verify(secured, form(default_fields(), FILES, bad))


def test_default_payload():
    event = parse(form(default_fields(), FILES))
    assert [(i.kind, i.value) for i in event.identities] == [("email", "example@example.com")]
    assert (event.sender_name, event.subject) == ("Sender Name", "Different File Types")
    assert event.message_id == event.external_id == \
        "CAN_P_JMvV7ZpAQhOnDienypLrJmuhN=LQWweu4yScw4jQyXY2w@mail.gmail.com"
    assert event.text == "Here's an email with multiple attachments"
    assert "multiple attachments" in event.html
    assert [(a.filename, a.content_type, a.content) for a in event.attachments] == [
        ("MG_2359.jpg", "image/jpeg", JPEG),
        ("DockMcWordface.docx",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document", DOCX)]


def test_text_is_decoded_with_its_charset():
    latin = "Café crème, où est ma commande ?".encode("iso-8859-1")
    charsets = '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8","text":"iso-8859-1"}'
    event = parse(form(default_fields(text=latin, html=None, charsets=charsets)))
    assert event.text == "Café crème, où est ma commande ?"


def test_threading_headers_come_from_the_header_block():
    headers = ("From: Ana <ana@example.com>\nSubject: Re: order\n"
               "Message-ID: <reply-1@example.com>\nIn-Reply-To: <ticket-9@support.example.com>\n"
               "References: <ticket-8@support.example.com>\n <ticket-9@support.example.com>\n")
    event = parse(form(default_fields(headers=headers)))
    assert event.in_reply_to == ["ticket-9@support.example.com"]
    assert event.references == ["ticket-8@support.example.com", "ticket-9@support.example.com"]


def test_raw_payload():
    event = parse(raw_request())
    assert (event.subject, event.identities[0].value) == ("Hello", "example@example.com")
    assert event.external_id == "CAN_P_JNa25--hzm5=-ES9cnxgWa+h+E49OOAS7sPpV0gsoXCOw@mail.gmail.com"
    assert event.text == "Hello, SendGrid!"
    (attachment,) = event.attachments
    assert attachment.filename == "DockMcWordface.docx"


def test_dedupe_on_message_id_from_headers_or_email():
    key = CONNECTOR.dedupe_key(channel(), form(default_fields(), FILES))
    assert key == "message-id:CAN_P_JMvV7ZpAQhOnDienypLrJmuhN=LQWweu4yScw4jQyXY2w@mail.gmail.com"
    assert CONNECTOR.dedupe_key(channel(), form(default_fields(spam_score="9.9"))) == key
    assert CONNECTOR.dedupe_key(channel(), raw_request()) == \
        "message-id:CAN_P_JNa25--hzm5=-ES9cnxgWa+h+E49OOAS7sPpV0gsoXCOw@mail.gmail.com"
    no_id = form([("from", "a@example.com"), ("text", "hi")])
    assert CONNECTOR.dedupe_key(channel(), no_id).startswith("sha256:")


@pytest.mark.parametrize("body", junk_bodies())
def test_junk_raises_payload_error(body):
    request = WebhookRequest("POST", URL, {}, body, f"multipart/form-data; boundary={BOUNDARY}")
    with pytest.raises(PayloadError):
        parse(request)


@pytest.mark.parametrize("pairs", [
    [], [("text", "no headers, no sender")], [("email", "")], [("email", "\x00\x01 not mail")],
    [("headers", "X-Nothing: 1\n"), ("text", "hi")],
    [("headers", "From: nobody\n"), ("text", "hi")]])
def test_missing_fields_raise_payload_error(pairs):
    with pytest.raises(PayloadError):
        parse(form(pairs))


def test_broken_helper_fields_are_tolerated():
    event = parse(form(default_fields(charsets="{not json", **{"attachment-info": "[1]"}),
                       FILES))
    assert [a.filename for a in event.attachments] == ["MG_2359.jpg", "DockMcWordface.docx"]


def test_every_corrupted_field_parses_or_raises_payload_error():
    pairs = default_fields()
    for index in range(len(pairs)):
        for junk in (b"", b"[[1]]", b"\x00\xff\xfe", b"{\"text\": 5}", None):
            changed = [(k, junk if i == index else v) for i, (k, v) in enumerate(pairs)]
            request = form([(k, v) for k, v in changed if v is not None], FILES)
            for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
                try:
                    call(channel(), request)
                except PayloadError:
                    pass


def test_a_latin1_byte_in_a_part_header_or_an_upper_case_type_keeps_the_mail():
    """Found by fuzzing: werkzeug reads part headers as UTF-8 only, and one raw Latin-1 byte
    (an old client's `filename="café.jpg"` passed on as it came) made the whole form
    unreadable, the mail failed; `Multipart/Form-Data` passed the 415 check (types ignore
    case) and then was "not a form body"."""
    plain = form(default_fields(), FILES)
    latin = plain.body.replace(b'filename="MG_2359.jpg"', b'filename="caf\xe9.jpg"')
    assert latin != plain.body
    for content_type in (plain.content_type, "Multipart/Form-Data; boundary=" + BOUNDARY):
        event = parse(WebhookRequest("POST", URL, {}, latin, content_type))
        assert event.text == "Here's an email with multiple attachments"
        assert [a.content for a in event.attachments] == [JPEG, DOCX]
