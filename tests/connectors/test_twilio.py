"""Twilio: signed form posts for SMS/MMS/WhatsApp and Voice, answered with TwiML."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest

from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    CallEvent,
    ChannelConfig,
    MessageEvent,
    PayloadError,
    StatusEvent,
    VerificationError,
    WebhookRequest,
)
from tests.support.payloads import junk_bodies, sample

URL = "https://helpdesk.example.com/webhooks/twilio/chan-key"
TOKEN = "twilio-auth-token"
FORM = "application/x-www-form-urlencoded"
CONNECTOR = get_connector("twilio")


def channel(kind: str = "sms", token: str = TOKEN) -> ChannelConfig:
    return ChannelConfig(id=3, kind=kind, provider="twilio", key="chan-key",
                         settings={"account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                                   "phone_number": "+13456789012"},
                         secrets={"auth_token": token})


def twilio_signature(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """The documented scheme, written independently of the connector."""
    names = sorted({name for name, _ in pairs})
    data = url + "".join(name + value for name in names
                         for value in sorted({v for n, v in pairs if n == name}))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def post(body: str | bytes | list[tuple[str, str]], url: str = URL, token: str = TOKEN,
         signature: str | None = None) -> WebhookRequest:
    if isinstance(body, list):
        body = urlencode(body)
    raw = body.encode() if isinstance(body, str) else body
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    sig = signature if signature is not None else twilio_signature(token, url, pairs)
    return WebhookRequest(method="POST", url=url, headers={"X-Twilio-Signature": sig},
                          body=raw, content_type=FORM)


def from_sample(name: str, url: str = URL, **changes: str) -> WebhookRequest:
    pairs = parse_qsl(sample("twilio", name).decode(), keep_blank_values=True)
    pairs = [(k, changes.pop(k, v)) for k, v in pairs] + list(changes.items())
    return post(pairs, url)


def voice(**params: str) -> WebhookRequest:
    base = {"AccountSid": "AC1", "CallSid": "CA0001", "From": "+14158675309",
            "To": "+18005551212", "Direction": "inbound", "CallStatus": "in-progress"}
    return post(list({**base, **params}.items()))


def parse_one(request: WebhookRequest, kind: str = "sms"):
    events = CONNECTOR.parse(channel(kind), request)
    assert len(events) == 1
    return events[0]


# --- registration and signatures -----------------------------------------------------------

def test_registered_with_the_documented_contract():
    assert CONNECTOR.kinds == {"sms", "whatsapp", "voice"}
    assert CONNECTOR.required_secrets == {"auth_token"}
    assert CONNECTOR.required_settings == {"account_sid", "phone_number"}
    assert CONNECTOR.content_types == {FORM}


@pytest.mark.parametrize(("url", "params", "expected"), [
    ("https://mycompany.com/myapp.php?foo=1&bar=2",
     [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
      ("From", "+12349013030"), ("To", "+18005551212")], "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    ("https://mycompany.com/myapp.php?foo=1&bar=2",
     [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
      ("From", "+14158675309"), ("To", "+18005551212")], "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("https://mycompany.com/myapp.php?foo=1&bar=2",
     [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"),
      ("Digits", "1234")], "IK+Dwps556ElfBT0I3Rgjkr1wJU="),
])
def test_documented_vectors_verify(url, params, expected):
    assert twilio_signature("12345", url, params) == expected
    CONNECTOR.verify(channel(token="12345"), post(params, url, signature=expected))


def test_port_variants_are_accepted():
    """Twilio signs with or without the default port; both must verify."""
    body = sample("twilio", "sms.txt").decode()
    pairs = parse_qsl(body, keep_blank_values=True)
    with_port = "https://helpdesk.example.com:443/webhooks/twilio/chan-key"
    signed_with_port = twilio_signature(TOKEN, with_port, pairs)
    CONNECTOR.verify(channel(), post(body, URL, signature=signed_with_port))
    CONNECTOR.verify(channel(), post(body, with_port, signature=twilio_signature(TOKEN, URL,
                                                                                 pairs)))


@pytest.mark.parametrize("tamper", ["token", "param", "query", "header", "missing"])
def test_bad_signatures_are_refused(tamper):
    request = from_sample("sms.txt")
    if tamper == "token":
        request = post(request.body, token="other-token")
    elif tamper == "param":
        request = post(request.body.replace(b"arrived", b"arrived!"),
                       signature=request.header("X-Twilio-Signature"))
    elif tamper == "query":
        request = post(request.body, URL + "?event=x",
                       signature=request.header("X-Twilio-Signature"))
    elif tamper == "header":
        request = post(request.body, signature="AAAA" + request.header("X-Twilio-Signature"))
    else:
        request = WebhookRequest("POST", URL, {}, request.body, FORM)
    with pytest.raises(VerificationError):
        CONNECTOR.verify(channel(), request)


def test_channel_without_token_refuses_everything():
    with pytest.raises(VerificationError):
        CONNECTOR.verify(channel(token=""), post(sample("twilio", "sms.txt"), token=""))


def test_unreadable_body_is_a_verification_error():
    request = WebhookRequest("POST", URL, {"X-Twilio-Signature": "x"}, b"--junk",
                             "multipart/form-data")
    with pytest.raises(VerificationError):
        CONNECTOR.verify(channel(), request)


# --- messaging ------------------------------------------------------------------------------

def test_sms():
    event = parse_one(from_sample("sms.txt"))
    assert isinstance(event, MessageEvent)
    assert event.external_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert [(i.kind, i.value) for i in event.identities] == [("phone", "+12125551234")]
    assert event.text == "Hi, my order #12345 has not arrived"
    assert event.attachments == []


def test_mms_media_become_attachment_urls():
    event = parse_one(from_sample("mms.txt"))
    assert event.text == "see attached"
    assert [(a.content_type, a.filename, a.content) for a in event.attachments] == [
        ("image/jpeg", "ME11111111111111111111111111111111.jpg", None),
        ("application/pdf", "ME22222222222222222222222222222222.pdf", None)]
    assert event.attachments[1].url.endswith("/Media/ME22222222222222222222222222222222")


def test_whatsapp_strips_the_prefix_and_keeps_the_profile_name():
    event = parse_one(from_sample("whatsapp_button.txt"), "whatsapp")
    assert [(i.kind, i.value) for i in event.identities] == [("phone", "+6285176810035")]
    assert event.sender_name == "teknisee"
    assert event.text == "Konfirmasi"
    assert event.external_id == "SM8824d91645395b17594d92659b878468"


def test_a_whatsapp_location_is_told_in_words():
    request = post([("MessageSid", "SM77"), ("AccountSid", "AC1"), ("NumMedia", "0"),
                    ("From", "whatsapp:+6285176810035"), ("To", "whatsapp:+14155238886"),
                    ("Body", ""), ("Latitude", "-6.2088"), ("Longitude", "106.8456"),
                    ("Label", "Toko Maju"), ("Address", "Jl. Sudirman 1, Jakarta")])
    event = parse_one(request, "whatsapp")
    assert event.text == "Location: Toko Maju · Jl. Sudirman 1, Jakarta · -6.2088, 106.8456"


@pytest.mark.parametrize(("twilio_status", "ours"), [
    ("queued", "queued"), ("sending", "queued"), ("sent", "sent"), ("delivered", "delivered"),
    ("read", "read"), ("failed", "failed"), ("undelivered", "failed")])
def test_status_callbacks(twilio_status, ours):
    params = [("MessageSid", "SM42"), ("SmsSid", "SM42"), ("AccountSid", "AC1"),
              ("From", "+13456789012"), ("To", "+12125551234"), ("MessageStatus", twilio_status),
              ("SmsStatus", twilio_status)]
    if ours == "failed":
        params.append(("ErrorCode", "30003"))
    event = parse_one(post(params))
    assert isinstance(event, StatusEvent)
    assert (event.external_id, event.status) == ("SM42", ours)
    assert (event.error is not None) == (ours == "failed")
    if ours == "failed":
        assert "30003" in event.error
    assert CONNECTOR.dedupe_key(channel(), post(params)) == f"status:SM42:{twilio_status}"


def test_messaging_dedupe_keys():
    sms = from_sample("sms.txt")
    assert CONNECTOR.dedupe_key(channel(), sms) == "message:SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert CONNECTOR.dedupe_key(channel(), from_sample("sms.txt")) == \
        CONNECTOR.dedupe_key(channel(), sms)
    assert CONNECTOR.dedupe_key(channel(), from_sample("mms.txt")) != \
        CONNECTOR.dedupe_key(channel(), sms)


@pytest.mark.parametrize("body", [
    b"", b"Body=hello", b"MessageSid=SM1&Body=hi", b"MessageSid=SM1&From=%2B1&NumMedia=abc",
    b"MessageSid=SM1&From=%2B1&NumMedia=1", b"CallSid=&CallStatus=ringing"] + junk_bodies())
def test_garbage_raises_payload_error(body):
    request = post(body)
    with pytest.raises(PayloadError):
        CONNECTOR.parse(channel(), request)


def test_unreadable_dedupe_is_a_payload_error():
    with pytest.raises(PayloadError):
        CONNECTOR.dedupe_key(channel(), post(b"Body=no+sid"))


def test_messaging_is_answered_with_empty_twiml():
    answer = CONNECTOR.acknowledge(channel(), from_sample("sms.txt"), {"agents_online": True})
    assert (answer.status, answer.content_type) == (200, "text/xml")
    assert list(ET.fromstring(answer.body)) == []


# --- voice ----------------------------------------------------------------------------------

def test_incoming_call():
    event = parse_one(from_sample("voice_incoming.txt"), "voice")
    assert isinstance(event, CallEvent)
    assert (event.kind, event.status, event.direction) == ("incoming", "ringing", "inbound")
    assert event.external_id == "CA5f2c3d0e1b9a4c7d8e6f5a4b3c2d1e0f"
    assert [(i.kind, i.value) for i in event.identities] == [("phone", "+14158675309")]
    assert (event.rank, event.sequence, event.outcome) == (1, None, None)


def test_status_callback_busy_is_missed():
    event = parse_one(from_sample("voice_status_busy.txt"), "voice")
    assert (event.kind, event.status, event.sequence, event.rank) == ("status", "busy", 2, 3)
    assert event.outcome == "missed"
    assert event.direction == "outbound"  # the customer is the called party
    assert [i.value for i in event.identities] == ["+260967301606"]
    assert event.at == datetime(2022, 5, 7, 14, 30, 14, tzinfo=UTC)


def test_status_callback_completed_leaves_the_outcome_open():
    event = parse_one(from_sample("voice_status_completed.txt"), "voice")
    assert (event.kind, event.status, event.call_duration, event.outcome) == \
        ("status", "completed", 49, None)


def test_recording_is_a_voicemail():
    event = parse_one(from_sample("voice_recording.txt"), "voice")
    assert (event.kind, event.outcome) == ("recording", "voicemail")
    assert event.recording_sid == "RE0123456789abcdef0123456789abcdef"
    assert event.recording_url.endswith("/Recordings/RE0123456789abcdef0123456789abcdef")
    assert CONNECTOR.dedupe_key(channel("voice"), from_sample("voice_recording.txt")) == \
        "recording:RE0123456789abcdef0123456789abcdef:completed"


def test_transcription():
    request = voice(CallStatus="completed", TranscriptionSid="TR1", TranscriptionStatus="completed",
                    TranscriptionText="Please call me back about order 4711",
                    RecordingSid="RE1", RecordingUrl="https://api.twilio.com/rec/RE1")
    event = parse_one(request, "voice")
    assert (event.kind, event.transcript, event.transcription_sid, event.outcome) == (
        "transcription", "Please call me back about order 4711", "TR1", "voicemail")
    assert CONNECTOR.dedupe_key(channel("voice"), request) == "transcription:TR1"


@pytest.mark.parametrize(("result", "outcome"), [
    ("bridged", "answered"), ("hangup", "abandoned"), ("queue-full", None), ("leave", None)])
def test_enqueue_results(result, outcome):
    event = parse_one(voice(QueueResult=result, QueueSid="QU1", QueueTime="45"), "voice")
    assert (event.kind, event.queue_result, event.wait_seconds, event.outcome) == (
        "enqueue_result", result, 45, outcome)


@pytest.mark.parametrize(("status", "outcome"), [
    ("completed", "answered"), ("no-answer", None), ("busy", None)])
def test_dial_results(status, outcome):
    event = parse_one(voice(DialCallStatus=status, DialCallSid="CA9", DialCallDuration="30"),
                      "voice")
    assert (event.kind, event.dial_status, event.outcome) == ("dial_result", status, outcome)
    assert event.dial_call_duration == 30


@pytest.mark.parametrize("number", ["anonymous", "client:alice", "+266696687", ""])
def test_withheld_callers_have_no_identity(number):
    assert parse_one(voice(From=number, CallStatus="ringing"), "voice").identities == []


def test_voice_dedupe_keys():
    key = CONNECTOR.dedupe_key
    busy = from_sample("voice_status_busy.txt")
    again = from_sample("voice_status_busy.txt")
    assert key(channel("voice"), busy) == "call:CA35c037c9b8bb40c5002e2fe8cbbeecd9:seq:2"
    assert key(channel("voice"), busy) == key(channel("voice"), again)
    assert key(channel("voice"), from_sample("voice_status_busy.txt", SequenceNumber="3")) != \
        key(channel("voice"), busy)
    incoming = key(channel("voice"), from_sample("voice_incoming.txt"))
    assert incoming == "call:CA5f2c3d0e1b9a4c7d8e6f5a4b3c2d1e0f:ringing:incoming"
    assert key(channel("voice"), voice(CallStatus="completed")) == "call:CA0001:completed:status"
    assert key(channel("voice"), voice(QueueResult="hangup")) == \
        "call:CA0001:in-progress:enqueue_result"


def _twiml(request: WebhookRequest, online: bool) -> ET.Element:
    answer = CONNECTOR.acknowledge(channel("voice"), request, {"agents_online": online})
    assert (answer.status, answer.content_type) == (200, "text/xml")
    return ET.fromstring(answer.body)


def _event_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path == "/webhooks/twilio/chan-key"
    return parse_qs(parts.query)["event"]


def test_incoming_call_with_agents_online_is_enqueued():
    root = _twiml(from_sample("voice_incoming.txt"), online=True)
    (enqueue,) = list(root)
    assert (enqueue.tag, enqueue.text) == ("Enqueue", "support")
    assert _event_of(enqueue.get("action")) == ["enqueue"]
    assert enqueue.get("waitUrl")


def test_incoming_call_without_agents_records_a_voicemail():
    root = _twiml(from_sample("voice_incoming.txt"), online=False)
    say, record = list(root)
    assert say.tag == "Say" and say.text
    assert (record.tag, record.get("transcribe")) == ("Record", "true")
    assert _event_of(record.get("action")) == ["recording"]
    assert _event_of(record.get("transcribeCallback")) == ["transcription"]
    assert _event_of(record.get("recordingStatusCallback")) == ["recording_status"]


def test_callback_urls_replace_an_existing_event_and_keep_the_query():
    request = from_sample("voice_incoming.txt", url=URL + "?event=old&tenant=a%26b")
    enqueue = list(_twiml(request, online=True))[0]
    query = parse_qs(urlsplit(enqueue.get("action")).query)
    assert query == {"event": ["enqueue"], "tenant": ["a&b"]}


@pytest.mark.parametrize("name", ["voice_status_busy.txt", "voice_recording.txt"])
def test_other_voice_callbacks_get_empty_twiml(name):
    assert list(_twiml(from_sample(name), online=True)) == []


def test_garbage_is_answered_with_empty_twiml():
    request = WebhookRequest("POST", URL, {}, b"\xff--", "multipart/form-data")
    assert list(_twiml(request, online=True)) == []


@pytest.mark.parametrize("name", ["sms.txt", "mms.txt", "whatsapp_button.txt",
                                  "voice_incoming.txt", "voice_status_busy.txt",
                                  "voice_recording.txt"])
def test_every_corrupted_parameter_parses_or_raises_payload_error(name):
    pairs = parse_qsl(sample("twilio", name).decode(), keep_blank_values=True)
    for index in range(len(pairs)):
        for junk in ("", "-1", "abc", "\x00\ufffd", "9" * 40, None):
            changed = [(k, junk if i == index else v) for i, (k, v) in enumerate(pairs)]
            request = post([(k, v) for k, v in changed if v is not None])
            for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
                try:
                    call(channel("voice"), request)
                except PayloadError:
                    pass
            assert CONNECTOR.acknowledge(channel("voice"), request, {}).status == 200


@pytest.mark.parametrize(("params", "kind"), [
    ({"CallSid": "CA1", "CallStatus": "ringing"}, "incoming"),
    ({"CallSid": "CA1"}, "incoming"),  # hand-made: Twilio always says `ringing`
    ({"CallSid": "CA1", "CallDuration": "12"}, "status"),  # a final status, its word lost
    ({"CallSid": "CA1", "CallStatus": "completed"}, "status"),
    ({"CallSid": "CA2", "CallStatus": "completed", "Direction": "outbound-dial",
      "ParentCallSid": "CA1", "CallDuration": "30"}, "child_leg"),
])
def test_a_voice_callback_is_told_by_its_parameters(params, kind):
    from helpdesk.connectors.twilio_voice import call_kind

    assert call_kind(params) == kind
