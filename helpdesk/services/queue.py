"""The one queue: unassigned new/open tickets by priority, SLA deadline, age."""

from __future__ import annotations

from sqlalchemy import Select, or_, select

from helpdesk.errors import Conflict
from helpdesk.extensions import db
from helpdesk.models import KINDS, Agent, Channel, Ticket
from helpdesk.services import assignment, settings
from helpdesk.services.transaction import commit

QUEUE_ORDER = (Ticket.priority_rank.desc(), Ticket.sla_due_at.asc(),
               Ticket.created_at.asc(), Ticket.id.asc())


def queued() -> Select:
    """Unassigned tickets waiting for an agent, in queue order."""
    return (select(Ticket)
            .where(Ticket.assignee_id.is_(None), Ticket.status.in_(("new", "open")))
            .order_by(*QUEUE_ORDER))


def eligible_for(query: Select, agent: Agent, kinds: list[str] | None = None) -> Select:
    """Only tickets this agent may take: level, languages and channels when set, and (when
    `kinds` is given) channel kinds that fit the agent's free capacity."""
    query = query.where(Ticket.level <= agent.level)
    if agent.languages:
        query = query.where(or_(Ticket.language.is_(None), Ticket.language.in_(agent.languages)))
    allowed = set(agent.channels or []) or None
    # When every kind fits (capacity to spare: the usual case) the kinds filter is a no-op,
    # since a channel's kind is always one of KINDS; leaving it out saves a subquery.
    if kinds is not None and not set(KINDS) <= set(kinds):
        allowed = set(kinds) if allowed is None else allowed & set(kinds)
    if allowed is not None:
        query = query.where(Ticket.channel_id.in_(
            select(Channel.id).where(Channel.kind.in_(sorted(allowed)))))
    return query


def fitting_kinds(free: float, weights: dict) -> list[str]:
    return [kind for kind in KINDS if assignment.fits(free, kind, weights)]


def _lock(query: Select) -> Select:
    if db.session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=Ticket)
    return query


def claim_next_ticket(agent: Agent) -> Ticket | None:
    """Assign the first eligible queued ticket to `agent`; never the same one to two agents.

    409 when the agent has no room left for any kind of ticket.
    """
    weights = settings.get("capacity_weights")
    free = assignment.free_capacity(agent, weights)
    kinds = fitting_kinds(free, weights)
    if not kinds:
        db.session.rollback()
        raise Conflict("you are at capacity", "at_capacity")
    ticket = db.session.execute(_lock(eligible_for(queued(), agent, kinds).limit(1))
                                ).scalars().first()
    if ticket is None:
        db.session.rollback()
        return None
    assignment.give(ticket, db.session.get(Agent, agent.id), "queue.next")
    commit()
    return ticket


def fill(agent_id: int, batch: int = 50) -> int:
    """Push mode: give an agent who came online or freed capacity what fits from the queue."""
    if settings.get("routing_mode") != "push":
        return 0
    agent = db.session.execute(select(Agent).where(Agent.id == agent_id)
                               .with_for_update()).scalar_one_or_none()
    if agent is None or agent.presence != "online" or not agent.active:
        db.session.rollback()
        return 0
    weights = settings.get("capacity_weights")
    free = agent.capacity - assignment.loads([agent.id], weights)[agent.id]
    given = 0
    candidates = db.session.execute(_lock(eligible_for(queued(), agent).limit(batch))).scalars()
    for ticket in candidates:
        kind = ticket.channel.kind
        if assignment.fits(free, kind, weights):
            assignment.give(ticket, agent, "push")
            free -= assignment.weight(kind, weights)
            given += 1
    commit()
    return given
