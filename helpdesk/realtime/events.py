"""Which rooms hear about what; serialized now, emitted after commit."""

from __future__ import annotations

from functools import partial

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import PRIORITIES, QUEUED_STATUSES, Message, Ticket
from helpdesk.realtime import emit
from helpdesk.schemas.resources import message_schema, ticket_schema
from helpdesk.services.transaction import after_commit


def ticket_rooms(ticket: Ticket) -> list[str]:
    rooms = ["queue", "supervisors"]
    if ticket.assignee_id:
        rooms.append(f"agent:{ticket.assignee_id}")
    return rooms


def message_rooms(ticket: Ticket) -> list[str]:
    rooms = [f"ticket:{ticket.id}", "supervisors"]
    if ticket.assignee_id:
        rooms.append(f"agent:{ticket.assignee_id}")
    else:
        rooms.append("queue")
    return rooms


def ticket_changed(ticket: Ticket, *, created: bool = False) -> None:
    db.session.flush()
    name = "ticket.created" if created else "ticket.updated"
    after_commit(partial(emit, name, ticket_schema.dump(ticket), ticket_rooms(ticket)))


def message_created(message: Message, ticket: Ticket, *, updated: bool = False) -> None:
    db.session.flush()
    name = "message.updated" if updated else "message.created"
    after_commit(partial(emit, name, message_schema.dump(message), message_rooms(ticket)))


def queue_stats() -> dict:
    rows = db.session.execute(
        select(Ticket.priority, func.count())
        .where(Ticket.assignee_id.is_(None), Ticket.status.in_(QUEUED_STATUSES))
        .group_by(Ticket.priority)).all()
    by_priority = {name: 0 for name in PRIORITIES}
    by_priority.update({priority: count for priority, count in rows})
    return {"size": sum(by_priority.values()), "by_priority": by_priority}


def queue_changed() -> None:
    db.session.flush()
    after_commit(partial(emit, "queue.updated", queue_stats(), ["queue", "supervisors"]))
