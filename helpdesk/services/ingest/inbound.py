"""Applying normalized inbound events: customer messages and delivery reports."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from helpdesk.connectors.base import MessageEvent, StatusEvent, WatermarkEvent
from helpdesk.extensions import db
from helpdesk.models import QUEUED_STATUSES, Channel, Delivery, Identity, Message, Ticket
from helpdesk.outbox import events
from helpdesk.services.ingest import attachments, batch_state, conversations, identity, media
from helpdesk.services.outbound import surveys
from helpdesk.services.routing import queue_updates, scoring

# Delivery reports only move forward: a late `sent` never overwrites `delivered`.
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}



def message_exists(channel_id: int, external_id: str) -> bool:
    batch = batch_state.current()
    known = batch.message_stored(channel_id, external_id) if batch else None
    if known is not None:
        return known
    return db.session.execute(select(Message.id).where(
        Message.channel_id == channel_id, Message.external_id == external_id)).first() is not None


def receive_message(channel: Channel, delivery: Delivery | None,
                    event: MessageEvent) -> Message | None:
    """Store a customer's message on the right ticket; None when it is a duplicate."""
    external_id = event.external_id[:255]
    if message_exists(channel.id, external_id):
        return None
    customer = identity.resolve_customer(event.identities, event.sender_name)
    if batch_state.current() is None:
        # Alone (a replay, a delivery handed its own job): the same message through another
        # delivery at the same moment has the same customer; once their threading lock is
        # ours it has committed, and it is seen here before a ticket is opened for nothing.
        # A lock waited for may have been a merge's or an erasure's: the customer is looked
        # up again, as now committed, and theirs is locked in turn, without waiting (out
        # of id order: the delivery's job is retried if another transaction holds it).
        if batch_state.lock_customers({customer.id}):
            customer = identity.resolve_customer(event.identities, event.sender_name,
                                                 fresh=True)
            batch_state.lock_customers_or_give_up({customer.id})
        if message_exists(channel.id, external_id):
            return None
    now = datetime.now(UTC)
    # When it reached us: its delivery's receipt (processed late, after an outage or a
    # replay, it keeps that moment), else now.
    arrived_at = min(getattr(delivery, "received_at", None) or now, now)
    survey = surveys.answer_from_message(customer, event.text, channel.kind)
    if survey is not None:  # a digit reply to a survey: filed on its ticket, never reopening it
        ticket, created = db.session.get(Ticket, survey.ticket_id), False
        event.flags = [*event.flags, "survey_answer"]
    else:
        ticket, created = conversations.thread_message(channel, customer, event, arrived_at)
    sent_at = min(event.sent_at, arrived_at) if event.sent_at else arrived_at
    given = {"subject": event.subject, "full_text": event.full_text, "html": event.html,
             "message_id": event.message_id, "in_reply_to": event.in_reply_to,
             "references": event.references, "flags": list(event.flags),
             "sender_priority": event.sender_priority,
             "sender": identity.sender_of(channel.kind, event.identities),
             "reply_to": event.reply_to,
             "delivery_id": delivery.id if delivery else None}
    # Unset columns take their defaults: the ORM sets every keyword one by one, and the
    # ingest batch builds hundreds of messages per transaction.
    message = Message(
        ticket_id=ticket.id, channel_id=channel.id, direction="inbound",
        author_type="customer", author_id=customer.id, author_name=customer.name,
        external_id=external_id, text=event.text or "", delivery_status="received",
        created_at=sent_at, attachments=[], **{k: v for k, v in given.items() if v})
    message.channel = channel
    batch = batch_state.current()
    if batch is not None:  # a duplicate stored concurrently fails the batch's flush instead
        message.ticket = ticket  # the ticket may be new and unwritten: inserted first
        db.session.add(message)
        batch.stored_message(channel.id, external_id)
        batch.threaded(message, ticket)
    else:
        try:
            with db.session.begin_nested():
                db.session.add(message)
        except IntegrityError:  # the same message through another delivery, concurrently
            return None
    attachments.attach(message, event.attachments)
    media.fetch_after_commit(message.attachments)
    if "bounce" in event.flags:
        mark_bounced(event.bounced_message_ids, event.text)
    ticket.last_activity_at = max(ticket.last_activity_at or now, now)
    if batch is not None:
        batch.ticket_active(ticket)
    events.ticket_changed(ticket, created=created)
    events.message_created(message, ticket)
    if ticket.status in QUEUED_STATUSES:
        queue_updates.queue_changed()
        route_after_commit(ticket)
    if created:
        contacted_again(customer.id)
    return message


def contacted_again(customer_id: int) -> None:
    """A customer's new ticket (or call) is a contact their other waiting tickets weigh as
    repeat contact: they are scored again (a batch asks once, at its end; a customer it
    created has no other ticket)."""
    batch = batch_state.current()
    if batch is None:
        scoring.request_routing_of_customers({customer_id})
    elif customer_id not in batch.created_customers:
        batch.contacted_again.add(customer_id)


def route_after_commit(ticket: Ticket) -> None:
    """Score (and in push mode assign) the ticket once this transaction is visible: the
    routing batch claims it."""
    scoring.request_routing(ticket)


def mark_bounced(message_ids: list[str], error: str) -> None:
    """A bounce names our outbound message: it was not delivered."""
    if not message_ids:
        return
    for message in db.session.execute(select(Message).where(
            Message.message_id.in_(message_ids), Message.direction == "outbound")
            .with_for_update(of=Message)).scalars():
        message.delivery_status = "failed"
        message.delivery_error = (error or "bounced")[:2000]
        surveys.follow_message(message)
        # (the agents watching see it fail, and "Send again", without a refetch)
        events.message_created(message, db.session.get(Ticket, message.ticket_id),
                               updated=True)


def receive_watermark(channel: Channel, event: WatermarkEvent) -> bool:
    """A receipt up to a time (Messenger): the replies to that person on this channel, sent
    by then, move forward to its status; False when none did."""
    try:
        value = identity.normalize(event.recipient.kind, event.recipient.value)
    except identity.InvalidIdentity:
        return False
    owner = select(Identity.customer_id).where(Identity.kind == event.recipient.kind,
                                               Identity.value == value).scalar_subquery()
    behind = [status for status, rank in STATUS_RANK.items()
              if STATUS_RANK["sent"] <= rank < STATUS_RANK[event.status]]
    changed = False
    # `sent_at`: when a reply was handed to the provider (one resent or still queued is
    # newer; before migration 0021, `updated_at`, which a later receipt moves too), and the
    # rows locked, so a concurrent receipt cannot move one back.
    for message, ticket in db.session.execute(
            select(Message, Ticket).join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.channel_id == channel.id, Message.direction == "outbound",
                   Message.internal.is_(False), Message.delivery_status.in_(behind),
                   func.coalesce(Message.sent_at, Message.updated_at) <= event.up_to,
                   Ticket.customer_id == owner)
            .order_by(Message.id).with_for_update(of=Message)).all():
        message.delivery_status = event.status
        events.message_created(message, ticket, updated=True)
        changed = True
    return changed


def receive_status(channel: Channel, event: StatusEvent) -> bool:
    """Move an outbound message's delivery status forward; False when nothing changed."""
    # Locked (PostgreSQL): two receipts for one reply in two workers' batches at once
    # (`delivered`, `read`) are weighed one after the other, never moving it back.
    message = db.session.execute(select(Message).where(
        Message.channel_id == channel.id, Message.external_id == event.external_id,
        Message.direction == "outbound").with_for_update(of=Message)
        .execution_options(populate_existing=True)).scalar_one_or_none()
    if message is None or event.status not in STATUS_RANK:
        return False
    current = STATUS_RANK.get(message.delivery_status, -1)
    if STATUS_RANK[event.status] <= current:
        return False
    message.delivery_status = event.status
    if event.error:
        message.delivery_error = event.error[:2000]
    surveys.follow_message(message)
    events.message_created(message, db.session.get(Ticket, message.ticket_id), updated=True)
    return True
