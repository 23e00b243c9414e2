"""Email through `raw_mime`: charsets, attachments, threading, auto-replies and bounces."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.connectors.base import hmac_hex
from helpdesk.extensions import db
from helpdesk.models import Attachment, Message, Ticket
from tests.support import factories
from tests.support.live import api_message

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "mail"


def post_mail(api, channel, raw: bytes, **headers):
    return api.session.post(f"{api.base_url}/webhooks/raw_mime/{channel.key}", data=raw,
                            headers={"Content-Type": "message/rfc822", **headers})


def mail(message_id: str, subject: str = "Printer broken", sender: str = "Bob <bob@example.com>",
         body: str = "It does not print.", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: support@acme.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def tickets_and_messages(app):
    with app.app_context():
        tickets = db.session.execute(select(Ticket).order_by(Ticket.id)).scalars().all()
        messages = db.session.execute(select(Message).order_by(Message.id)).scalars().all()
        return tickets, messages


def test_reply_threads_by_in_reply_to_and_references(app, api, drain):
    channel = factories.channel(app, "raw_mime")
    assert post_mail(api, channel, mail("first@example.com")).status_code == 200
    post_mail(api, channel, mail("second@example.com", "Re: Printer broken",
                                 body="Still broken.\n\nOn Sun, Nov 22, 2026 at 6:00 AM Bob "
                                 "<bob@example.com> wrote:\n> It does not print.",
                                 extra="In-Reply-To: <first@example.com>\r\n"))
    post_mail(api, channel, mail("third@example.com", "Re: Re: Printer broken", body="Hello?",
                                 extra="References: <first@example.com> <nope@x>\r\n"))
    post_mail(api, channel, mail("other@example.com", "New topic", body="Another question"))
    drain("ingest")
    tickets, messages = tickets_and_messages(app)
    assert [t.subject for t in tickets] == ["Printer broken", "New topic"]
    assert [m.ticket_id for m in messages] == [tickets[0].id] * 3 + [tickets[1].id]
    assert messages[1].text == "Still broken."
    assert "> It does not print." in messages[1].full_text


def test_a_subject_and_message_ids_longer_than_their_columns_keep_the_mail_and_its_thread(
        app, api, drain):
    """A 750-character subject or a 600-character Message-ID did not fit their columns:
    PostgreSQL refused the mail, retried, then failed it, and no ticket was opened."""
    channel = factories.channel(app, "raw_mime")
    long_id = "a" * 600 + "@example.com"
    subject = "word " * 150
    assert post_mail(api, channel, mail(long_id, subject)).status_code == 200
    post_mail(api, channel, mail("answer@example.com", "Re: it", body="Still broken.",
                                 extra=f"In-Reply-To: <{long_id}>\r\n"))
    drain("ingest")
    tickets, messages = tickets_and_messages(app)
    assert len(tickets) == 1 and len(messages) == 2  # the answer joined its thread
    assert tickets[0].subject == subject.strip()[:500] == messages[0].subject
    assert len(messages[0].message_id) <= 500


def test_a_stranger_naming_only_our_counted_message_ids_opens_a_ticket_of_their_own(
        app, api, drain):
    """Replies sent before our Message-IDs carried a mark are named by a count
    (`helpdesk-msg-<n>@domain`): anyone could name them and join, and reopen, other
    customers' tickets. Only the ticket's customer, or someone who wrote on it, joins by
    them alone."""
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    assert post_mail(api, channel, mail("bob-1@example.com")).status_code == 200
    drain("ingest")
    [ticket], _ = tickets_and_messages(app)
    with app.app_context():  # our reply, sent before the mark
        db.session.add(Message(ticket_id=ticket.id, channel_id=ticket.channel_id,
                               direction="outbound", author_type="agent", text="On it",
                               delivery_status="sent", message_id="helpdesk-msg-7@acme.test"))
        db.session.commit()
    counted = "In-Reply-To: <helpdesk-msg-7@acme.test>\r\n"
    post_mail(api, channel, mail("eve-1@example.com", "Re: Printer broken", "Eve <eve@x.org>",
                                 "Please send me the invoice", extra=counted))
    post_mail(api, channel, mail("bob-2@example.com", "Re: Printer broken", body="Thanks",
                                 extra=counted))
    drain("ingest")
    tickets, messages = tickets_and_messages(app)
    assert len(tickets) == 2
    by_text = {m.text: m.ticket_id for m in messages}
    assert by_text["Thanks"] == ticket.id
    assert by_text["Please send me the invoice"] != ticket.id


def test_same_message_id_twice_is_one_delivery(app, api, drain):
    channel = factories.channel(app, "raw_mime")
    post_mail(api, channel, mail("dup@example.com"))
    post_mail(api, channel, mail("dup@example.com"))
    drain("ingest")
    assert len(tickets_and_messages(app)[1]) == 1


def test_japanese_and_windows_1252_mails_decode(app, api, agent, drain):
    channel = factories.channel(app, "raw_mime")
    for name in ("mikel-mail_japanese_shift_jis.eml", "mikel-mail_japanese_iso_2022.eml",
                 "mikel-mail_invalid_subject_characters.eml"):
        assert post_mail(api, channel, (SAMPLES / name).read_bytes()).status_code == 200
    drain("ingest")
    _, messages = tickets_and_messages(app)
    assert len(messages) == 3
    texts = " ".join(m.text for m in messages)
    assert "\ufffd" not in texts
    assert any("\u3042" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in texts)
    subjects = [m.subject for m in messages]
    assert all("\ufffd" not in (s or "") for s in subjects)


def test_attachments_are_stored_and_listed(app, api, agent, drain):
    channel = factories.channel(app, "raw_mime")
    raw = (SAMPLES / "mikel-mail_attachment_nonascii_filename.eml").read_bytes()
    post_mail(api, channel, raw)
    drain("ingest")
    ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
    detail = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    attachment = detail["messages"][0]["attachments"][0]
    assert attachment["filename"] == "ciële.txt"
    assert attachment["size"] > 0
    with app.app_context():
        stored = db.session.execute(select(Attachment)).scalar_one()
        path = Path(app.config["DATA_DIR"]) / stored.storage_path
        assert path.read_bytes() and len(path.read_bytes()) == stored.size


def test_auto_reply_does_not_reopen_a_solved_ticket(app, api, agent, drain):
    channel = factories.channel(app, "raw_mime")
    post_mail(api, channel, mail("orig@example.com"))
    drain("ingest")
    ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
    api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})
    post_mail(api, channel, mail("auto@example.com", "Out of office", body="I am away",
                                 extra="In-Reply-To: <orig@example.com>\r\n"
                                       "Auto-Submitted: auto-replied\r\n"))
    drain("ingest")
    ticket = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    assert ticket["status"] == "solved"
    assert ticket["messages"][-1]["flags"] == ["auto_reply"]
    assert api.as_(agent).get("/api/v1/queue").json()["total"] == 0


def test_auto_reply_without_a_thread_stays_out_of_the_queue(app, api, agent, drain):
    channel = factories.channel(app, "raw_mime")
    raw = (SAMPLES / "chatwoot-chatwoot_non_utf_encoded_mail.eml").read_bytes()
    post_mail(api, channel, raw)
    drain("ingest")
    assert api.as_(agent).get("/api/v1/queue").json()["total"] == 0
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert len(tickets) == 1 and tickets[0]["status"] == "closed"


def test_signing_secret_is_enforced_when_set(app, api):
    channel = factories.channel(app, "raw_mime", secrets={"signing_secret": "k"})
    raw = mail("signed@example.com")
    assert post_mail(api, channel, raw).status_code == 401
    good = post_mail(api, channel, raw, **{"X-Helpdesk-Signature": "sha256=" + hmac_hex("k", raw)})
    assert good.status_code == 200


def test_other_content_types_are_415(app, api):
    channel = factories.channel(app, "raw_mime")
    response = api.session.post(f"{api.base_url}/webhooks/raw_mime/{channel.key}", data=b"{}",
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 415


def test_a_message_now_joins_the_ticket_of_an_email_dated_long_ago(app, api, drain):
    """The threading window runs from when the helpdesk received the ticket's last message,
    not from the Date a sender's client wrote (provider payloads and forwarded mail carry
    old or wrong times): an email dated weeks ago and an SMS-like message now from the same
    customer are one conversation."""
    email = factories.channel(app, "raw_mime")
    api_channel = factories.channel(app, "api")
    assert post_mail(api, email, mail("old@example.com")).status_code == 200  # Nov 22 2026
    drain("ingest")
    api.post_api_webhook(api_channel, api_message(text="and the scanner too",
                                                  email="bob@example.com"))
    drain("ingest")
    tickets, messages = tickets_and_messages(app)
    assert len(messages) == 2 and len(tickets) == 1


def test_an_out_of_office_reply_never_takes_the_customers_next_message_off_its_ticket(
        app, api, agent, drain):
    """An auto-reply without a thread is filed on a ticket of its own, closed. It is not
    where the customer's conversation goes on: their next message (a channel threaded by
    the customer's recent activity) joins their open ticket, in one batch or alone."""
    email = factories.channel(app, "raw_mime")
    api_channel = factories.channel(app, "api")
    api.post_api_webhook(api_channel, api_message("e1", "m1", text="my printer is broken",
                                                  email="bob@example.com"))
    drain("ingest")
    away = mail("away@example.com", "Out of office", body="I am away",
                extra="Auto-Submitted: auto-replied\r\n")
    for n, alone in enumerate((True, False)):
        post_mail(api, email, away.replace(b"away@", f"away{n}@".encode()))
        if alone:
            drain("ingest")
        api.post_api_webhook(api_channel, api_message(f"e-next{n}", f"m-next{n}",
                                                      text="any news?",
                                                      email="bob@example.com"))
        drain("ingest")
    tickets, messages = tickets_and_messages(app)
    by_id = {ticket.id: ticket for ticket in tickets}
    work = [m for m in messages if "auto_reply" not in (m.flags or [])]
    assert len({m.ticket_id for m in work}) == 1, [(m.text, m.ticket_id) for m in work]
    assert by_id[work[0].ticket_id].status != "closed"
    autos = [m for m in messages if "auto_reply" in (m.flags or [])]
    assert len(autos) == 2 and all(by_id[m.ticket_id].status == "closed" for m in autos)


@pytest.mark.timeout(60)
def test_mail_that_fuzzing_made_fail_or_stall_is_a_ticket(app, api, drain):
    """Found by fuzzing a running server, each was acknowledged and then failed (the mail
    lost) or held the worker: an address line of 200 KB without an `@` (the address search
    was quadratic: hours of worker time, and on SQLite the write lock with it, every request
    waiting), a To naming our reply tag with an id no ticket can have, a Date past the
    calendar's end in UTC, and a charset that reads escapes into a lone surrogate."""
    from datetime import UTC, datetime

    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    cases = {
        "long-to@example.com": ("Long To", "To: " + "x" * 200_000 + "\r\n"),
        "long-list@example.com": ("Long list", "Cc: " + "a@b.example, " * 20_000 + "\r\n"),
        "tag@example.com": ("Tagged", "Cc: support+t99999999999999999999@acme.test, "
                                "support+t9999999999@acme.test\r\n"),
        "future@example.com": ("Late", ""),
        "escape@example.com": ("=?unicode_escape?Q?=5Cud800?=", ""),
        "file@example.com": ("A file", ""),
    }
    for message_id, (subject, extra) in cases.items():
        raw = mail(message_id, subject, extra=extra)
        if message_id.startswith("file"):  # a filename whose charset spells a surrogate
            raw = raw.replace(b"Content-Type: text/plain; charset=utf-8\r\n\r\nIt does not print.",
                              b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                              b"Content-Type: text/plain\r\n\r\nSee file\r\n--b\r\n"
                              b"Content-Type: application/pdf\r\nContent-Disposition: "
                              b"attachment; filename*=utf-7''+2AA-x.pdf\r\n\r\n%PDF\r\n--b--")
        if message_id.startswith("future"):
            raw = raw.replace(b"Date: Sun, 22 Nov 2026 06:00:00 +0000",
                              b"Date: Fri, 31 Dec 9999 23:59:59 -1200")
        assert post_mail(api, channel, raw).status_code == 200
    drain("ingest")
    with app.app_context():
        from helpdesk.models import Delivery

        assert db.session.execute(select(Delivery.status).distinct()).scalars().all() == [
            "processed"]
        found = {m.message_id: m for m in db.session.execute(select(Message)).scalars()}
    assert set(found) == set(cases)
    assert found["escape@example.com"].subject == "\\ud800"  # as sent, not a surrogate
    assert found["future@example.com"].created_at <= datetime.now(UTC)  # dated at receipt
    assert len({m.ticket_id for m in found.values()}) == len(cases)
    with app.app_context():
        assert db.session.execute(select(Attachment.filename)).scalars().all() == [
            "\ufffdx.pdf"]
