"""The sender's own priority flag (issue 16): email headers on every email provider, and the
`api` format's `message.priority`, carried on the normalized event."""

from __future__ import annotations

import json

import pytest

from helpdesk.connectors import get_connector
from helpdesk.connectors.base import ChannelConfig, PayloadError, WebhookRequest
from helpdesk.connectors.mime import parse_email
from tests.support.payloads import sample

MAIL = ("From: Ana <ana@example.com>\r\nTo: help@example.com\r\nSubject: help\r\n"
        "Message-ID: <p1@example.com>\r\n{headers}\r\nPlease call me back.\r\n")


def raw(headers: str) -> bytes:
    return MAIL.format(headers=headers).encode()


@pytest.mark.parametrize("headers, level", [
    ("", None),
    ("Importance: high\r\n", "high"),
    ("Importance: High\r\n", "high"),
    ("Importance: low\r\n", "low"),
    ("X-Priority: 1 (Highest)\r\n", "high"),
    ("X-Priority: 2\r\n", "high"),
    ("X-Priority: 3 (Normal)\r\n", "normal"),
    ("X-Priority: 5\r\n", "low"),
    ("Priority: urgent\r\n", "urgent"),
    ("Priority: non-urgent\r\n", "low"),
    ("X-MSMail-Priority: High\r\n", "high"),
    ("X-Priority: 1\r\nPriority: urgent\r\nImportance: high\r\n", "urgent"),
    ("Importance: whenever\r\n", None),
])
def test_raw_mime_headers(headers, level):
    assert parse_email(raw(headers)).priority == level
    (event,) = get_connector("raw_mime").parse(
        ChannelConfig(1, "email", "raw_mime", "k", {}, {}),
        WebhookRequest("POST", "https://h/webhooks/raw_mime/k", {}, raw(headers),
                       "message/rfc822"))
    assert event.sender_priority == level


def test_postmark_headers():
    data = json.loads(sample("postmark", "inbound.json"))
    data["Headers"] = [*data["Headers"], {"Name": "X-Priority", "Value": "1"}]
    (event,) = get_connector("postmark").parse(
        ChannelConfig(2, "email", "postmark", "k", {"address": "support@example.com"}, {}),
        WebhookRequest("POST", "https://h/webhooks/postmark/k", {}, json.dumps(data).encode(),
                       "application/json"))
    assert event.sender_priority == "high"


def test_mailgun_message_headers():
    from tests.connectors.test_mailgun import CHANNEL, fields, multipart

    pairs = fields()
    headers = json.loads(dict(pairs)["message-headers"]) + [["Importance", "high"]]
    pairs = [(k, json.dumps(headers) if k == "message-headers" else v) for k, v in pairs]
    (event,) = get_connector("mailgun").parse(CHANNEL, multipart(pairs))
    assert event.sender_priority == "high"


def test_sendgrid_header_block():
    from tests.connectors.test_sendgrid import channel, default_fields, form

    block = dict(default_fields())["headers"]
    block = (block.decode() if isinstance(block, bytes) else block).rstrip("\n")
    pairs = default_fields(headers=block + "\nPriority: urgent\n")
    (event,) = get_connector("sendgrid").parse(channel(), form(pairs))
    assert event.sender_priority == "urgent"


def api_parse(message_extra: dict):
    body = {"event_id": "e1", "type": "message", "customer": {"email": "a@example.com"},
            "message": {"id": "m1", "text": "hello", **message_extra}}
    connector = get_connector("api")
    return connector.parse(ChannelConfig(3, "api", "api", "k", {}, {"signing_secret": "s"}),
                           WebhookRequest("POST", "https://h/webhooks/api/k", {},
                                          json.dumps(body).encode(), "application/json"))


def test_api_priority_field():
    assert api_parse({})[0].sender_priority is None
    assert api_parse({"priority": "urgent"})[0].sender_priority == "urgent"
    assert api_parse({"priority": "low"})[0].sender_priority == "low"
    with pytest.raises(PayloadError, match="message.priority"):
        api_parse({"priority": "P1"})
