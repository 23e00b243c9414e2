"""Mailgun: routes' forward() posts (urlencoded or multipart, parsed or raw MIME)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import time_machine
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    ChannelConfig,
    MessageEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
)
from tests.support.payloads import junk_bodies, sample

URL = "https://helpdesk.example.com/webhooks/mailgun/chan-key"
KEY = "key-test"
CONNECTOR = get_connector("mailgun")
CHANNEL = ChannelConfig(id=4, kind="email", provider="mailgun", key="chan-key",
                        settings={"address": "support@mg.example.com"},
                        secrets={"signing_key": KEY})
SAMPLE_TIME = 1364504900
PDF = b"%PDF-1.4 receipt"


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def fields(**changes: str | None) -> list[tuple[str, str]]:
    """The documented parsed-forward fields, changed or removed (None) as asked."""
    pairs = [tuple(pair) for pair in json.loads(sample("mailgun", "parsed_forward.json"))]
    pairs = [(k, changes.pop(k, v)) for k, v in pairs] + list(changes.items())
    return [(k, v) for k, v in pairs if v is not None]


def fresh(pairs: list[tuple[str, str]], token: str = "tok" * 17, at: int | None = None,
          key: str = KEY) -> list[tuple[str, str]]:
    """The fields re-signed with a new timestamp and token, as a new Mailgun attempt."""
    timestamp = str(int(time.time()) if at is None else at)
    pairs = [(k, v) for k, v in pairs if k not in ("timestamp", "token", "signature")]
    return pairs + [("timestamp", timestamp), ("token", token),
                    ("signature", mailgun_signature(key, timestamp, token))]


def multipart(pairs: list[tuple[str, str]], files: dict[str, tuple[str, str, bytes]] | None = None
              ) -> WebhookRequest:
    data = MultiDict(pairs)
    for name, (filename, content_type, content) in (files or {}).items():
        data.add(name, FileStorage(io.BytesIO(content), filename=filename,
                                   content_type=content_type))
    boundary, body = encode_multipart(data)
    return WebhookRequest("POST", URL, {}, body, f"multipart/form-data; boundary={boundary}")


def urlencoded(pairs: list[tuple[str, str]] | bytes) -> WebhookRequest:
    body = pairs if isinstance(pairs, bytes) else urlencode(pairs).encode()
    return WebhookRequest("POST", URL, {}, body, "application/x-www-form-urlencoded")


def with_receipt(pairs: list[tuple[str, str]]) -> WebhookRequest:
    return multipart(pairs, {"attachment-1": ("receipt.pdf", "application/pdf", PDF)})


def parse(request: WebhookRequest) -> MessageEvent:
    (event,) = CONNECTOR.parse(CHANNEL, request)
    return event


def test_registered_with_the_documented_contract():
    assert CONNECTOR.is_email
    assert CONNECTOR.required_secrets == {"signing_key"}
    assert CONNECTOR.content_types == {"application/x-www-form-urlencoded",
                                       "multipart/form-data"}


def test_documented_signature_vector_within_its_window():
    assert mailgun_signature(KEY, str(SAMPLE_TIME), dict(fields())["token"]) == \
        dict(fields())["signature"]
    with time_machine.travel(datetime.fromtimestamp(SAMPLE_TIME + 60, UTC), tick=False):
        CONNECTOR.verify(CHANNEL, with_receipt(fields()))
        CONNECTOR.verify(CHANNEL, urlencoded(fields()))


def test_fresh_signature_accepted():
    CONNECTOR.verify(CHANNEL, with_receipt(fresh(fields())))


@pytest.mark.parametrize("case", ["stale", "future", "key", "token", "missing", "timestamp"])
def test_bad_signatures_refused(case):
    now = int(time.time())
    pairs = {"stale": fresh(fields(), at=now - 301), "future": fresh(fields(), at=now + 301),
             "key": fresh(fields(), key="other")}.get(case, fresh(fields()))
    if case == "token":
        pairs = [(k, "x" + v if k == "token" else v) for k, v in pairs]
    elif case == "missing":
        pairs = [(k, v) for k, v in pairs if k != "signature"]
    elif case == "timestamp":
        pairs = [(k, "soon" if k == "timestamp" else v) for k, v in pairs]
    with pytest.raises(VerificationError):
        CONNECTOR.verify(CHANNEL, with_receipt(pairs))


def test_unreadable_form_is_a_verification_error():
    request = WebhookRequest("POST", URL, {}, b"junk", "multipart/form-data; boundary=x")
    with pytest.raises(VerificationError):
        CONNECTOR.verify(CHANNEL, request)


def test_replay_token_is_the_signed_token():
    assert CONNECTOR.replay_token(CHANNEL, with_receipt(fresh(fields(), token="t-1"))) == "t-1"
    assert CONNECTOR.replay_token(CHANNEL, urlencoded(b"\xff")) is None
    telegram = get_connector("telegram")
    assert telegram.replay_token(CHANNEL, urlencoded(b"token=t-1")) is None  # base default


def test_dedupe_on_message_id_survives_a_new_attempt():
    first = with_receipt(fresh(fields(), token="t-1"))
    retry = with_receipt(fresh(fields(), token="t-2"))
    assert first.body != retry.body
    key = CONNECTOR.dedupe_key(CHANNEL, first)
    assert key == "message-id:CAOe1fK9zZ@mail.gmail.com"
    assert CONNECTOR.dedupe_key(CHANNEL, retry) == key
    other = fields(**{"Message-Id": "<other@mail.gmail.com>"})
    assert CONNECTOR.dedupe_key(CHANNEL, with_receipt(other)) != key


def test_dedupe_reads_message_headers_when_the_field_is_missing():
    """Parsing takes the Message-Id from `message-headers`; dedupe must too, not fall back
    to a hash of a body whose timestamp and token change on every attempt."""
    first = with_receipt(fresh(fields(**{"Message-Id": None}), token="t-1"))
    retry = with_receipt(fresh(fields(**{"Message-Id": None}), token="t-2"))
    assert CONNECTOR.dedupe_key(CHANNEL, first) == "message-id:CAOe1fK9zZ@mail.gmail.com"
    assert CONNECTOR.dedupe_key(CHANNEL, retry) == CONNECTOR.dedupe_key(CHANNEL, first)


def test_parsed_fields():
    event = parse(with_receipt(fields()))
    assert [(i.kind, i.value) for i in event.identities] == [("email", "jane.doe@gmail.com")]
    assert (event.sender_name, event.subject) == ("Jane Doe", "Re: [#4711] Refund request")
    assert event.text == "Any update?"
    assert event.full_text.startswith("Any update?\n\nOn Mon, Jun 3, 2024")
    assert event.html.startswith('<div dir="ltr">Any update?</div>')
    assert (event.external_id, event.message_id) == ("CAOe1fK9zZ@mail.gmail.com",) * 2
    assert event.in_reply_to == ["20240603080200.1.ABC@mg.example.com"]
    assert event.references == ["20240601120000.1.XYZ@mg.example.com",
                                "20240603080200.1.ABC@mg.example.com"]
    (attachment,) = event.attachments
    assert (attachment.filename, attachment.content_type, attachment.content) == (
        "receipt.pdf", "application/pdf", PDF)


def test_urlencoded_without_message_headers_uses_the_lifted_fields():
    event = parse(urlencoded(fields(**{"message-headers": None, "stripped-text": None})))
    assert event.in_reply_to == ["20240603080200.1.ABC@mg.example.com"]
    assert event.message_id == "CAOe1fK9zZ@mail.gmail.com"
    assert event.text == "Any update?"  # quotes and signature stripped here
    assert event.attachments == []


def test_body_mime_is_preferred():
    mime = ("From: Raw Sender <raw@example.com>\r\nSubject: From the MIME\r\n"
            "Message-ID: <mime-1@example.com>\r\n\r\nThe raw body\r\n")
    pairs = [("recipient", "support@mg.example.com"), ("sender", "raw@example.com"),
             ("from", "Someone Else <else@example.com>"), ("subject", "ignored"),
             ("body-mime", mime)]
    event = parse(multipart(fresh(pairs)))
    assert (event.identities[0].value, event.subject, event.text) == (
        "raw@example.com", "From the MIME", "The raw body")
    assert CONNECTOR.dedupe_key(CHANNEL, multipart(fresh(pairs))) == "message-id:mime-1@example.com"


def test_sender_is_the_fallback_for_a_missing_from():
    event = parse(urlencoded([("sender", "bob@example.com"), ("body-plain", "hello")]))
    assert event.identities[0].value == "bob@example.com"


@pytest.mark.parametrize("body", junk_bodies() + [b"timestamp=1&token=2&signature=3",
                                                  b"body-mime=", b"body-plain=no+sender"])
def test_junk_raises_payload_error(body):
    with pytest.raises(PayloadError):
        parse(urlencoded(body))
    with pytest.raises(PayloadError):
        parse(WebhookRequest("POST", URL, {}, body, "multipart/form-data; boundary=xYz"))


def test_junk_multipart_in_dedupe_is_a_payload_error():
    with pytest.raises(PayloadError):
        CONNECTOR.dedupe_key(CHANNEL, WebhookRequest("POST", URL, {}, b"--",
                                                     "multipart/form-data"))


def test_every_corrupted_field_parses_or_raises_payload_error():
    pairs = fields()
    for index in range(len(pairs)):
        for junk in ("", "[[1]]", "\x00\ufffd", "not json {", None):
            changed = [(k, junk if i == index else v) for i, (k, v) in enumerate(pairs)]
            request = with_receipt([(k, v) for k, v in changed if v is not None])
            for call in (CONNECTOR.parse, CONNECTOR.dedupe_key):
                try:
                    call(CHANNEL, request)
                except PayloadError:
                    pass


def test_a_bounce_names_the_reply_it_returns():
    """A delivery report posted as fields (its original's headers an attachment, its words
    the text) named no bounced message: our reply stayed `sent`."""
    headers = json.dumps([
        ["From", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"],
        ["To", "support@mg.example.com"], ["Subject", "Delivery Status Notification (Failure)"],
        ["Message-Id", "<dsn-1@mx.google.com>"],
        ["Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"']])
    pairs = fields(**{"message-headers": headers, "from": "mailer-daemon@googlemail.com",
                      "sender": "mailer-daemon@googlemail.com", "In-Reply-To": None,
                      "References": None, "Message-Id": "<dsn-1@mx.google.com>",
                      "body-plain": "The address was not found.", "stripped-text": None})
    original = (b"From: support@mg.example.com\r\nTo: gone@example.com\r\n"
                b"Message-ID: <helpdesk-msg-42.abc@mg.example.com>\r\nSubject: Re: x\r\n\r\n")
    event = parse(multipart(pairs, {"attachment-1": ("headers.txt", "text/rfc822-headers",
                                                     original)}))
    assert "bounce" in event.flags
    assert event.bounced_message_ids == ["helpdesk-msg-42.abc@mg.example.com"]
    quoted = parse(multipart([(k, v) for k, v in pairs if k != "body-plain"] + [
        ("body-plain", "Not delivered.\n\nMessage-ID: <helpdesk-msg-43.def@mg.example.com>")]))
    assert quoted.bounced_message_ids == ["helpdesk-msg-43.def@mg.example.com"]


def test_a_delay_notice_names_no_failed_reply():
    """A report that says `Action: delayed` is not a failure (it marked our reply failed)."""
    headers = json.dumps([
        ["From", "mailer-daemon@googlemail.com"], ["Message-Id", "<dsn-2@mx.google.com>"],
        ["Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"']])
    pairs = fields(**{"message-headers": headers, "from": "mailer-daemon@googlemail.com",
                      "sender": "mailer-daemon@googlemail.com", "In-Reply-To": None,
                      "References": None, "Message-Id": "<dsn-2@mx.google.com>",
                      "body-plain": "Delivery delayed.", "stripped-text": None})
    original = b"Message-ID: <helpdesk-msg-44.abc@mg.example.com>\r\n\r\n"
    status = (b"Reporting-MTA: dns; mx.google.com\r\n\r\n"
              b"Final-Recipient: rfc822; a@b.c\r\nAction: delayed\r\n")
    event = parse(multipart(pairs, {
        "attachment-1": ("status.txt", "message/delivery-status", status),
        "attachment-2": ("headers.txt", "text/rfc822-headers; charset=us-ascii", original)}))
    assert "bounce" in event.flags and event.bounced_message_ids == []
    failed = parse(multipart(pairs, {
        "attachment-1": ("status.txt", "message/delivery-status",
                         status.replace(b"delayed", b"failed")),
        "attachment-2": ("headers.txt", "text/rfc822-headers; charset=us-ascii", original)}))
    assert failed.bounced_message_ids == ["helpdesk-msg-44.abc@mg.example.com"]
