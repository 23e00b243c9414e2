"""Email threads survive clients and transports: our Reply-To tag threads a reply that lost
its In-Reply-To, and a mail delivered twice or a reply delivered before its parent still ends
as one ticket per thread."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Message, Ticket
from tests.support import factories


def mail(message_id: str, sender: str = "bob@example.com", to: str = "support@acme.test",
         subject: str = "Printer broken", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nabout {message_id}\r\n").encode()


def post(api, channel, raw: bytes) -> None:
    answer = api.session.post(f"{api.base_url}/webhooks/raw_mime/{channel.key}", data=raw,
                              headers={"Content-Type": "message/rfc822"})
    assert answer.status_code == 200, answer.text


def ticket_of_message(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(Message.message_id, Message.ticket_id)).all()
        db.session.rollback()
        return dict(rows)


def test_the_reply_to_tag_threads_a_reply_without_in_reply_to(app, api, drain):
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    post(api, channel, mail("first@example.com"))
    drain("ingest")
    [ticket_id] = set(ticket_of_message(app).values())
    tag = f"support+t{ticket_id}@acme.test"
    post(api, channel, mail("colleague@example.com", sender="carol@example.com",
                            extra="In-Reply-To: <first@example.com>\r\n"))
    drain("ingest")
    # Clients that drop In-Reply-To/References but keep our Reply-To.
    post(api, channel, mail("bare@example.com", to=tag, subject="another subject"))
    post(api, channel, mail("carol-bare@example.com", sender="carol@example.com", to=tag))
    post(api, channel, mail("cc@example.com", to="someone@else.test",
                            extra=f"Cc: Support <{tag}>\r\n"))
    # Someone who was never on the thread does not get into it by guessing the tag.
    post(api, channel, mail("stranger@example.com", sender="mallory@example.com", to=tag))
    post(api, channel, mail("other-domain@example.com", to=f"support+t{ticket_id}@evil.test"))
    drain("ingest")
    tickets = ticket_of_message(app)
    assert {tickets[m] for m in ("first@example.com", "colleague@example.com",
                                 "bare@example.com", "carol-bare@example.com",
                                 "cc@example.com")} == {ticket_id}
    assert tickets["stranger@example.com"] != ticket_id
    assert tickets["other-domain@example.com"] != ticket_id


@pytest.mark.parametrize(("one_batch", "returning"),
                         [(False, False), (True, False), (True, True)])
def test_a_reply_before_its_parent_and_a_mail_twice_end_as_one_ticket(app, api, drain,
                                                                        one_batch, returning):
    channel = factories.channel(app, "raw_mime")
    earlier = set()
    if returning:  # a customer known before the batch, with a ticket of another thread
        post(api, channel, mail("earlier@example.com", subject="Another thing"))
        drain("ingest")
        earlier = {"earlier@example.com"}
    reply = mail("reply@example.com", subject="Re: Printer broken",
                 extra="In-Reply-To: <parent@example.com>\r\n"
                       "References: <parent@example.com>\r\n")
    sibling = mail("sibling@example.com", subject="Re: Printer broken",
                   extra="In-Reply-To: <parent@example.com>\r\n")
    later = mail("later@example.com", subject="Re: Printer broken",
                 extra="References: <parent@example.com> <reply@example.com>\r\n")
    for raw in (reply, reply, sibling, mail("parent@example.com"), mail("parent@example.com"),
                later):
        post(api, channel, raw)
        if not one_batch:
            drain("ingest")
    drain("ingest")
    tickets = ticket_of_message(app)
    earlier_tickets = {tickets.pop(message_id) for message_id in earlier}
    assert sorted(tickets) == ["later@example.com", "parent@example.com", "reply@example.com",
                               "sibling@example.com"]
    assert len(set(tickets.values())) == 1
    assert not earlier_tickets & set(tickets.values())
    with app.app_context():
        assert len(db.session.execute(select(Ticket.id)).all()) == 1 + len(earlier)
