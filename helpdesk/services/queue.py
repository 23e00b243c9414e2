"""The one queue: unassigned new/open tickets by priority, SLA deadline, age."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, or_, select

from helpdesk.errors import Conflict
from helpdesk.extensions import db
from helpdesk.models import Agent, Channel, Ticket
from helpdesk.realtime import events
from helpdesk.services import ticket_events
from helpdesk.services.transaction import commit

QUEUE_ORDER = (Ticket.priority_rank.desc(), Ticket.sla_due_at.asc().nulls_last(),
               Ticket.created_at.asc(), Ticket.id.asc())


def queued() -> Select:
    """Unassigned tickets waiting for an agent, in queue order."""
    return (select(Ticket)
            .where(Ticket.assignee_id.is_(None), Ticket.status.in_(("new", "open")))
            .order_by(*QUEUE_ORDER))


def eligible_for(query: Select, agent: Agent) -> Select:
    """Only tickets this agent may take: level, and languages/channels when set."""
    query = query.where(Ticket.level <= agent.level)
    if agent.languages:
        query = query.where(or_(Ticket.language.is_(None), Ticket.language.in_(agent.languages)))
    if agent.channels:
        query = query.where(Ticket.channel_id.in_(
            select(Channel.id).where(Channel.kind.in_(agent.channels))))
    return query


def has_capacity(agent: Agent) -> bool:
    """Hook for weighted capacity (routing issue); every agent has room until then."""
    return agent.capacity > 0


def claim_next_ticket(agent: Agent) -> Ticket | None:
    """Assign the first eligible queued ticket to `agent`; never the same one to two agents."""
    if not has_capacity(agent):
        raise Conflict("you are at capacity", "at_capacity")
    query = eligible_for(queued(), agent).limit(1)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Ticket)
    ticket = db.session.execute(query).scalars().first()
    if ticket is None:
        db.session.rollback()
        return None
    now = datetime.now(UTC)
    ticket_events.record(ticket, "assigned", agent, **{"from": None, "to": agent.id,
                                                       "via": "queue.next"})
    ticket.assignee_id = agent.id
    ticket.status = "open"
    ticket.updated_at = now
    db.session.get(Agent, agent.id).last_assigned_at = now
    events.ticket_changed(ticket)
    events.queue_changed()
    commit()
    return ticket
