"""Postmark: inbound email as JSON, URL key plus optional HTTP basic auth."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    ChannelConfig,
    MessageEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
)
from tests.support.payloads import corruptions, junk_bodies, sample

URL = "https://helpdesk.example.com/webhooks/postmark/chan-key"
CONNECTOR = get_connector("postmark")


def channel(**secrets: str) -> ChannelConfig:
    return ChannelConfig(id=2, kind="email", provider="postmark", key="chan-key",
                         settings={"address": "support@example.com"}, secrets=secrets)


def request(body: bytes | dict, auth: tuple[str, str] | str | None = None) -> WebhookRequest:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {}
    if isinstance(auth, tuple):
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    elif auth is not None:
        headers["Authorization"] = auth
    return WebhookRequest("POST", URL, headers, raw, "application/json")


def inbound(**changes: object) -> dict:
    return {**json.loads(sample("postmark", "inbound.json")), **changes}


def parse(body: bytes | dict) -> MessageEvent:
    (event,) = CONNECTOR.parse(channel(), request(body))
    return event


def test_registered_with_the_documented_contract():
    assert CONNECTOR.is_email
    assert CONNECTOR.kinds == {"email"}
    assert CONNECTOR.optional_secrets == {"basic_auth_user", "basic_auth_password"}
    assert "address" in CONNECTOR.optional_settings | CONNECTOR.required_settings


def test_url_key_alone_is_enough_without_basic_auth_secrets():
    CONNECTOR.verify(channel(), request(sample("postmark", "inbound.json")))


def test_basic_auth_accepted_when_configured():
    secured = channel(basic_auth_user="postmark", basic_auth_password="p:ss wörd")
    CONNECTOR.verify(secured, request(sample("postmark", "inbound.json"),
                                      ("postmark", "p:ss wörd")))


@pytest.mark.parametrize("auth", [None, ("postmark", "wrong"), ("other", "p:ss wörd"),
                                  "Bearer abc", "Basic !!!", "Basic " +
                                  base64.b64encode(b"postmark").decode()])
def test_basic_auth_refused(auth):
    secured = channel(basic_auth_user="postmark", basic_auth_password="p:ss wörd")
    with pytest.raises(VerificationError):
        CONNECTOR.verify(secured, request(sample("postmark", "inbound.json"), auth))


def test_documented_example():
    event = parse(sample("postmark", "inbound.json"))
    assert [(i.kind, i.value) for i in event.identities] == [("email", "support@postmarkapp.com")]
    assert event.sender_name == "Postmarkapp Support"
    assert event.subject == "Test subject"
    assert event.text == "This is the reply text"  # Postmark's StrippedTextReply
    # The customer is who the From names; its ReplyTo is where replies go (sending.py).
    assert event.reply_to == "replyto@postmarkapp.com"
    assert event.full_text == "This is a test text body."
    assert event.html == "<html><body><p>This is a test html body.</p></body></html>"
    (attachment,) = event.attachments
    assert (attachment.filename, attachment.content_type, attachment.content) == (
        "test.txt", "text/plain", b"This is attachment contents, base-64 encoded.")
    # No RFC Message-ID in the headers: Postmark's id names the message.
    assert event.external_id == "postmark:73e6d360-66eb-11e1-8e72-a8904824019b"
    # "Fri, 1 Aug 2014 16:45:32 -04:00": a zone with a colon, read as a zone, not as UTC.
    assert event.sent_at == datetime(2014, 8, 1, 20, 45, 32, tzinfo=UTC)


def test_threading_headers():
    event = parse(sample("postmark", "inbound_reply.json"))
    assert event.message_id == "CAF12345abc@mail.gmail.com"
    assert event.external_id == "CAF12345abc@mail.gmail.com"
    assert event.in_reply_to == ["ticket-4711-msg-2@support.example.com"]
    assert event.references == ["ticket-4711-msg-1@support.example.com",
                                "ticket-4711-msg-2@support.example.com"]


def test_without_stripped_reply_the_quote_is_stripped_here():
    body = "Still broken.\n\nOn Mon, 3 Jun 2024, Support <s@example.com> wrote:\n> Try again"
    event = parse(inbound(StrippedTextReply="", TextBody=body))
    assert event.text == "Still broken."
    assert event.full_text == body


def test_auto_replies_are_flagged():
    headers = [{"Name": "Auto-Submitted", "Value": "auto-replied"}]
    assert parse(inbound(Headers=headers)).flags == ["auto_reply"]


def test_raw_email_is_preferred_when_enabled():
    raw = ("From: Ana <ana@example.com>\r\nSubject: raw\r\nMessage-ID: <raw-1@example.com>\r\n"
           "\r\nHello from the raw message\r\n")
    event = parse(inbound(RawEmail=raw))
    assert (event.external_id, event.subject, event.text) == (
        "raw-1@example.com", "raw", "Hello from the raw message")


def test_dedupe_on_postmark_message_id():
    body = sample("postmark", "inbound.json")
    key = CONNECTOR.dedupe_key(channel(), request(body))
    assert key == "message:73e6d360-66eb-11e1-8e72-a8904824019b"
    assert CONNECTOR.dedupe_key(channel(), request(json.loads(body))) == key
    assert CONNECTOR.dedupe_key(channel(), request(sample("postmark", "inbound_reply.json"))) \
        != key


@pytest.mark.parametrize("body", junk_bodies() + [
    json.dumps(inbound(MessageID=None)).encode(),
    json.dumps(inbound(From=None, FromFull=None)).encode(),
    json.dumps(inbound(Attachments=[{"Name": "a", "Content": "not*base64"}])).encode()])
def test_junk_raises_payload_error(body):
    with pytest.raises(PayloadError):
        parse(body)


def test_every_corruption_parses_or_raises_payload_error():
    for body in corruptions(sample("postmark", "inbound_reply.json")):
        for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
            try:
                call(channel(), request(body))
            except PayloadError:
                pass
