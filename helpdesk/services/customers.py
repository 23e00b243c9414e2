"""Customers: creation with identities, lookup by identity, the timeline."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from helpdesk.connectors.base import IdentityRef
from helpdesk.errors import Conflict, Invalid, NotFound
from helpdesk.extensions import db
from helpdesk.models import Call, Channel, Customer, Identity, Message, Ticket, TicketEvent
from helpdesk.schemas.resources import (
    ChannelRefSchema,
    TicketEventSchema,
    call_schema,
    message_schema,
)
from helpdesk.services.ingest import identity
from helpdesk.transaction import commit

# Every ticket event but those that only say a message was added (the message is its own
# item: `reply.added`, `note.added`).
TIMELINE_EVENTS = ("ticket.created", "status.changed", "ticket.reopened", "escalated",
                   "assigned", "priority.changed", "sla.warning", "sla.breached",
                   "reply.resent", "routing.failed")


def get(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None or customer.erased_at is not None:
        raise NotFound("customer")
    return customer


def create(name: str, identities: list[dict], tier: str = "standard") -> Customer:
    """A customer with the given identities; 409 when one already belongs to someone."""
    refs = []
    for index, item in enumerate(identities):
        try:
            refs.append(IdentityRef(item["kind"], identity.normalize(item["kind"],
                                                                       item["value"])))
        except identity.InvalidIdentity as exc:
            raise Invalid(str(exc), {"identities": {str(index): {"value": [str(exc)]}}}
                          ) from exc
    taken = identity.find_identities(refs)
    if taken:
        first = taken[0]
        raise Conflict(f"identity {first.kind}:{first.value} belongs to customer "
                       f"{first.customer_id}", "identity_taken")
    customer = Customer(name=name, tier=tier)
    db.session.add(customer)
    db.session.flush()
    for ref in {(r.kind, r.value): r for r in refs}.values():
        db.session.add(Identity(customer_id=customer.id, kind=ref.kind, value=ref.value))
    try:
        commit()
    except IntegrityError as exc:  # taken meanwhile (another request, an ingest worker)
        db.session.rollback()
        raise Conflict("one of these identities was just given to another customer",
                       "identity_taken") from exc
    db.session.refresh(customer)
    return customer


def find_by_identity(spec: str) -> list[Customer]:
    """`kind:value` → the customers holding that identity (zero or one)."""
    kind, sep, value = spec.partition(":")
    if not sep:
        raise Invalid("identity must be <kind>:<value>",
                      {"identity": ["must be <kind>:<value>"]})
    try:  # an unknown kind, or a value no identity of its kind can hold: a 400, as at POST
        value = identity.normalize(kind, value)
    except identity.InvalidIdentity as exc:
        raise Invalid(str(exc), {"identity": [str(exc)]}) from exc
    row = db.session.execute(select(Identity).where(Identity.kind == kind,
                                                    Identity.value == value)).scalar_one_or_none()
    if row is None:
        return []
    return [identity.live_customer(row.customer)]


def timeline(customer_id: int) -> list[dict]:
    """Every message (agents' internal notes included: the timeline is read by agents), call
    and ticket event of the customer's tickets, oldest first (DESIGN.md step 5). A customer
    merged into another has theirs: the survivor's, which holds everything they had."""
    customer = identity.live_customer(get(customer_id))
    tickets = {t.id: t for t in db.session.execute(
        select(Ticket).where(Ticket.customer_id == customer.id)).scalars()}
    channel_ref = ChannelRefSchema()
    items = []
    for message in db.session.execute(select(Message).where(
            Message.ticket_id.in_(tickets))).scalars():
        items.append({"type": "message", "at": message.created_at, "ticket_id": message.ticket_id,
                      "channel": channel_ref.dump(message.channel),
                      "message": message_schema.dump(message)})
    event_schema = TicketEventSchema()
    for event in db.session.execute(select(TicketEvent).where(
            TicketEvent.ticket_id.in_(tickets), TicketEvent.name.in_(TIMELINE_EVENTS))).scalars():
        items.append({"type": "event", "at": event.created_at, "ticket_id": event.ticket_id,
                      "channel": channel_ref.dump(tickets[event.ticket_id].channel),
                      "event": event_schema.dump(event)})
    for call in db.session.execute(select(Call).where(
            Call.customer_id == customer.id)).scalars():
        items.append({"type": "call", "at": call.started_at, "ticket_id": call.ticket_id,
                      "channel": channel_ref.dump(db.session.get(Channel, call.channel_id)),
                      "call": call_schema.dump(call)})
    items.sort(key=lambda item: (item["at"], item["type"] != "event"))
    for item in items:
        item["at"] = item["at"].isoformat()
    return items
