"""Big messages: bounded work per message and bounded events, whole REST resources."""

from __future__ import annotations

import time
from email.message import EmailMessage

from tests.support import factories

MIB = 1024 * 1024


def _mail(text: str, subject: str = "My order never arrived") -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ana <ana@example.com>"
    mail["To"] = "support@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = "<big-1@example.com>"
    mail.set_content(text)
    return mail.as_bytes()


def _big_text(size: int) -> str:
    line = "I am still waiting for my refund and nobody answers, this is urgent please help.\n"
    return (line * (size // len(line) + 1))[:size]


def _post(api, channel, raw: bytes) -> None:
    response = api.session.post(f"{api.base_url}/webhooks/raw_mime/{channel.key}", data=raw,
                                headers={"Content-Type": "message/rfc822"}, timeout=60)
    assert response.status_code == 200, response.text


def test_a_3_mib_plain_text_mail_is_processed_and_routed_quickly(app, api, admin, drain):
    channel = factories.channel(app, "raw_mime", settings={"address": "support@example.com"})
    text = _big_text(3 * MIB)
    _post(api, channel, _mail(text))
    started = time.monotonic()
    drain()
    elapsed = time.monotonic() - started
    [ticket] = api.as_(admin).get("/api/v1/tickets").json()["items"]
    assert ticket["urgency_reasons"], "the routing job scored the ticket"
    full = api.as_(admin).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert len(full["messages"][0]["text"]) >= 3 * MIB - 100  # REST keeps the whole text
    assert elapsed < 15, f"ingest and routing of a 3 MiB mail took {elapsed:.1f}s"


def test_message_events_carry_a_bounded_preview_flagged_truncated(app, api, admin, drain,
                                                                  sockets):
    from helpdesk.outbox.events import PREVIEW_CHARS

    channel = factories.channel(app, "raw_mime", settings={"address": "support@example.com"})
    listener = sockets(admin.token)
    _post(api, channel, _mail(_big_text(5 * MIB)))
    drain()
    event = listener.wait_for("message.created")
    assert event["data"]["truncated"] is True
    assert len(event["data"]["text"]) == PREVIEW_CHARS
    with app.app_context():
        from helpdesk.outbox import event_log
        from helpdesk.queues import redis_connection

        kept = redis_connection().zrange(event_log.LOG, 0, -1)
    assert kept and max(len(raw) for raw in kept) < 4 * PREVIEW_CHARS
    message_id = event["data"]["id"]
    ticket = api.as_(admin).get(f"/api/v1/tickets/{event['data']['ticket_id']}").json()
    [message] = [m for m in ticket["messages"] if m["id"] == message_id]
    assert len(message["text"]) > 5 * MIB - 100 and "truncated" not in message


def test_a_short_message_event_is_the_whole_message(app, api, admin, drain, sockets):
    channel = factories.channel(app, "raw_mime", settings={"address": "support@example.com"})
    listener = sockets(admin.token)
    _post(api, channel, _mail("Where is my parcel?"))
    drain()
    event = listener.wait_for("message.created")
    assert "truncated" not in event["data"]  # the event's data is the REST resource as is
    assert event["data"]["text"].strip() == "Where is my parcel?"
