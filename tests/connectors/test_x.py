"""X (Twitter) Account Activity: CRC handshake, signed DMs and mentions."""

from __future__ import annotations

import base64
import hashlib
import hmac
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

URL = "https://helpdesk.example.com/webhooks/x/chan-key"
SECRET = "z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu"
CONNECTOR = get_connector("x")
CHANNEL = ChannelConfig(id=9, kind="x", provider="x", key="chan-key",
                        settings={"user_id": "4337869213"},
                        secrets={"consumer_secret": SECRET, "access_token": "token"})


def x_signature(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def signed(body: bytes | dict, secret: str = SECRET) -> WebhookRequest:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return WebhookRequest("POST", URL, {"x-twitter-webhooks-signature": x_signature(secret, raw)},
                          raw, "application/json")


def dm(event_id: str, sender_id: str, text: str = "hi", **data: object) -> dict:
    return {"type": "message_create", "id": event_id, "created_timestamp": "1516403560557",
            "message_create": {"target": {"recipient_id": "4337869213"}, "sender_id": sender_id,
                               "message_data": {"text": text, **data}}}


def parse(body: bytes | dict) -> list:
    return CONNECTOR.parse(CHANNEL, signed(body))


def test_registered_with_the_documented_contract():
    assert CONNECTOR.kinds == {"x"}
    assert CONNECTOR.required_secrets == {"consumer_secret", "access_token"}
    assert CONNECTOR.required_settings == {"user_id"}


def test_crc_documented_vector():
    request = WebhookRequest("GET", URL + "?crc_token=9b4507b3-9040-4669-9ca3-6b94edb50553", {},
                             b"", query={"crc_token": "9b4507b3-9040-4669-9ca3-6b94edb50553"})
    answer = CONNECTOR.handshake(CHANNEL, request)
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert answer.body == {"response_token":
                           "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8="}


def test_crc_without_a_token_is_a_bad_request():
    assert CONNECTOR.handshake(CHANNEL, WebhookRequest("GET", URL, {}, b"")).status == 400


def test_documented_signature_vector():
    body = b'{"for_user_id":"4337869213","direct_message_events":[]}'
    headers = {"X-Twitter-Webhooks-Signature":
               "sha256=lUxoEkg8sX8jgDMrXh+bIji11PYTR3Ylb1Bs7zhctRw="}
    CONNECTOR.verify(CHANNEL, WebhookRequest("POST", URL, headers, body, "application/json"))
    assert parse(body) == []


@pytest.mark.parametrize("tamper", ["secret", "body", "missing", "hex"])
def test_bad_signatures_are_refused(tamper):
    body = sample("x", "dm.json")
    request = signed(body)
    if tamper == "secret":
        request = signed(body, "other")
    elif tamper == "body":
        request = WebhookRequest("POST", URL, request.headers, body.replace(b"Hello", b"Hallo"))
    elif tamper == "missing":
        request = WebhookRequest("POST", URL, {}, body)
    else:
        hexed = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = WebhookRequest("POST", URL, {"x-twitter-webhooks-signature": hexed}, body)
    with pytest.raises(VerificationError):
        CONNECTOR.verify(CHANNEL, request)


def test_direct_message():
    (event,) = parse(sample("x", "dm.json"))
    assert isinstance(event, MessageEvent)
    assert event.external_id == "954491830116155396"
    assert [(i.kind, i.value) for i in event.identities] == [("x", "3001969357")]
    assert (event.text, event.sender_name) == ("Hello World!", "Jordan Brinks")
    assert event.sent_at == datetime.fromtimestamp(1516403560.557, UTC)


def test_the_documented_malformed_shape_still_parses():
    (event,) = parse(sample("x", "dm_doc_shape.json"))
    assert (event.external_id, event.sender_name) == ("954491830116155396", "Jordan Brinks")


def test_own_messages_are_ignored():
    body = {"for_user_id": "4337869213",
            "direct_message_events": [dm("1", "4337869213", "our reply"), dm("2", "777")]}
    assert [e.external_id for e in parse(body)] == ["2"]


def test_media_attachment():
    media = {"id_str": "9", "type": "photo",
             "media_url_https": "https://pbs.twimg.com/dm_gpg/9/photo.jpg"}
    body = {"for_user_id": "4337869213",
            "direct_message_events": [dm("3", "777", attachment={"type": "media",
                                                                   "media": media})]}
    (event,) = parse(body)
    (attachment,) = event.attachments
    assert (attachment.url, attachment.content_type) == (media["media_url_https"], "image/jpeg")


def test_mentions():
    (event,) = parse(sample("x", "tweet_create.json"))
    assert event.external_id == "1797573957413888000"
    assert [(i.kind, i.value) for i in event.identities] == [("x", "3001969357")]
    assert event.text == "@TwitterDev my order #4711 still hasn't shipped"


def test_dedupe_keys():
    def key(body):
        return CONNECTOR.dedupe_key(CHANNEL, signed(body))
    body = sample("x", "dm.json")
    assert key(body) == "x:dm:954491830116155396"
    assert key(json.dumps(json.loads(body)).encode()) == key(body)
    assert key(sample("x", "tweet_create.json")) == "x:tweet:1797573957413888000"
    two = {"direct_message_events": [dm("1", "7"), dm("2", "7")]}
    assert key(two) == key({"direct_message_events": [dm("2", "7"), dm("1", "7")]})
    assert key(two) != key({"direct_message_events": [dm("1", "7")]})
    typing = {"for_user_id": "1", "direct_message_indicate_typing_events": [{"sender_id": "7"}]}
    assert key(typing).startswith("sha256:")


@pytest.mark.parametrize("body", junk_bodies() + [
    b'{"direct_message_events": {}}', b'{"direct_message_events": [{"type": "message_create"}]}',
    b'{"tweet_create_events": [{"id_str": "1", "user": {}}]}'])
def test_junk_raises_payload_error(body):
    with pytest.raises(PayloadError):
        parse(body)


@pytest.mark.parametrize("name", ["dm.json", "dm_doc_shape.json", "tweet_create.json"])
def test_every_corruption_parses_or_raises_payload_error(name):
    for body in corruptions(sample("x", name)):
        for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
            try:
                call(CHANNEL, signed(body))
            except PayloadError:
                pass
