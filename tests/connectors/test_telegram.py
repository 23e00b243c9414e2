"""Telegram: Bot API updates verified by the secret-token header."""

from __future__ import annotations

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

URL = "https://helpdesk.example.com/webhooks/telegram/chan-key"
CONNECTOR = get_connector("telegram")
CHANNEL = ChannelConfig(id=8, kind="telegram", provider="telegram", key="chan-key", settings={},
                        secrets={"secret_token": "s3cr3t_T0ken-x", "bot_token": "123:ABC"})
USER = {"id": 1111111, "is_bot": False, "first_name": "Test Firstname",
        "last_name": "Test Lastname", "username": "Testusername"}


def request(body: bytes | dict, token: str | None = "s3cr3t_T0ken-x") -> WebhookRequest:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token is not None else {}
    return WebhookRequest("POST", URL, headers, raw, "application/json")


def update(update_id: int = 10001, key: str = "message", **message: object) -> dict:
    base = {"message_id": 7, "date": 1441645532, "from": USER,
            "chat": {"id": 1111111, "type": "private"}}
    return {"update_id": update_id, key: {**base, **message}}


def parse(body: bytes | dict) -> list:
    return CONNECTOR.parse(CHANNEL, request(body))


def test_registered_with_the_documented_contract():
    assert CONNECTOR.kinds == {"telegram"}
    assert CONNECTOR.required_secrets == {"secret_token", "bot_token"}
    assert not CONNECTOR.required_settings | CONNECTOR.optional_settings


def test_secret_token_accepted():
    CONNECTOR.verify(CHANNEL, request(sample("telegram", "message.json")))


@pytest.mark.parametrize("token", [None, "", "s3cr3t_T0ken-y", "S3CR3T_T0KEN-X", "s3cr3t_T0ken"])
def test_wrong_or_missing_secret_token_refused(token):
    with pytest.raises(VerificationError):
        CONNECTOR.verify(CHANNEL, request(sample("telegram", "message.json"), token))


def test_documented_update():
    (event,) = parse(sample("telegram", "message.json"))
    assert isinstance(event, MessageEvent)
    assert [(i.kind, i.value) for i in event.identities] == [("telegram", "1111111")]
    assert (event.text, event.sender_name) == ("/start", "Test Firstname Test Lastname")
    assert event.external_id == "1111111:1365"
    assert event.sent_at == datetime.fromtimestamp(1441645532, UTC)


def test_dedupe_on_update_id():
    body = sample("telegram", "message.json")
    key = CONNECTOR.dedupe_key(CHANNEL, request(body))
    assert key == "update:10000"
    assert CONNECTOR.dedupe_key(CHANNEL, request(json.loads(body))) == key
    assert CONNECTOR.dedupe_key(CHANNEL, request(update(10001))) != key


def test_photo_keeps_the_largest_size_as_a_file_reference():
    photos = [{"file_id": "small", "file_unique_id": "u1", "width": 90, "height": 60,
               "file_size": 1000},
              {"file_id": "large", "file_unique_id": "u2", "width": 1280, "height": 853,
               "file_size": 90000}]
    (event,) = parse(update(photo=photos, caption="broken screen"))
    assert event.text == "broken screen"
    (attachment,) = event.attachments
    assert (attachment.url, attachment.content_type, attachment.size) == (
        "telegram:file/large", "image/jpeg", 90000)
    assert attachment.content is None


def test_document_attachment():
    document = {"file_id": "BQACAgI", "file_unique_id": "AgAD", "file_name": "invoice.pdf",
                "mime_type": "application/pdf", "file_size": 2048}
    (event,) = parse(update(document=document))
    (attachment,) = event.attachments
    assert (attachment.filename, attachment.content_type, attachment.url) == (
        "invoice.pdf", "application/pdf", "telegram:file/BQACAgI")


def test_edited_message_is_a_new_message_with_its_own_id():
    (event,) = parse(update(key="edited_message", text="fixed typo", edit_date=1441645600))
    assert event.external_id == "1111111:7:edited:1441645600"
    assert event.flags == ["edited"]
    assert event.sent_at == datetime.fromtimestamp(1441645600, UTC)


def test_own_contact_adds_a_phone_identity():
    contact = {"phone_number": "+34600000000", "first_name": "Test", "user_id": 1111111}
    (event,) = parse(update(contact=contact))
    assert [(i.kind, i.value) for i in event.identities] == [
        ("telegram", "1111111"), ("phone", "+34600000000")]


@pytest.mark.parametrize("body", [
    {"update_id": 5, "callback_query": {"id": "1", "from": USER, "data": "x"}},
    update(new_chat_members=[USER]),
    update(text="hi", **{"from": {**USER, "is_bot": True}})])
def test_updates_that_are_not_customer_messages_are_ignored(body):
    assert parse(body) == []


@pytest.mark.parametrize("body", junk_bodies() + [
    b'{"update_id": "10000", "message": {}}', b'{"update_id": true}',
    json.dumps({"update_id": 1, "message": {"text": "no sender", "message_id": 1}}).encode()])
def test_junk_raises_payload_error(body):
    with pytest.raises(PayloadError):
        parse(body)


def test_every_corruption_parses_or_raises_payload_error():
    document = {"file_id": "B", "file_name": "a.pdf", "mime_type": "application/pdf"}
    photo = [{"file_id": "p", "width": 1, "height": 1}]
    bodies = [sample("telegram", "message.json"),
              json.dumps(update(document=document, photo=photo, caption="c")).encode()]
    for body in bodies:
        for corrupted in corruptions(body):
            for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
                try:
                    call(CHANNEL, request(corrupted))
                except PayloadError:
                    pass
