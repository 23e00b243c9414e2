"""Threading: which ticket an inbound customer message belongs to (DESIGN.md step 4)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import String, bindparam, cast, or_, select

from helpdesk.connectors.base import MessageEvent
from helpdesk.extensions import db
from helpdesk.models import Channel, Customer, Message, Ticket
from helpdesk.schemas.inputs import MAX_ID
from helpdesk.services.ingest import batch_state
from helpdesk.services.metrics import facts as ticket_facts
from helpdesk.services.sla import clocks as sla
from helpdesk.services.tickets import actions, history, lifecycle

LIVE_THREADED_KINDS = ("chat",)  # one session, one ticket
EMAIL_KINDS = ("email",)
# The Reply-To every email reply carries (senders/smtp.py): `local+t<ticket id>@domain`.
ADDRESS_TAG = re.compile(r"^([^@+\s]+)\+t(\d{1,19})@(\S+)$")
# Our Message-IDs before they carried a mark (`senders.smtp.our_message_id`): a count anyone
# can guess, still stored on replies sent before.
COUNTED_MESSAGE_ID = re.compile(r"^helpdesk-msg-\d+@")


def _now() -> datetime:
    return datetime.now(UTC)


def ticket_by_message_ids(ids: list[str]) -> Ticket | None:
    """The ticket of the most recent message carrying one of these RFC Message-IDs."""
    if not ids:
        return None
    batch = batch_state.current()
    if batch is not None:
        # This batch's messages are the latest, and not written yet: asked first, the
        # database (without a flush) only for what came before.
        found = batch.ticket_of_message_ids(ids)
        if found is not None:
            return found
        with db.session.no_autoflush:
            return _ticket_by_message_ids(ids)
    return _ticket_by_message_ids(ids)


def _ticket_by_message_ids(ids: list[str]) -> Ticket | None:
    row = db.session.execute(_BY_MESSAGE_IDS, {"ids": ids}).first()
    return db.session.get(Ticket, row[0]) if row else None


_BY_MESSAGE_IDS = (select(Message.ticket_id)
                   .where(Message.message_id.in_(bindparam("ids", expanding=True)))
                   .order_by(Message.id.desc()).limit(1))


def ticket_by_thread_key(channel: Channel, thread_key: str) -> Ticket | None:
    """The latest ticket of this conversation (chat session, `api` thread), closed ones
    included: a message after it was closed opens a new ticket linked to it."""
    batch = batch_state.current()
    known = batch.thread_tickets.get((channel.id, thread_key)) if batch else None
    if known is not None and known.status != "closed":
        return known
    return db.session.execute(
        select(Ticket).where(Ticket.channel_id == channel.id, Ticket.thread_key == thread_key)
        .order_by(Ticket.id.desc()).limit(1)).scalar_one_or_none()


def recent_ticket(customer: Customer, now: datetime, written: bool = False) -> Ticket | None:
    """The customer's ticket active within the threading window, any channel's (for a
    `written` message, any but a phone ticket's, which takes no written reply; never a chat
    whose visitor only claimed their email), in THREADING_ORDER: the latest still open, else
    the latest solved (the message reopens it), else the latest closed (an out-of-office
    reply's: a new ticket links to it)."""
    batch = batch_state.current()
    known = (batch.written_tickets if written else batch.customer_tickets) if batch else {}
    if customer.id in known:
        return known[customer.id]  # (the batch keeps it in THREADING_ORDER as it goes)
    window = timedelta(seconds=current_app.config["THREADING_WINDOW_SECONDS"])
    query = select(Ticket).where(Ticket.customer_id == customer.id,
                                 Ticket.last_activity_at >= now - window, batch_state.JOINABLE)
    if written:
        query = query.join(Channel, Channel.id == Ticket.channel_id).where(
            Channel.kind.not_in(batch_state.NOT_JOINED_BY_WRITING))
    return db.session.execute(
        query.order_by(*batch_state.THREADING_ORDER).limit(1)).scalar_one_or_none()


def ticket_by_address_tag(channel: Channel, customer: Customer,
                          recipients: list[str]) -> Ticket | None:
    """The ticket named by our own Reply-To tag among the recipients, when the sender is
    its customer or wrote on it (a colleague in the thread): a client that dropped
    In-Reply-To and References still threads."""
    own = str((channel.settings or {}).get("address") or "").lower()
    for address in recipients:
        found = ADDRESS_TAG.match(address.strip().lower())
        if found is None:
            continue
        local, ticket_id, domain = found.groups()
        if (own and own != f"{local}@{domain}") or int(ticket_id) > MAX_ID:
            continue  # (an id no ticket can have: a tag someone made up)
        ticket = db.session.get(Ticket, int(ticket_id))
        if ticket is not None and ticket.channel_id == channel.id and (
                ticket.customer_id == customer.id or _wrote_on(customer, ticket)):
            return ticket
    return None


def _wrote_on(customer: Customer, ticket: Ticket) -> bool:
    return db.session.execute(select(Message.id).where(
        Message.ticket_id == ticket.id, Message.author_type == "customer",
        Message.author_id == customer.id).limit(1)).first() is not None


def ticket_of_early_reply(customer: Customer, event: MessageEvent) -> Ticket | None:
    """A reply that arrived before its parent opened the thread's ticket: the parent joins
    it, and so does a sibling reply naming the same missing parent (the customer's messages
    naming this Message-ID, or one this mail names, in In-Reply-To or References)."""
    ids = list(dict.fromkeys(filter(None, [event.message_id, *event.in_reply_to,
                                           *event.references])))[:10]
    if not ids:
        return None
    batch = batch_state.current()
    if batch is None:
        return _ticket_naming(customer, ids)
    # The database (without a flush) for what came before this batch, unless the batch
    # created the customer; then this batch's messages, written after those.
    if customer.id not in batch.created_customers:
        with db.session.no_autoflush:
            found = _ticket_naming(customer, ids)
        if found is not None:
            return found
    return batch.ticket_naming(customer.id, ids)


def _ticket_naming(customer: Customer, ids: list[str]) -> Ticket | None:
    names = [column.like(f'%"{value}"%') for value in ids
             for column in (cast(Message.references, String), cast(Message.in_reply_to, String))]
    row = db.session.execute(
        select(Message.ticket_id).join(Ticket, Ticket.id == Message.ticket_id)
        .where(Ticket.customer_id == customer.id, Message.direction == "inbound", or_(*names))
        .order_by(Message.id).limit(1)).first()
    return db.session.get(Ticket, row[0]) if row else None


def find_thread(channel: Channel, customer: Customer, event: MessageEvent) -> Ticket | None:
    """The existing ticket this message continues, if any (it may be solved or closed)."""
    now = _now()
    if channel.kind in EMAIL_KINDS or event.in_reply_to or event.references:
        ids = event.in_reply_to + list(reversed(event.references)) + event.bounced_message_ids
        ticket = ticket_by_message_ids(ids)
        if (ticket is not None and not event.bounced_message_ids
                and all(COUNTED_MESSAGE_ID.match(i) for i in ids)
                and ticket.customer_id != customer.id and not _wrote_on(customer, ticket)):
            # Named only by our counted ids, by someone who never wrote on the ticket: a
            # stranger counting their way into others' tickets, not a reply.
            ticket = None
        if ticket is None and channel.kind in EMAIL_KINDS:
            ticket = (ticket_by_address_tag(channel, customer, event.recipients)
                      or ticket_of_early_reply(customer, event))
        if ticket is not None or channel.kind in EMAIL_KINDS:
            return ticket
    if event.thread_key:
        return ticket_by_thread_key(channel, event.thread_key)
    if channel.kind in LIVE_THREADED_KINDS:
        return None
    return recent_ticket(customer, now, written=True)


def open_ticket(channel: Channel, customer: Customer, event: MessageEvent,
                previous: Ticket | None = None, status: str = "new",
                arrived_at: datetime | None = None) -> Ticket:
    """A new ticket for `event`; created when its message reached us (`arrived_at`, the
    delivery's receipt: one processed late, after an outage or a replay, has been waiting
    since then, and its SLA deadlines count from then), else now."""
    subject = event.subject or (event.text or "").strip().split("\n")[0][:120] or None
    ticket = Ticket(subject=subject, status=status, customer_id=customer.id,
                    channel_id=channel.id, thread_key=event.thread_key,
                    identity_verified=event.identity_verified,
                    previous_ticket_id=previous.id if previous else None,
                    **({"created_at": arrived_at} if arrived_at is not None else {}))
    ticket.customer, ticket.channel = customer, channel
    db.session.add(ticket)
    if not batch_state.unflushed(ticket):  # in a batch: its id and defaults set, unwritten
        db.session.flush()
    if status != "closed":  # first: its policy's query would flush the history row alone
        with db.session.no_autoflush:  # (nor anything else: the policy is not ours)
            sla.apply_policy(ticket)
    created = history.record(ticket, "ticket.created", at=ticket.created_at,
                             channel=channel.kind, previous_ticket_id=ticket.previous_ticket_id)
    created.ticket = ticket  # written after the ticket when both are pending
    return ticket


def thread_message(channel: Channel, customer: Customer, event: MessageEvent,
                   arrived_at: datetime | None = None) -> tuple[Ticket, bool]:
    """The ticket for this inbound message and whether it was created for it (a new one
    created at `arrived_at`, see `open_ticket`)."""
    now = _now()
    quiet = bool({"auto_reply", "bounce"} & set(event.flags))
    batch_state.lock_customers({customer.id})
    ticket = find_thread(channel, customer, event)
    if ticket is not None:
        batch_state.lock_ticket(ticket)  # its status as last committed, and ours until commit
    if ticket is not None and (quiet or lifecycle.can_reopen(ticket, now)):
        if not quiet:
            customer_replied(ticket, now)
        return ticket, False
    # Auto-replies and bounces never put work in the queue.
    return open_ticket(channel, customer, event, previous=ticket,
                       status="closed" if quiet else "new", arrived_at=arrived_at), True


def customer_replied(ticket: Ticket, now: datetime) -> None:
    ticket.last_activity_at = now
    if ticket.status == "pending":
        ticket.status = "open"
        history.record(ticket, "status.changed", at=now, **{"from": "pending", "to": "open"})
        sla.resume(ticket, now)
    elif ticket.status == "solved":
        ticket.status = "open"
        solved_at, ticket.solved_at = ticket.solved_at, None
        history.record(ticket, "ticket.reopened", at=now,
                       solved_at=solved_at.isoformat() if solved_at else None)
        sla.reopened(ticket, solved_at, now)
        actions.let_go_unless_able(ticket, None)
        ticket_facts.changed(ticket)
