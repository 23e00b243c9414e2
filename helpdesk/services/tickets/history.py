"""The append-only record of every change to a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from helpdesk.extensions import db
from helpdesk.models import Agent, Ticket, TicketEvent
from helpdesk.models.base import utcnow


def record(ticket: Ticket, name: str, actor: Agent | None = None, note: str | None = None,
           *, at: datetime | None = None, **data: Any) -> TicketEvent:
    """Append `name` with `data` to the ticket's history (actor None = the system); `at`:
    the moment of the change, when the ticket's own columns hold it too (a solve: its
    `solved_at`), so the two agree to the microsecond; else now, as it is recorded (not
    when it is written: events of one change keep their order in time)."""
    event = TicketEvent(ticket_id=ticket.id, name=name, data=data, note=note,
                        actor_type="agent" if actor else "system",
                        actor_id=actor.id if actor else None, created_at=at or utcnow())
    db.session.add(event)
    return event
