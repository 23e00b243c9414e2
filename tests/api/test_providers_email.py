"""Email providers end to end: signed HTTP → stored delivery → real worker → REST API.

Postmark (JSON, URL key + basic auth), Mailgun (HMAC over timestamp + one-time token) and
SendGrid (multipart, URL key + basic auth).
"""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

import pytest

from tests.support import factories
from tests.support.payloads import sample
from tests.support.signing import (
    FORM,
    Webhooks,
    customer_with,
    deliveries,
    mailgun_form,
    messages_of,
    multipart,
    tickets_of,
)

AUTH = ("inbound", "p:ss wörd")
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
JUNK = bytes(random.Random(11).getrandbits(8) for _ in range(2048))
NESTED = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.fixture
def hooks(api) -> Webhooks:
    return Webhooks(api.base_url)


@pytest.fixture
def postmark(app):
    return factories.channel(app, "postmark", "email", {"address": "support@example.com"},
                             {"basic_auth_user": AUTH[0], "basic_auth_password": AUTH[1]})


@pytest.fixture
def mailgun(app):
    return factories.channel(app, "mailgun", "email", {"address": "support@mg.example.com"},
                             {"signing_key": MAILGUN_KEY})


@pytest.fixture
def sendgrid(app):
    return factories.channel(app, "sendgrid", "email", {"address": "help@example.com"},
                             {"basic_auth_user": AUTH[0], "basic_auth_password": AUTH[1]})


def postmark_email(message_id: str = "pm-1", email: str = "ana.lima@example.com") -> dict:
    data = json.loads(sample("postmark", "inbound.json"))
    data.update(MessageID=message_id, From=email, FromName="Ana Lima",
                FromFull={"Email": email, "Name": "Ana Lima", "MailboxHash": ""})
    return data


def mailgun_fields(**changes: str) -> list[tuple[str, str]]:
    pairs = [tuple(p) for p in json.loads(sample("mailgun", "parsed_forward.json"))]
    pairs = [(k, changes.pop(k, v)) for k, v in pairs
             if k not in ("timestamp", "token", "signature")]
    return pairs + list(changes.items())


def sendgrid_email(**changes: str | bytes) -> bytes:
    pairs = [tuple(p) for p in json.loads(sample("sendgrid", "default_fields.json"))]
    pairs = [(k, changes.pop(k, v)) for k, v in pairs] + list(changes.items())
    files = [("attachment1", "MG_2359.jpg", "image/jpeg", b"\xff\xd8\xff\xe0 jpeg"),
             ("attachment2", "DockMcWordface.docx", "", b"PK\x03\x04 docx")]
    return multipart(pairs, files)


# --- a signed delivery becomes customer, ticket and message ---------------------------------

def test_postmark_email_reaches_the_rest_api(api, admin, agent, hooks, postmark, drain):
    response = hooks.postmark(postmark, postmark_email(), auth=AUTH)
    assert response.status_code == 200, response.text
    drain()
    staff = api.as_(agent)
    customer = customer_with(staff, "email:ana.lima@example.com")
    assert customer["name"] == "Ana Lima"
    assert {"kind": "email", "value": "ana.lima@example.com", "verified": True} in \
        customer["identities"]
    (ticket,) = tickets_of(staff, customer["id"])
    assert (ticket["subject"], ticket["channel"]["provider"]) == ("Test subject", "postmark")
    (message,) = messages_of(staff, customer["id"])
    assert (message["direction"], message["text"]) == ("inbound", "This is the reply text")
    assert [a["filename"] for a in message["attachments"]] == ["test.txt"]
    assert [d["status"] for d in deliveries(api.as_(admin))] == ["processed"]


def test_mailgun_email_reaches_the_rest_api(api, admin, agent, hooks, mailgun, drain):
    assert hooks.mailgun(mailgun, mailgun_form(mailgun_fields(), MAILGUN_KEY)).status_code == 200
    drain()
    staff = api.as_(agent)
    customer = customer_with(staff, "email:jane.doe@gmail.com")
    assert customer["name"] == "Jane Doe"
    (ticket,) = tickets_of(staff, customer["id"])
    assert ticket["subject"] == "Re: [#4711] Refund request"
    (message,) = messages_of(staff, customer["id"])
    assert message["text"] == "Any update?"
    assert [d["status"] for d in deliveries(api.as_(admin))] == ["processed"]


def test_sendgrid_email_reaches_the_rest_api(api, admin, agent, hooks, sendgrid, drain):
    assert hooks.sendgrid(sendgrid, sendgrid_email(), auth=AUTH).status_code == 200
    drain()
    staff = api.as_(agent)
    customer = customer_with(staff, "email:example@example.com")
    assert customer["name"] == "Sender Name"
    (ticket,) = tickets_of(staff, customer["id"])
    assert ticket["subject"] == "Different File Types"
    (message,) = messages_of(staff, customer["id"])
    assert "multiple attachments" in message["text"]
    assert sorted(a["filename"] for a in message["attachments"]) == [
        "DockMcWordface.docx", "MG_2359.jpg"]


# --- bad signatures: 401, nothing stored --------------------------------------------------

@pytest.mark.parametrize("case", ["postmark-no-auth", "postmark-wrong-password",
                                  "mailgun-wrong-key", "mailgun-stale", "sendgrid-wrong-user"])
def test_bad_signature_is_401_and_nothing_is_stored(api, admin, hooks, postmark, mailgun,
                                                    sendgrid, drain, case):
    if case == "postmark-no-auth":
        response = hooks.postmark(postmark, postmark_email())
    elif case == "postmark-wrong-password":
        response = hooks.postmark(postmark, postmark_email(), auth=(AUTH[0], "guess"))
    elif case == "mailgun-wrong-key":
        response = hooks.mailgun(mailgun, mailgun_form(mailgun_fields(), "key-wrong"))
    elif case == "mailgun-stale":
        body = mailgun_form(mailgun_fields(), MAILGUN_KEY, timestamp=1364504900)
        response = hooks.mailgun(mailgun, body)
    else:
        response = hooks.sendgrid(sendgrid, sendgrid_email(), auth=("someone", AUTH[1]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    drain()
    assert deliveries(api.as_(admin)) == []
    assert api.as_(admin).get("/api/v1/customers").json()["total"] == 0


# --- duplicates: one message -------------------------------------------------------------

def test_duplicates_give_one_message_each(api, admin, agent, hooks, postmark, mailgun,
                                          sendgrid, drain):
    for _ in range(2):
        assert hooks.postmark(postmark, postmark_email(), auth=AUTH).status_code == 200
        assert hooks.sendgrid(sendgrid, sendgrid_email(), auth=AUTH).status_code == 200
        # Mailgun retries with a new timestamp and token: the Message-Id is the same.
        body = mailgun_form(mailgun_fields(), MAILGUN_KEY)
        assert hooks.mailgun(mailgun, body).status_code == 200
    drain()
    staff = api.as_(agent)
    for email in ("ana.lima@example.com", "jane.doe@gmail.com", "example@example.com"):
        assert len(messages_of(staff, customer_with(staff, f"email:{email}")["id"])) == 1
    assert len(deliveries(api.as_(admin))) == 3


def test_mailgun_replayed_token_is_refused_unless_it_is_the_same_request(
        api, admin, agent, hooks, mailgun, drain):
    token = "replay" * 8
    original = mailgun_form(mailgun_fields(), MAILGUN_KEY, token=token)
    assert hooks.mailgun(mailgun, original).status_code == 200
    drain()
    forged_fields = mailgun_fields(**{"Message-Id": "<forged@evil.example>",
                                      "stripped-text": "Refund me twice"})
    forged = mailgun_form(forged_fields, MAILGUN_KEY, token=token)
    refused = hooks.mailgun(mailgun, forged)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "replayed_token"
    again = hooks.mailgun(mailgun, original)
    assert again.status_code == 200
    drain()
    staff = api.as_(agent)
    (message,) = messages_of(staff, customer_with(staff, "email:jane.doe@gmail.com")["id"])
    assert message["text"] == "Any update?"
    assert [d["status"] for d in deliveries(api.as_(admin))] == ["processed"]


def test_the_token_of_a_duplicate_cannot_be_replayed_with_another_mail(
        api, admin, hooks, mailgun, drain):
    """Mailgun signs only timestamp + token: the token of a retry (a duplicate, which stores
    no delivery) must not verify a different mail afterwards."""
    assert hooks.mailgun(mailgun, mailgun_form(mailgun_fields(), MAILGUN_KEY)).status_code \
        == 200
    retry_token = "retry" * 10
    retry = mailgun_form(mailgun_fields(), MAILGUN_KEY, token=retry_token)
    assert hooks.mailgun(mailgun, retry).status_code == 200  # the same mail: nothing new
    forged = mailgun_form(mailgun_fields(**{"Message-Id": "<forged@evil.example>"}),
                          MAILGUN_KEY, token=retry_token)
    refused = hooks.mailgun(mailgun, forged)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "replayed_token"
    assert hooks.mailgun(mailgun, retry).status_code == 200  # the retry itself, again
    drain()
    assert len(deliveries(api.as_(admin))) == 1


# --- garbage from a verified sender: 200, delivery failed with its error ----------------------

POSTMARK_GARBAGE = {
    "empty": b"",
    "binary": JUNK,
    "wrong-types": json.dumps({"MessageID": ["pm"], "FromFull": "ana", "From": 5,
                               "Attachments": {"Name": 1}, "Headers": "X: y"}).encode(),
    "no-sender": json.dumps({"MessageID": "pm-9", "TextBody": "hello"}).encode(),
    "nested": NESTED,
}


@pytest.mark.parametrize("name", list(POSTMARK_GARBAGE))
def test_postmark_garbage_is_quarantined(api, admin, hooks, postmark, drain, name):
    assert hooks.postmark(postmark, POSTMARK_GARBAGE[name], auth=AUTH).status_code == 200
    drain()
    assert_quarantined(api.as_(admin))


MAILGUN_GARBAGE = {
    "empty": [],
    "binary": [("body-mime", JUNK.decode("latin-1"))],
    "wrong-types": [("from", "[]"), ("message-headers", '{"From": 5}'), ("attachment-count", "x")],
    "nested": [("message-headers", "[" * 100_000 + "]" * 100_000), ("body-plain", "hi")],
}


@pytest.mark.parametrize("name", list(MAILGUN_GARBAGE))
def test_mailgun_garbage_is_quarantined(api, admin, hooks, mailgun, drain, name):
    body = mailgun_form(MAILGUN_GARBAGE[name], MAILGUN_KEY)
    assert hooks.mailgun(mailgun, body).status_code == 200
    drain()
    assert_quarantined(api.as_(admin))


SENDGRID_GARBAGE = {
    "empty": b"",
    "binary": JUNK,
    "binary-fields": multipart([("headers", JUNK), ("text", JUNK), ("email", b"\x00" * 64)]),
    "wrong-types": multipart([("from", "5"), ("attachment-info", "[1, 2]"), ("charsets", "7"),
                              ("subject", "")]),
    "nested": multipart([("charsets", "[" * 100_000 + "]" * 100_000),
                         ("attachment-info", NESTED.decode())]),
}


@pytest.mark.parametrize("name", list(SENDGRID_GARBAGE))
def test_sendgrid_garbage_is_quarantined(api, admin, hooks, sendgrid, drain, name):
    assert hooks.sendgrid(sendgrid, SENDGRID_GARBAGE[name], auth=AUTH).status_code == 200
    drain()
    assert_quarantined(api.as_(admin))


def assert_quarantined(admin_api) -> None:
    (failed,) = deliveries(admin_api, "failed")
    assert failed["error"]
    assert deliveries(admin_api) == [failed]
    assert admin_api.get("/api/v1/tickets").json()["total"] == 0


def test_a_nul_character_is_dropped_not_the_email(api, admin, agent, hooks, postmark, drain):
    """`\\u0000` is legal JSON but PostgreSQL refuses it: the email must still arrive."""
    email = postmark_email()
    email.update(FromName="Ana\u0000 Lima", Subject="Test\u0000 subject",
                 StrippedTextReply="This is\u0000 the reply text")
    email["FromFull"]["Name"] = "Ana\u0000 Lima"
    assert hooks.postmark(postmark, email, auth=AUTH).status_code == 200
    drain()
    staff = api.as_(agent)
    customer = customer_with(staff, "email:ana.lima@example.com")
    (message,) = messages_of(staff, customer["id"])
    assert (customer["name"], message["text"]) == ("Ana Lima", "This is the reply text")
    assert tickets_of(staff, customer["id"])[0]["subject"] == "Test subject"
    assert [d["status"] for d in deliveries(api.as_(admin))] == ["processed"]


# --- size limits: email has its own --------------------------------------------------------

def test_a_large_email_is_accepted_under_the_email_limit(api, agent, hooks, postmark, drain):
    email = postmark_email()
    email["Attachments"][0]["Content"] = "QUJD" * (3 * 1024 * 1024 // 4)  # a 3 MB body
    assert hooks.postmark(postmark, email, auth=AUTH).status_code == 200
    drain()
    staff = api.as_(agent)
    (message,) = messages_of(staff, customer_with(staff, "email:ana.lima@example.com")["id"])
    assert message["attachments"][0]["size"] == 3 * 1024 * 1024 * 3 // 4


def _downloaded(api, agent, hooks, postmark, drain, **fields) -> tuple[dict, object]:
    """A Postmark mail whose attachment has these fields, as an agent reads and downloads it."""
    email = postmark_email()
    email["Attachments"][0].update(fields)
    assert hooks.postmark(postmark, email, auth=AUTH).status_code == 200
    drain()
    staff = api.as_(agent)
    (message,) = messages_of(staff, customer_with(staff, "email:ana.lima@example.com")["id"])
    (attachment,) = message["attachments"]
    return attachment, staff.get(attachment["url"].removeprefix(api.base_url))


def test_an_attachment_named_with_line_breaks_downloads(api, agent, hooks, postmark, drain):
    """A filename with CR/LF (Postmark passes names as the sender wrote them) would break the
    download's Content-Disposition header: it is stored and served without them."""
    attachment, download = _downloaded(api, agent, hooks, postmark, drain,
                                       Name="invoice\r\nX-Injected: 1.pdf")
    assert attachment["filename"] == "invoice  X-Injected: 1.pdf"
    assert download.status_code == 200, download.text
    assert "X-Injected" not in download.headers
    assert "invoice" in download.headers["Content-Disposition"]


def test_an_attachment_typed_with_line_breaks_downloads(api, agent, hooks, postmark, drain):
    """A content type with CR/LF (a JSON string holds anything) made every download of the
    attachment a 500 (the header refused): it is stored and served as octet-stream."""
    attachment, download = _downloaded(api, agent, hooks, postmark, drain,
                                       ContentType="application/pdf\r\nX-Injected: 1")
    assert attachment["content_type"] == "application/octet-stream"
    assert download.status_code == 200, download.text
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert "X-Injected" not in download.headers


def test_a_range_no_byte_of_an_attachment_answers_is_a_416_in_the_json_shape(
        api, agent, hooks, postmark, drain):
    """Found by fuzzing: a Range past the file's end answered `"code": "error"`."""
    attachment, whole = _downloaded(api, agent, hooks, postmark, drain)
    assert whole.status_code == 200
    path = attachment["url"].removeprefix(api.base_url)
    refused = api.as_(agent).get(path, headers={"Range": f"bytes={len(whole.content) + 5}-"})
    assert refused.status_code == 416, refused.text
    assert refused.json()["error"]["code"] == "range_not_satisfiable"
    part = api.as_(agent).get(path, headers={"Range": "bytes=0-1"})
    assert part.status_code == 206 and part.content == whole.content[:2]


def test_wrong_content_type_is_415_before_the_signature(api, admin, hooks, mailgun):
    body = urlencode(mailgun_fields()).encode()
    assert hooks.post(mailgun, body, "application/json").status_code == 415
    assert hooks.post(mailgun, body, FORM).status_code == 401
    assert deliveries(api.as_(admin)) == []
