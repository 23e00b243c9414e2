"""The append-only record of every change to a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from helpdesk.extensions import db
from helpdesk.models import Agent, Ticket, TicketEvent


def record(ticket: Ticket, name: str, actor: Agent | None = None, note: str | None = None,
           *, at: datetime | None = None, **data: Any) -> TicketEvent:
    """Append `name` with `data` to the ticket's history (actor None = the system); `at`:
    the moment of the change, when the ticket's own columns hold it too (a solve: its
    `solved_at`), so the two agree to the microsecond (else: when it is written)."""
    event = TicketEvent(ticket_id=ticket.id, name=name, data=data, note=note,
                        actor_type="agent" if actor else "system",
                        actor_id=actor.id if actor else None,
                        **({"created_at": at} if at is not None else {}))
    db.session.add(event)
    return event
