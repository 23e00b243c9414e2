"""Meta: WhatsApp Cloud, Messenger and Instagram webhooks (signed JSON, GET handshake)."""

from __future__ import annotations

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
    StatusEvent,
    VerificationError,
    WebhookRequest,
)
from tests.support.payloads import corruptions, junk_bodies, sample

URL = "https://helpdesk.example.com/webhooks/meta/chan-key"
SECRET = "test_app_secret"
CONNECTOR = get_connector("meta")
CHANNEL = ChannelConfig(id=5, kind="whatsapp", provider="meta", key="chan-key",
                        settings={"phone_number_id": "106540352242922"},
                        secrets={"app_secret": SECRET, "verify_token": "verify-me",
                                 "access_token": "EAAG"})


def signed(body: bytes | dict, secret: str = SECRET) -> WebhookRequest:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return WebhookRequest(method="POST", url=URL, headers={"X-Hub-Signature-256": signature},
                          body=raw, content_type="application/json")


def get(**query: str) -> WebhookRequest:
    return WebhookRequest(method="GET", url=URL, headers={}, body=b"", query=query)


def whatsapp(messages: list[dict] = (), statuses: list[dict] = (),
             contacts: list[dict] = ()) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881",
                          "phone_number_id": "106540352242922"},
             "contacts": list(contacts), "messages": list(messages), "statuses": list(statuses)}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "1022", "changes": [{"value": value, "field": "messages"}]}]}


def text_message(wa_id: str, wamid: str, body: str) -> dict:
    return {"from": wa_id, "id": wamid, "timestamp": "1749416383", "type": "text",
            "text": {"body": body}}


def messaging(object_: str, *items: dict) -> dict:
    return {"object": object_, "entry": [{"id": "PAGE", "time": 1, "messaging": list(items)}]}


def parse(body: bytes | dict):
    return CONNECTOR.parse(CHANNEL, signed(body))


def test_registered_with_the_documented_contract():
    assert CONNECTOR.kinds == {"whatsapp", "messenger", "instagram"}
    assert CONNECTOR.required_secrets == {"app_secret", "verify_token", "access_token"}
    assert CONNECTOR.optional_settings == {"phone_number_id", "page_id", "instagram_account_id"}


# --- handshake and signatures ---------------------------------------------------------------

def test_handshake_echoes_the_challenge():
    answer = CONNECTOR.handshake(CHANNEL, get(**{"hub.mode": "subscribe",
                                                 "hub.verify_token": "verify-me",
                                                 "hub.challenge": "1158201444"}))
    assert (answer.status, answer.body, answer.content_type) == (200, "1158201444", "text/plain")


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": "verify-me", "hub.challenge": "1"},
    {"hub.challenge": "1"}, {}])
def test_handshake_with_a_wrong_token_is_forbidden(query):
    assert CONNECTOR.handshake(CHANNEL, get(**query)).status == 403


def test_documented_signature_vector():
    body = sample("meta", "whatsapp_text.json")
    request = WebhookRequest("POST", URL, {"x-hub-signature-256": "sha256=ded1d1d9621cffa39832cc"
                             "f2b330fa476b4dc8ec2a5d102e1e554312b3f21d42"}, body,
                             "application/json")
    CONNECTOR.verify(CHANNEL, request)


@pytest.mark.parametrize("tamper", ["secret", "body", "missing", "sha1"])
def test_bad_signatures_are_refused(tamper):
    body = sample("meta", "whatsapp_text.json")
    request = signed(body)
    if tamper == "secret":
        request = signed(body, "other")
    elif tamper == "body":
        request = WebhookRequest("POST", URL, request.headers, body.replace(b"color", b"colour"))
    elif tamper == "missing":
        request = WebhookRequest("POST", URL, {}, body)
    else:
        request = WebhookRequest("POST", URL, {"X-Hub-Signature-256": "sha1=abc"}, body)
    with pytest.raises(VerificationError):
        CONNECTOR.verify(CHANNEL, request)


# --- WhatsApp -------------------------------------------------------------------------------

def test_whatsapp_text():
    (event,) = parse(sample("meta", "whatsapp_text.json"))
    assert isinstance(event, MessageEvent)
    assert event.external_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert [(i.kind, i.value) for i in event.identities] == [("phone", "+16505551234")]
    assert (event.sender_name, event.text) == ("Sheena Nelson", "Does it come in another color?")
    assert event.sent_at == datetime.fromtimestamp(1749416383, UTC)


def test_whatsapp_image_keeps_the_media_id():
    (event,) = parse(sample("meta", "whatsapp_image.json"))
    assert event.text == "broken on arrival"
    (attachment,) = event.attachments
    assert (attachment.url, attachment.content_type, attachment.content) == (
        "meta:media/1003383421387256", "image/jpeg", None)
    assert attachment.filename.startswith("image-1003383421387256")


def test_whatsapp_batch_with_several_customers():
    body = whatsapp(
        contacts=[{"profile": {"name": "Ana"}, "wa_id": "34600000001"},
                  {"profile": {"name": "Bo"}, "wa_id": "34600000002"}],
        messages=[text_message("34600000001", "wamid.A", "hola"),
                  text_message("34600000002", "wamid.B", "hej"),
                  {"from": "34600000001", "id": "wamid.R", "type": "reaction",
                   "reaction": {"message_id": "wamid.A", "emoji": "👍"}}],
        statuses=[{"id": "wamid.OUT", "status": "delivered", "timestamp": "1"}])
    events = parse(body)
    messages = [e for e in events if isinstance(e, MessageEvent)]
    assert [(m.external_id, m.identities[0].value, m.sender_name, m.text) for m in messages] == [
        ("wamid.A", "+34600000001", "Ana", "hola"), ("wamid.B", "+34600000002", "Bo", "hej")]
    assert [(s.external_id, s.status) for s in events if isinstance(s, StatusEvent)] == [
        ("wamid.OUT", "delivered")]


def test_whatsapp_statuses():
    (sent,) = parse(sample("meta", "whatsapp_status_sent.json"))
    assert (sent.external_id, sent.status, sent.error) == ("wamid.xyzxyz", "sent", None)
    (failed,) = parse(sample("meta", "whatsapp_status_failed.json"))
    assert failed.status == "failed" and "130472" in failed.error


@pytest.mark.parametrize(("message", "text"), [
    ({"type": "interactive", "interactive": {"type": "button_reply",
                                             "button_reply": {"id": "b1", "title": "Yes"}}},
     "Yes"),
    ({"type": "button", "button": {"payload": "p", "text": "Track order"}}, "Track order"),
    ({"type": "location", "location": {"latitude": 40.4, "longitude": -3.7, "name": "Sol"}},
     "Location: Sol · 40.4, -3.7"),
    # (dropped without a trace: the customer wrote and nobody was told)
    ({"type": "contacts", "contacts": [{"name": {"formatted_name": "Luis Pérez"},
                                        "phones": [{"phone": "+34 600 111 222"}]}]},
     "Shared a contact: Luis Pérez (+34 600 111 222)"),
    ({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
     "[The customer sent a WhatsApp message of a kind this helpdesk cannot show: "
     "unsupported]"),
    ({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {
        "response_json": "{}", "body": "Sent", "name": "flow"}}},
     "[The customer sent a WhatsApp message of a kind this helpdesk cannot show: "
     "interactive nfm_reply]")])
def test_whatsapp_other_message_types(message, text):
    (event,) = parse(whatsapp(messages=[{"from": "34600000001", "id": "wamid.X", **message}]))
    assert event.text == text


@pytest.mark.parametrize("kind", ["reaction", "system", "request_welcome"])
def test_whatsapp_notices_that_are_not_the_customer_writing_make_no_message(kind):
    assert parse(whatsapp(messages=[{"from": "34600000001", "id": "wamid.Y", "type": kind,
                                     kind: {}}])) == []


# --- Messenger and Instagram ----------------------------------------------------------------

def test_messenger_text():
    (event,) = parse(sample("meta", "messenger_text.json"))
    assert (event.external_id, event.text) == ("mid.1457764197618:41d102a3e1ae206a38",
                                               "hello, world!")
    assert [(i.kind, i.value) for i in event.identities] == [("messenger", "USER_ID")]


def test_instagram_text():
    (event,) = parse(sample("meta", "instagram_text.json"))
    assert [(i.kind, i.value) for i in event.identities] == [("instagram", "<IGSID>")]
    assert event.text == "Hi, is this still available?"


def test_echoes_are_ignored_and_receipts_become_statuses():
    events = parse(messaging(
        "page",
        {"sender": {"id": "PAGE"}, "recipient": {"id": "PSID"}, "timestamp": 1,
         "message": {"mid": "m_echo", "text": "our reply", "is_echo": True, "app_id": 1}},
        {"sender": {"id": "PSID"}, "recipient": {"id": "PAGE"},
         "delivery": {"mids": ["m_1", "m_2"], "watermark": 1458668856253}},
        {"sender": {"id": "PSID"}, "recipient": {"id": "PAGE"}, "read": {"watermark": 1}},
        {"sender": {"id": "PSID"}, "recipient": {"id": "PAGE"}, "timestamp": 2,
         "message": {"mid": "m_3", "attachments": [
             {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/a.jpg"}}]}}))
    assert [(type(e).__name__, getattr(e, "external_id", None)) for e in events] == [
        ("StatusEvent", "m_1"), ("StatusEvent", "m_2"), ("WatermarkEvent", None),
        ("MessageEvent", "m_3")]
    # Messenger's read receipt names no message: everything sent to PSID up to the mark.
    watermark = events[2]
    assert (watermark.recipient.kind, watermark.recipient.value) == ("messenger", "PSID")
    assert (watermark.status, watermark.up_to.timestamp()) == ("read", 0.001)
    assert events[3].attachments[0].url == "https://scontent.xx.fbcdn.net/a.jpg"


def test_instagram_read_receipt_names_the_message():
    (event,) = parse(messaging("instagram", {"sender": {"id": "IGSID"},
                                             "read": {"mid": "aWdf"}}))
    assert (event.external_id, event.status) == ("aWdf", "read")


# --- dedupe ---------------------------------------------------------------------------------

def key(body: bytes | dict) -> str:
    return CONNECTOR.dedupe_key(CHANNEL, signed(body))


def test_dedupe_is_stable_across_serializations_and_differs_per_update():
    body = sample("meta", "whatsapp_text.json")
    assert key(body) == key(json.dumps(json.loads(body), indent=2).encode())
    assert key(body) != key(sample("meta", "whatsapp_image.json"))
    sent, failed = key(sample("meta", "whatsapp_status_sent.json")), key(
        sample("meta", "whatsapp_status_failed.json"))
    assert sent != failed  # the same message id, another status
    a, b = text_message("1", "wamid.A", "a"), text_message("2", "wamid.B", "b")
    one, other = whatsapp(messages=[a, b]), whatsapp(messages=[b, a])
    assert key(one) == key(other)
    assert key(one) != key(whatsapp(messages=[a]))


# --- garbage --------------------------------------------------------------------------------

@pytest.mark.parametrize("body", junk_bodies() + [b'{"object": "user", "entry": [{}]}',
                                                  b'{"object": "page", "entry": []}'])
def test_junk_raises_payload_error(body):
    with pytest.raises(PayloadError):
        parse(body)
    with pytest.raises(PayloadError):
        CONNECTOR.dedupe_key(CHANNEL, signed(body))


@pytest.mark.parametrize("name", ["whatsapp_image.json", "whatsapp_status_failed.json",
                                  "messenger_text.json"])
def test_every_corruption_parses_or_raises_payload_error(name):
    for body in corruptions(sample("meta", name)):
        for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
            try:
                call(CHANNEL, signed(body))
            except PayloadError:
                pass
