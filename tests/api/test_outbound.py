"""Public replies go out through the ticket's channel, against real local provider servers.

Tickets are opened the way providers open them (signed webhooks over real HTTP), replies are
posted through the REST API, and the real RQ worker sends them to `FakeProviders` (a local
HTTP server speaking the providers' send APIs) or to an aiosmtpd server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select, update

from helpdesk.extensions import db
from helpdesk.models import Message, Ticket
from tests.support import factories
from tests.support.fake_providers import (
    CALLBACK,
    GRAPH,
    TELEGRAM,
    TWILIO,
    X_DM,
    FakeProviders,
    SmtpServer,
)

API_BASES = ("TWILIO_API_BASE", "META_GRAPH_API_BASE", "TELEGRAM_API_BASE", "X_API_BASE")
CONFIG_KEYS = (*API_BASES, "SMTP_URL", "OUTBOUND_RETRY_INTERVALS", "PUBLIC_URL")
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
OUR_NUMBER = "+13456789012"
CUSTOMER_PHONE = "+12125551234"
FORM = "application/x-www-form-urlencoded"
META_IDS = {"whatsapp": ("phone_number_id", "106540352242922"),
            "messenger": ("page_id", "1234567890"),
            "instagram": ("instagram_account_id", "17841400000000000")}


# --- fixtures: config restored after each test, local servers -------------------------------

@pytest.fixture
def outbound_config(app, monkeypatch):
    """The app's config for this test; monkeypatch restores every key a test sets."""
    for key in CONFIG_KEYS:
        monkeypatch.setitem(app.config, key, app.config.get(key))
    monkeypatch.setitem(app.config, "OUTBOUND_RETRY_INTERVALS", [0, 0])
    return app.config


@pytest.fixture
def providers(outbound_config):
    fake = FakeProviders().start()
    for key in API_BASES:
        outbound_config[key] = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def smtp(outbound_config):
    server = SmtpServer().start()
    outbound_config["SMTP_URL"] = server.url
    yield server
    server.stop()


# --- opening tickets through the providers' webhooks ----------------------------------------

def _post(api, provider: str, channel, body: bytes, headers: dict):
    response = api.session.post(f"{api.base_url}/webhooks/{provider}/{channel.key}", data=body,
                                headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def twilio_signature(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(pairs))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def post_twilio(api, channel, params: dict[str, str]):
    pairs = list(params.items())
    url = f"{api.base_url}/webhooks/twilio/{channel.key}"
    return _post(api, "twilio", channel, urlencode(pairs).encode(),
                 {"Content-Type": FORM, "X-Twilio-Signature": twilio_signature("tw-token", url,
                                                                                pairs)})


def twilio_channel(app, kind: str = "sms"):
    return factories.channel(app, "twilio", kind, settings={"account_sid": ACCOUNT_SID,
                                                            "phone_number": OUR_NUMBER},
                             secrets={"auth_token": "tw-token"})


def twilio_inbound(api, channel, kind: str = "sms", sid: str = "SMin0001"):
    prefix = "whatsapp:" if kind == "whatsapp" else ""
    post_twilio(api, channel, {"MessageSid": sid, "AccountSid": ACCOUNT_SID,
                               "From": prefix + CUSTOMER_PHONE, "To": prefix + OUR_NUMBER,
                               "Body": "Where is my order?", "NumMedia": "0"})


def meta_channel(app, kind: str):
    name, value = META_IDS[kind]
    return factories.channel(app, "meta", kind, settings={name: value},
                             secrets={"app_secret": "app-secret", "verify_token": "vt",
                                      "access_token": "meta-token"})


def meta_inbound(api, channel, kind: str, at: datetime | None = None):
    at = at or datetime.now(UTC)
    if kind == "whatsapp":
        value = {"messaging_product": "whatsapp",
                 "metadata": {"display_phone_number": "15550783881",
                              "phone_number_id": META_IDS[kind][1]},
                 "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
                 "messages": [{"from": "16505551234", "id": "wamid.IN1", "type": "text",
                               "timestamp": str(int(at.timestamp())),
                               "text": {"body": "Does it come in blue?"}}]}
        data = {"object": "whatsapp_business_account",
                "entry": [{"id": "1022", "changes": [{"value": value, "field": "messages"}]}]}
    else:
        millis = int(at.timestamp() * 1000)
        data = {"object": "page" if kind == "messenger" else "instagram",
                "entry": [{"id": META_IDS[kind][1], "time": millis, "messaging": [{
                    "sender": {"id": "PSID-777"}, "recipient": {"id": META_IDS[kind][1]},
                    "timestamp": millis, "message": {"mid": "m_in1", "text": "Hi there"}}]}]}
    body = json.dumps(data).encode()
    signature = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    _post(api, "meta", channel, body, {"Content-Type": "application/json",
                                       "X-Hub-Signature-256": signature})


def telegram_inbound(api, channel, chat_id: int = 555000111):
    update_ = {"update_id": 9001, "message": {
        "message_id": 7, "from": {"id": chat_id, "is_bot": False, "first_name": "Ana"},
        "chat": {"id": chat_id, "type": "private"}, "date": int(time.time()),
        "text": "My code does not work"}}
    _post(api, "telegram", channel, json.dumps(update_).encode(),
          {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})


def x_inbound(api, channel, sender_id: str = "4337869213"):
    data = {"for_user_id": "2244994945", "direct_message_events": [{
        "type": "message_create", "id": "dm-in-1",
        "created_timestamp": str(int(time.time() * 1000)),
        "message_create": {"target": {"recipient_id": "2244994945"}, "sender_id": sender_id,
                           "message_data": {"text": "Refund please"}}}]}
    body = json.dumps(data).encode()
    digest = hmac.new(b"x-consumer-secret", body, hashlib.sha256).digest()
    _post(api, "x", channel, body, {"Content-Type": "application/json",
                                    "x-twitter-webhooks-signature":
                                        "sha256=" + base64.b64encode(digest).decode()})


def mail(message_id: str, subject: str, body: str, extra: str = "") -> bytes:
    return (f"From: Bob <bob@example.com>\r\nTo: support@acme.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def email_inbound(api, channel, raw: bytes):
    _post(api, "raw_mime", channel, raw, {"Content-Type": "message/rfc822"})


# --- reading the results ---------------------------------------------------------------------

def ticket_of(app, channel) -> int:
    with app.app_context():
        return db.session.execute(
            select(Ticket.id).where(Ticket.channel_id == channel.id)).scalar_one()


def message(app, message_id: int) -> Message:
    with app.app_context():
        found = db.session.get(Message, message_id)
        db.session.expunge(found)
        return found


def message_count(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Message)).scalar_one()


def reply(api, agent, ticket_id: int, text: str = "Your parcel ships today.", **extra):
    return api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                               json={"text": text, **extra})


def send_reply(api, agent, app, drain, ticket_id: int, text: str = "Your parcel ships today."):
    """Reply through the API, run the workers, return the stored message."""
    response = reply(api, agent, ticket_id, text)
    assert response.status_code == 201, response.text
    assert response.json()["delivery_status"] == "queued"
    drain()
    return message(app, response.json()["id"])


# --- each channel ------------------------------------------------------------------------------

def test_sms_reply_reaches_twilio_and_status_callbacks_move_it_forward(
        app, api, agent, providers, drain, sockets, outbound_config):
    outbound_config["PUBLIC_URL"] = api.base_url
    channel = twilio_channel(app)
    twilio_inbound(api, channel)
    drain()
    watcher = sockets(agent.token)
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))

    [request] = providers.to(TWILIO)
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.basic_auth() == (ACCOUNT_SID, "tw-token")
    assert request.form() == {"To": CUSTOMER_PHONE, "From": OUR_NUMBER,
                              "Body": "Your parcel ships today.",
                              "StatusCallback": f"{api.base_url}/webhooks/twilio/{channel.key}"}
    assert sent.delivery_status == "sent" and sent.external_id.startswith("SM")
    watcher.wait_for("message.updated", lambda e: e["data"]["id"] == sent.id
                     and e["data"]["delivery_status"] == "sent")

    for status in ("delivered", "read", "sent"):  # the late `sent` must not move it back
        post_twilio(api, channel, {"MessageSid": sent.external_id, "AccountSid": ACCOUNT_SID,
                                   "MessageStatus": status, "From": OUR_NUMBER,
                                   "To": CUSTOMER_PHONE})
        drain()
        expected = "delivered" if status == "delivered" else "read"
        assert message(app, sent.id).delivery_status == expected
        watcher.wait_for("message.updated", lambda e, s=expected: e["data"]["id"] == sent.id
                         and e["data"]["delivery_status"] == s)


def test_twilio_whatsapp_reply_uses_whatsapp_addresses(app, api, agent, providers, drain):
    channel = twilio_channel(app, "whatsapp")
    twilio_inbound(api, channel, "whatsapp")
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    form = providers.to(TWILIO)[0].form()
    assert (form["To"], form["From"]) == (f"whatsapp:{CUSTOMER_PHONE}", f"whatsapp:{OUR_NUMBER}")
    assert "StatusCallback" not in form  # no HELPDESK_PUBLIC_URL: no URL to give
    assert sent.delivery_status == "sent" and sent.external_id == f"SM{1:032x}"


@pytest.mark.parametrize(("kind", "recipient_field", "recipient", "prefix"), [
    ("whatsapp", "to", "16505551234", "wamid."),
    ("messenger", "recipient", {"id": "PSID-777"}, "m_"),
    ("instagram", "recipient", {"id": "PSID-777"}, "m_"),
])
def test_meta_reply_goes_to_the_graph_api(app, api, agent, providers, drain, kind,
                                          recipient_field, recipient, prefix):
    channel = meta_channel(app, kind)
    meta_inbound(api, channel, kind)
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))

    [request] = providers.to(GRAPH)
    assert request.path == f"/v21.0/{META_IDS[kind][1]}/messages"
    assert request.header("Authorization") == "Bearer meta-token"
    body = request.json()
    assert body[recipient_field] == recipient
    text = body["text"]["body"] if kind == "whatsapp" else body["message"]["text"]
    assert text == "Your parcel ships today."
    assert sent.delivery_status == "sent" and sent.external_id.startswith(prefix)


def test_meta_whatsapp_status_reports_find_the_reply(app, api, agent, providers, drain):
    channel = meta_channel(app, "whatsapp")
    meta_inbound(api, channel, "whatsapp")
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1065"},
             "statuses": [{"id": sent.external_id, "status": "delivered",
                           "timestamp": str(int(time.time())), "recipient_id": "16505551234"}]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "1022", "changes": [{"value": value, "field": "messages"}]}]}).encode()
    _post(api, "meta", channel, body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"app-secret", body,
                                                    hashlib.sha256).hexdigest()})
    drain()
    assert message(app, sent.id).delivery_status == "delivered"


def messenger_receipt(api, channel, kind: str, millis: int) -> None:
    """A Messenger `read` or `delivery` receipt carrying only its watermark, signed."""
    body = json.dumps({"object": "page", "entry": [{"id": "1234567890", "time": millis,
                       "messaging": [{"sender": {"id": "PSID-777"},
                                      "recipient": {"id": "1234567890"},
                                      "timestamp": millis,
                                      kind: {"watermark": millis}}]}]}).encode()
    _post(api, "meta", channel, body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"app-secret", body,
                                                    hashlib.sha256).hexdigest()})


def test_messenger_receipts_without_a_message_id_move_the_replies_up_to_their_mark(
        app, api, agent, providers, drain):
    """Messenger's `read` (and a `delivery` without `mids`) carries only a watermark: every
    reply to that person sent by then is read (delivered). They were ignored."""
    channel = meta_channel(app, "messenger")
    meta_inbound(api, channel, "messenger")
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    assert sent.delivery_status == "sent"

    def receipt(kind: str, millis: int) -> None:
        messenger_receipt(api, channel, kind, millis)
        drain()

    receipt("read", int(sent.created_at.timestamp() * 1000) - 60_000)  # before it was sent
    assert message(app, sent.id).delivery_status == "sent"
    receipt("delivery", int(time.time() * 1000) + 1000)
    assert message(app, sent.id).delivery_status == "delivered"
    receipt("read", int(time.time() * 1000) + 2000)
    assert message(app, sent.id).delivery_status == "read"
    receipt("delivery", int(time.time() * 1000) + 3000)  # late: never back
    assert message(app, sent.id).delivery_status == "read"


def test_a_read_receipt_processed_after_the_delivery_still_counts_from_the_send(
        app, api, agent, providers, drain):
    """The customer read the reply at once; we processed the `delivery` receipt before the
    `read` one. The read mark is before we processed the delivery, but after the send: the
    reply is read (the send's moment was taken from `updated_at`, which the delivery
    receipt had moved past the mark: the reply stayed `delivered`)."""
    channel = meta_channel(app, "messenger")
    meta_inbound(api, channel, "messenger")
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    mark = int(time.time() * 1000)  # read just after the send

    def receipt(kind: str, millis: int) -> None:
        messenger_receipt(api, channel, kind, millis)
        drain()

    time.sleep(0.05)  # (the delivery is processed later than the customer read it)
    receipt("delivery", mark)
    assert message(app, sent.id).delivery_status == "delivered"
    receipt("read", mark)
    assert message(app, sent.id).delivery_status == "read"


def test_telegram_reply_calls_send_message_on_the_customers_chat(app, api, agent, providers,
                                                                 drain):
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                          "bot_token": "123:ABC"})
    telegram_inbound(api, channel, chat_id=555000111)
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    [request] = providers.to(TELEGRAM)
    assert request.path == "/bot123:ABC/sendMessage"
    assert request.json() == {"chat_id": "555000111", "text": "Your parcel ships today."}
    assert sent.delivery_status == "sent" and sent.external_id == "555000111:1001"


def test_x_reply_is_a_direct_message(app, api, agent, providers, drain):
    channel = factories.channel(app, "x", settings={"user_id": "2244994945"},
                                secrets={"consumer_secret": "x-consumer-secret",
                                         "access_token": "x-user-token"})
    x_inbound(api, channel, sender_id="4337869213")
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    [request] = providers.to(X_DM)
    assert request.path == "/2/dm_conversations/with/4337869213/messages"
    assert request.header("Authorization") == "Bearer x-user-token"
    assert request.json() == {"text": "Your parcel ships today."}
    assert sent.delivery_status == "sent" and sent.external_id == "17" + "0" * 16 + "1"


def test_api_channel_posts_a_signed_callback_or_skips_without_one(app, api, agent, providers,
                                                                  drain):
    from helpdesk.connectors.api import sign
    from tests.support.live import api_message

    channel = factories.channel(app, "api", settings={"callback_url": providers.url + "/callback"})
    api.post_api_webhook(channel, api_message())
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    [request] = providers.to(CALLBACK)
    timestamp = request.header("X-Helpdesk-Timestamp")
    assert request.header("X-Helpdesk-Signature") == sign("s3cret", timestamp, request.body)
    assert request.json()["message"]["text"] == "Your parcel ships today."
    assert sent.delivery_status == "sent"

    bare = factories.channel(app, "api", name="no callback")
    api.post_api_webhook(bare, api_message(event_id="evt-2", message_id="m-2",
                                           email="zoe@example.com"))
    drain()
    assert send_reply(api, agent, app, drain, ticket_of(app, bare)).delivery_status == "skipped"


def test_a_deleted_channel_sends_no_reply(app, api, admin, agent, providers, drain):
    """Deleting a channel retires its keys (replaying its deliveries is refused), but a reply
    on its tickets still went out, signed with the retired secret."""
    from tests.support.live import api_message

    channel = factories.channel(app, "api", settings={"callback_url": providers.url + "/callback"})
    api.post_api_webhook(channel, api_message())
    drain()
    ticket_id = ticket_of(app, channel)
    waiting = reply(api, agent, ticket_id)
    assert waiting.status_code == 201, waiting.text
    assert api.as_(admin).delete(f"/api/v1/channels/{channel.id}").status_code == 204
    drain()
    assert providers.to(CALLBACK) == []
    failed = message(app, waiting.json()["id"])
    assert failed.delivery_status == "failed" and "deleted" in failed.delivery_error
    refused = reply(api, agent, ticket_id, "Still there?")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "channel_deleted"
    resent = api.as_(agent).post(
        f"/api/v1/tickets/{ticket_id}/messages/{failed.id}/resend")
    assert resent.status_code == 422 and resent.json()["error"]["code"] == "channel_deleted"
    note = reply(api, agent, ticket_id, "Customer moved to email", internal=True)
    assert note.status_code == 201, note.text


# --- email -------------------------------------------------------------------------------------

def test_email_reply_is_threaded_and_the_customers_answer_joins_the_ticket(app, api, agent,
                                                                           smtp, drain):
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, channel, mail("first@example.com", "Printer broken", "It does not print"))
    drain()
    ticket_id = ticket_of(app, channel)
    email_inbound(api, channel, mail("second@example.com", "Re: Printer broken", "Hello?",
                                     "In-Reply-To: <first@example.com>\r\n"
                                     "References: <first@example.com>\r\n"))
    drain()
    sent = send_reply(api, agent, app, drain, ticket_id, "Try turning it off and on.")

    [delivered] = smtp.messages
    assert delivered.login == "helpdesk"
    assert (delivered.mail_from, delivered.rcpt_tos) == ("support@acme.test",
                                                         ["bob@example.com"])
    headers = delivered.message
    our_id = headers["Message-ID"].strip("<>")
    # (a random part: counted ids let a stranger's mail join another customer's ticket)
    assert re.fullmatch(rf"helpdesk-msg-{sent.id}\.[A-Za-z0-9_-]{{16}}@acme\.test", our_id)
    assert headers["In-Reply-To"] == "<second@example.com>"
    assert headers["References"] == "<first@example.com> <second@example.com>"
    assert headers["Reply-To"] == f"support+t{ticket_id}@acme.test"
    assert headers["Subject"] == "Re: Printer broken"
    assert headers["From"] == "support@acme.test" and headers["To"] == "bob@example.com"
    assert headers.get_content().strip() == "Try turning it off and on."
    assert sent.delivery_status == "sent"
    assert sent.message_id == our_id and sent.external_id == our_id

    email_inbound(api, channel, mail("third@example.com", "Thanks!", "Works now",
                                     f"In-Reply-To: <{our_id}>\r\n"))
    drain()
    with app.app_context():
        answer = db.session.execute(select(Message).where(
            Message.message_id == "third@example.com")).scalar_one()
        assert answer.ticket_id == ticket_id
        assert db.session.execute(select(func.count()).select_from(Ticket)).scalar_one() == 1


def test_a_bounce_fails_the_reply_live_for_the_agents_watching(app, api, agent, smtp, drain,
                                                               sockets):
    """A mailer daemon's report names our reply: it is `failed`, and the agents watching
    are told (message.updated), so "Send again" shows without a refetch."""
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, channel, mail("first@example.com", "Printer broken", "It does not print"))
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel), "Try turning it off.")
    assert sent.delivery_status == "sent"
    watcher = sockets(agent.token)
    report = (Path(__file__).parents[1] / "samples" / "mail" / "own_dsn_uppercase.eml"
              ).read_bytes().replace(b"our-outbound-7@helpdesk.example.com",
                                     sent.message_id.encode())
    email_inbound(api, channel, report)
    drain()
    assert message(app, sent.id).delivery_status == "failed"
    updated = watcher.wait_for("message.updated",
                               lambda envelope: envelope["data"]["id"] == sent.id)
    assert updated["data"]["delivery_status"] == "failed"


def test_email_without_smtp_url_fails_visibly(app, api, agent, drain, outbound_config):
    outbound_config["SMTP_URL"] = ""
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, channel, mail("first@example.com", "Printer broken", "It does not print"))
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    assert (sent.delivery_status, sent.delivery_error) == ("failed", "SMTP_URL is not set")


def test_an_smtp_url_whose_password_breaks_the_port_fails_without_quoting_it(
        app, api, agent, drain, outbound_config, caplog):
    """A password with an unescaped '/' made the URL's port part of the password: the
    error quoted it (in the log, in RQ's job record) and was retried as a crash."""
    outbound_config["SMTP_URL"] = "smtp://mailer:s3cr/etpw@127.0.0.1:2525"
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, channel, mail("first@example.com", "Printer broken", "It does not print"))
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    assert sent.delivery_status == "failed" and "percent-encoded" in sent.delivery_error
    assert "s3cr" not in sent.delivery_error and "s3cr" not in caplog.text


def test_smtp_refusal_fails_with_the_servers_answer(app, api, agent, smtp, drain):
    smtp.refuse_with = "554 5.7.1 Message rejected as spam"
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, channel, mail("first@example.com", "Printer broken", "It does not print"))
    drain()
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    assert sent.delivery_status == "failed"
    assert sent.delivery_error == "SMTP 554: 5.7.1 Message rejected as spam"


# --- retries and refusals ------------------------------------------------------------------------

def _sms_ticket(app, api, drain) -> int:
    channel = twilio_channel(app)
    twilio_inbound(api, channel)
    drain()
    return ticket_of(app, channel)


def test_a_provider_that_keeps_failing_is_retried_then_failed(app, api, agent, providers,
                                                              drain):
    ticket_id = _sms_ticket(app, api, drain)
    providers.fail(10)
    sent = send_reply(api, agent, app, drain, ticket_id)
    assert len(providers.to(TWILIO)) == 3  # two intervals: three attempts
    assert sent.delivery_status == "failed"
    assert sent.delivery_error == ("Twilio answered 500: Twilio error 20500: "
                                   "An internal server error has occurred")


def test_a_passing_outage_is_retried_then_sent(app, api, agent, providers, drain):
    ticket_id = _sms_ticket(app, api, drain)
    providers.fail(1)
    sent = send_reply(api, agent, app, drain, ticket_id)
    assert len(providers.to(TWILIO)) == 2
    assert sent.delivery_status == "sent" and sent.delivery_error is None


@pytest.mark.parametrize("code, tries, outcome", [(130429, 2, "sent"), (80007, 2, "sent"),
                                                 (131030, 1, "failed")])
def test_meta_throttling_answered_as_400_is_retried_and_a_refusal_is_not(
        app, api, agent, providers, drain, code, tries, outcome):
    """Graph answers throttling (130429: the number's throughput; 80007: the account's
    rate limit) with HTTP 400 like a refusal; it is worth retrying, a refusal (131030: a
    recipient not allowed) is not."""
    channel = meta_channel(app, "whatsapp")
    meta_inbound(api, channel, "whatsapp")
    drain()
    providers.fail(1, 400, graph_code=code)
    sent = send_reply(api, agent, app, drain, ticket_of(app, channel))
    assert len(providers.to(GRAPH)) == tries
    assert sent.delivery_status == outcome


def test_a_refusal_fails_without_retry(app, api, agent, providers, drain):
    ticket_id = _sms_ticket(app, api, drain)
    providers.reject(400)
    sent = send_reply(api, agent, app, drain, ticket_id)
    assert len(providers.to(TWILIO)) == 1
    assert sent.delivery_status == "failed"
    assert sent.delivery_error == ("Twilio answered 400: Twilio error 21211: "
                                   "The 'To' number is not a valid phone number.")


def test_a_failed_reply_can_be_sent_again(app, api, agent, providers, drain):
    """DESIGN.md: after the last retry the failed message is visible and can be replayed.
    The agent sends it again once the provider takes messages again; a reply that did not
    fail, a note or an unknown id cannot be."""
    from tests.support.fake_providers import Script

    ticket_id = _sms_ticket(app, api, drain)
    providers.reject(400)
    failed = send_reply(api, agent, app, drain, ticket_id)
    assert failed.delivery_status == "failed"
    path = f"/api/v1/tickets/{ticket_id}/messages"
    providers.script = Script()  # the provider accepts again
    again = api.as_(agent).post(f"{path}/{failed.id}/resend")
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["delivery_status"]) == (failed.id, "queued")
    drain()
    sent = message(app, failed.id)
    assert (sent.delivery_status, sent.delivery_error) == ("sent", None)
    assert len(providers.to(TWILIO)) == 2 and message_count(app) == 2  # the same message
    customer_id = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["customer_id"]
    items = api.as_(agent).get(f"/api/v1/customers/{customer_id}/timeline").json()["items"]
    [resent] = [i["event"] for i in items if i["type"] == "event"
                and i["event"]["name"] == "reply.resent"]  # on the customer's timeline
    assert resent["data"]["message_id"] == failed.id
    refused = api.as_(agent).post(f"{path}/{failed.id}/resend")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "not_failed")
    note = reply(api, agent, ticket_id, "internal", internal=True).json()
    refused = api.as_(agent).post(f"{path}/{note['id']}/resend")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "not_a_reply")
    assert api.as_(agent).post(f"{path}/{failed.id + 100}/resend").status_code == 404
    assert api.post(f"{path}/{failed.id}/resend").status_code == 401


def test_a_late_status_for_the_failed_send_does_not_pass_for_the_resent_one(
        app, api, agent, providers, drain, outbound_config):
    """A resend is a new send: the provider's status callback for the first attempt
    (delayed, or repeated) must not mark the resent reply `sent` before it has gone."""
    outbound_config["PUBLIC_URL"] = api.base_url
    channel = twilio_channel(app)
    twilio_inbound(api, channel)
    drain()
    ticket_id = ticket_of(app, channel)
    first = send_reply(api, agent, app, drain, ticket_id)
    old_sid = first.external_id
    post_twilio(api, channel, {"MessageSid": old_sid, "AccountSid": ACCOUNT_SID,
                               "MessageStatus": "failed", "ErrorCode": "30003",
                               "From": OUR_NUMBER, "To": CUSTOMER_PHONE})
    drain()
    assert message(app, first.id).delivery_status == "failed"
    again = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages/{first.id}/resend")
    assert again.status_code == 200, again.text
    post_twilio(api, channel, {"MessageSid": old_sid, "AccountSid": ACCOUNT_SID,
                               "MessageStatus": "delivered", "From": OUR_NUMBER,
                               "To": CUSTOMER_PHONE})
    drain("ingest")  # the late callback, before the resend's own job runs
    assert message(app, first.id).delivery_status == "queued"
    drain()
    resent = message(app, first.id)
    assert resent.delivery_status == "sent" and resent.external_id != old_sid
    assert len(providers.to(TWILIO)) == 2


def test_a_crashing_sender_is_retried_then_failed(app, api, agent, providers, drain,
                                                  monkeypatch):
    from helpdesk.services.outbound import sending as outbound

    calls = []

    def crash(channel, ticket, message):
        calls.append(message.id)
        raise RuntimeError("boom")

    ticket_id = _sms_ticket(app, api, drain)
    monkeypatch.setitem(outbound.SENDERS, "twilio", crash)
    sent = send_reply(api, agent, app, drain, ticket_id)
    assert len(calls) == 3
    assert (sent.delivery_status, sent.delivery_error) == (
        "failed", "internal error while sending")


def test_a_customer_without_a_phone_fails_without_retry(app, api, agent, providers, drain):
    """An SMS ticket whose customer lost their phone identity (e.g. erased) reaches no one."""
    from helpdesk.models import Identity

    ticket_id = _sms_ticket(app, api, drain)
    with app.app_context():
        db.session.execute(Identity.__table__.delete().where(Identity.kind == "phone"))
        db.session.commit()
    sent = send_reply(api, agent, app, drain, ticket_id)
    assert providers.requests == []
    assert (sent.delivery_status, sent.delivery_error) == (
        "failed", "the customer has no phone identity to reply to")


# --- provider rules ------------------------------------------------------------------------------

def _backdate_inbound(app, hours: int) -> None:
    with app.app_context():
        db.session.execute(update(Message).where(Message.direction == "inbound").values(
            created_at=datetime.now(UTC) - timedelta(hours=hours)))
        db.session.commit()


@pytest.mark.parametrize("provider_kind", ["twilio:whatsapp", "meta:whatsapp", "meta:messenger",
                                           "meta:instagram"])
def test_reply_outside_the_24_hour_window_is_409_and_nothing_is_stored(
        app, api, agent, providers, drain, provider_kind):
    provider, kind = provider_kind.split(":")
    if provider == "twilio":
        channel = twilio_channel(app, kind)
        twilio_inbound(api, channel, kind)
    else:
        channel = meta_channel(app, kind)
        meta_inbound(api, channel, kind, at=datetime.now(UTC) - timedelta(hours=25))
    drain()
    _backdate_inbound(app, 25)
    ticket_id = ticket_of(app, channel)
    before = message_count(app)

    response = reply(api, agent, ticket_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "outside_reply_window"
    assert message_count(app) == before
    ticket = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    assert ticket["assignee_id"] is None and ticket["first_response_at"] is None
    note = reply(api, agent, ticket_id, "customer went quiet", internal=True)
    assert note.status_code == 201  # internal notes are never sent, so never refused
    drain()
    assert providers.requests == []


def test_reply_inside_the_window_is_sent(app, api, agent, providers, drain):
    channel = meta_channel(app, "whatsapp")
    meta_inbound(api, channel, "whatsapp", at=datetime.now(UTC) - timedelta(hours=23))
    drain()
    assert send_reply(api, agent, app, drain, ticket_of(app, channel)).delivery_status == "sent"


def test_a_reply_longer_than_the_channel_takes_is_409(app, api, agent, providers, drain):
    ticket_id = _sms_ticket(app, api, drain)
    response = reply(api, agent, ticket_id, "x" * 1601)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "message_too_long"


# --- internal notes ---------------------------------------------------------------------------

def test_internal_notes_reach_no_provider(app, api, agent, providers, smtp, drain):
    sms = twilio_channel(app)
    twilio_inbound(api, sms)
    email = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, email, mail("first@example.com", "Printer broken", "It does not print"))
    drain()
    notes = []
    for channel in (sms, email):
        response = reply(api, agent, ticket_of(app, channel), "customer is grumpy",
                         internal=True)
        assert response.status_code == 201
        notes.append(response.json()["id"])
    drain()
    assert providers.requests == [] and smtp.messages == []
    assert [message(app, note).delivery_status for note in notes] == ["skipped", "skipped"]


def test_a_reply_goes_to_the_address_the_customer_wrote_from(app, api, admin, agent, smtp,
                                                              drain):
    """Two customers merged into one keep being answered where each wrote, not at the
    survivor's oldest address."""
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    email_inbound(api, channel, mail("older@example.com", "Invoice", "Wrong invoice"))
    drain()
    email_inbound(api, channel, mail("newer@example.com", "Parcel", "Where is it?").replace(
        b"From: Bob <bob@example.com>", b"From: Bob <bob.work@example.com>"))
    drain()
    staff = api.as_(admin)
    home = staff.get("/api/v1/customers", params={"identity": "email:bob@example.com"}
                     ).json()["items"][0]
    work = staff.get("/api/v1/customers", params={"identity": "email:bob.work@example.com"}
                     ).json()["items"][0]
    assert home["id"] != work["id"]
    merged = staff.post(f"/api/v1/customers/{home['id']}/merge", json={"other_id": work["id"]})
    assert merged.status_code == 200, merged.text
    work_ticket = next(t for t in staff.get("/api/v1/tickets", params={
        "customer": home["id"]}).json()["items"] if t["subject"] == "Parcel")
    # a colleague copied on the thread answers on it: the next reply still goes to Bob
    email_inbound(api, channel, mail("colleague@example.com", "Re: Parcel", "Any news?",
                                     "In-Reply-To: <newer@example.com>\r\n").replace(
        b"From: Bob <bob@example.com>", b"From: Carla <carla@example.com>"))
    drain()
    on_ticket = staff.get(f"/api/v1/tickets/{work_ticket['id']}").json()["messages"]
    assert [m["author"]["name"] for m in on_ticket] == ["Bob", "Carla"]
    send_reply(api, agent, app, drain, work_ticket["id"], "It ships today.")
    [delivered] = smtp.messages
    assert delivered.rcpt_tos == ["bob.work@example.com"]
    assert delivered.message["To"] == "bob.work@example.com"


def test_a_survey_reaches_an_api_customer_whole_while_agents_see_it_without_its_token(
        app, api, admin, agent, providers, drain):
    from tests.support.live import api_message

    assert api.as_(admin).patch("/api/v1/settings", json={
        "surveys": {"delay_seconds": 0}}).status_code == 200
    channel = factories.channel(app, "api", settings={"callback_url": providers.url + "/callback"})
    api.post_api_webhook(channel, api_message())
    drain()
    ticket_id = ticket_of(app, channel)
    solved = api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})
    assert solved.status_code == 200
    drain()
    [request] = providers.to(CALLBACK)
    link = request.json()["message"]["text"]
    token = link.rsplit("/surveys/", 1)[1].split()[0]
    assert len(token) >= 40  # the customer's key, whole
    assert api.get(f"/surveys/{token}").status_code == 200
    shown = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["messages"][-1]
    assert token not in shown["text"] and "/surveys/…" in shown["text"]


# --- media the provider only names ---------------------------------------------------------

def _attachment_of(api, agent, ticket_id: int) -> dict:
    messages = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["messages"]
    (attachment,) = [a for m in messages for a in m["attachments"]]
    return attachment


def _download(api, agent, attachment: dict) -> bytes:
    assert attachment["url"].startswith(api.base_url + "/api/v1/attachments/"), attachment
    response = api.as_(agent).get(attachment["url"].removeprefix(api.base_url))
    assert response.status_code == 200, response.text
    return response.content


def test_a_whatsapp_photo_is_fetched_from_meta_and_shown_like_any_attachment(
        app, api, agent, providers, drain, sockets):
    photo = b"\xff\xd8\xff\xe0 a customer's photo of the broken parcel"
    providers.media["1003383421387256"] = photo
    channel = meta_channel(app, "whatsapp")
    watcher = sockets(agent.token)
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881",
                          "phone_number_id": META_IDS["whatsapp"][1]},
             "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
             "messages": [{"from": "16505551234", "id": "wamid.IMG1", "type": "image",
                           "timestamp": str(int(time.time())),
                           "image": {"id": "1003383421387256", "mime_type": "image/jpeg",
                                     "caption": "It arrived like this"}}]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "1022", "changes": [{"value": value, "field": "messages"}]}]}).encode()
    signature = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    _post(api, "meta", channel, body, {"Content-Type": "application/json",
                                       "X-Hub-Signature-256": signature})
    drain("ingest")
    with app.app_context():  # its fetch job lost with Redis: the sweep asks for it again
        from helpdesk.queues import redis_connection
        from helpdesk.services.ingest import media

        redis_connection(app).flushdb()
        time.sleep(1.1)  # older than the tests' sweep grace
        assert media.sweep(1) == 1
    drain()
    attachment = _attachment_of(api, agent, ticket_of(app, channel))
    assert _download(api, agent, attachment) == photo
    assert attachment["size"] == len(photo) and attachment["content_type"] == "image/jpeg"
    with app.app_context():
        assert media.sweep(1) == 0  # fetched: nothing waits
    lookups = [r for r in providers.requests if r.method == "GET"]
    assert [r.path for r in lookups] == ["/v21.0/1003383421387256",
                                         "/whatsapp-media/1003383421387256"]
    assert {r.header("Authorization") for r in lookups} == {"Bearer meta-token"}
    updated = watcher.wait_for("message.updated",
                               lambda e: e["data"]["attachments"][0]["size"] == len(photo))
    # (a worker's event names it from the public URL, relative when none is set)
    announced = updated["data"]["attachments"][0]["url"]
    assert "/api/v1/attachments/" in announced and attachment["url"].endswith(announced)
    drain()  # again: nothing more is asked of Meta
    assert len([r for r in providers.requests if r.method == "GET"]) == 2


def test_a_telegram_photo_is_fetched_with_the_bot_token_after_an_outage(
        app, api, agent, providers, drain, caplog):
    photo = b"\x89PNG a screenshot of the error"
    providers.media["AgACAgQAAxkBAAIB"] = photo
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                          "bot_token": "123:ABC"})
    update_ = {"update_id": 9002, "message": {
        "message_id": 8, "from": {"id": 555000111, "is_bot": False, "first_name": "Ana"},
        "chat": {"id": 555000111, "type": "private"}, "date": int(time.time()),
        "photo": [{"file_id": "AgACAgQAAxkBAAIB", "file_unique_id": "AQADx",
                   "width": 800, "height": 600, "file_size": len(photo)}],
        "caption": "This is what I see"}}
    providers.fail(1, 502)  # Telegram's first answer: retried with backoff
    _post(api, "telegram", channel, json.dumps(update_).encode(),
          {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    drain()
    attachment = _attachment_of(api, agent, ticket_of(app, channel))
    assert _download(api, agent, attachment) == photo
    paths = [r.path for r in providers.requests if r.method == "GET"]
    assert paths == ["/bot123:ABC/getFile?file_id=AgACAgQAAxkBAAIB"] * 2 + [
        "/file/bot123:ABC/files/AgACAgQAAxkBAAIB"]
    assert "123:ABC" not in caplog.text  # the bot token is in the URL: never in a log


def test_media_errors_never_name_the_token_and_a_refusal_for_good_is_not_retried(
        app, api, agent, providers, drain, monkeypatch):
    from helpdesk.services.ingest import media

    with app.app_context():
        monkeypatch.setitem(app.config, "TELEGRAM_API_BASE", "http://127.0.0.1:9")
        with pytest.raises(media.MediaError) as unreachable:  # (connection refused)
            media._from_telegram({"bot_token": "123:SECRET"}, "some-file")
        assert "123:SECRET" not in str(unreachable.value) and not unreachable.value.final
        monkeypatch.setitem(app.config, "TELEGRAM_API_BASE", providers.url)
        with pytest.raises(media.MediaError) as gone:  # Telegram: 400, no such file
            media._from_telegram({"bot_token": "123:SECRET"}, "expired-file")
        assert gone.value.final and "123:SECRET" not in str(gone.value)
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                          "bot_token": "123:ABC"})
    update_ = {"update_id": 9003, "message": {
        "message_id": 9, "from": {"id": 555000112, "is_bot": False, "first_name": "Bo"},
        "chat": {"id": 555000112, "type": "private"}, "date": int(time.time()),
        "document": {"file_id": "huge", "file_unique_id": "AQADy", "file_name": "dump.zip",
                     "file_size": 200 * 1024 * 1024}}}
    _post(api, "telegram", channel, json.dumps(update_).encode(),
          {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    drain()
    attachment = _attachment_of(api, agent, ticket_of(app, channel))
    assert attachment["url"] == "telegram:file/huge"  # too large: kept as a reference
    assert not [r for r in providers.requests if "huge" in r.path]  # never asked for


def test_a_reply_goes_to_the_reply_to_the_customer_named(app, api, admin, agent, smtp, drain):
    """RFC 5322: Reply-To is where the author asks replies to go (a work address, a form
    relaying for a visitor). The customer stays the From; a Reply-To naming our own
    address (a loop) or several addresses is not followed; erasure blanks it."""
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    cases = [("ask@example.com", "Reply-To: Bob at home <Bob.Home@example.com>\r\n",
              "bob.home@example.com"),
             ("loop@example.com", "Reply-To: Support <support+t1@acme.test>\r\n",
              "bob@example.com"),
             ("two@example.com", "Reply-To: a@example.com, b@example.com\r\n",
              "bob@example.com")]
    for message_id, header, expected in cases:
        email_inbound(api, channel, mail(message_id, f"Case {message_id}", "Help", header))
        drain()
        with app.app_context():
            ticket_id = db.session.execute(select(Message.ticket_id).where(
                Message.message_id == message_id)).scalar_one()
        smtp.messages.clear()
        send_reply(api, agent, app, drain, ticket_id, "On it.")
        [delivered] = smtp.messages
        assert delivered.rcpt_tos == [expected], message_id
        assert delivered.message["To"] == expected
    # A later mail on the thread naming another Reply-To (anyone can write Bob's From and
    # our thread's tag) does not move the replies: the first message's Reply-To stands.
    email_inbound(api, channel, mail("later@example.com", "Re: Case ask@example.com", "More",
                                     "In-Reply-To: <ask@example.com>\r\n"
                                     "Reply-To: mallory@example.net\r\n").replace(
        b"Date: Sun, 22 Nov 2026", b"Date: Mon, 01 Jan 2001"))  # dated before the first
    drain()
    with app.app_context():
        first_ticket = db.session.execute(select(Message.ticket_id).where(
            Message.message_id == "ask@example.com")).scalar_one()
        assert db.session.execute(select(Message.ticket_id).where(
            Message.message_id == "later@example.com")).scalar_one() == first_ticket
    smtp.messages.clear()
    send_reply(api, agent, app, drain, first_ticket, "Still on it.")
    [delivered] = smtp.messages
    assert delivered.rcpt_tos == ["bob.home@example.com"]
    staff = api.as_(admin)
    [bob] = staff.get("/api/v1/customers", params={"identity": "email:bob@example.com"}
                      ).json()["items"]
    assert [i["value"] for i in bob["identities"]] == ["bob@example.com"]
    exported = staff.get(f"/api/v1/customers/{bob['id']}/export").json()
    assert "bob.home@example.com" in [m.get("reply_to") for m in exported["messages"]]
    assert staff.delete(f"/api/v1/customers/{bob['id']}").status_code == 204
    with app.app_context():
        assert db.session.execute(select(Message.reply_to).where(
            Message.reply_to.is_not(None))).scalars().all() == []
