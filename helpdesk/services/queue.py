"""The one queue: unassigned new/open tickets by priority, SLA deadline, age."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Select, TextClause, or_, select, text
from sqlalchemy.orm import joinedload

from helpdesk.errors import Conflict
from helpdesk.extensions import db
from helpdesk.models import KINDS, Agent, Channel, Customer, Ticket
from helpdesk.realtime import events
from helpdesk.services import assignment, metrics_rollup, settings
from helpdesk.services.transaction import commit

QUEUE_ORDER = (Ticket.priority_rank.desc(), Ticket.sla_due_at.asc(),
               Ticket.created_at.asc(), Ticket.id.asc())


_QUEUED = (Ticket.assignee_id.is_(None), Ticket.status.in_(("new", "open")))


def queued() -> Select:
    """Unassigned tickets waiting for an agent, in queue order."""
    return select(Ticket).where(*_QUEUED).order_by(*QUEUE_ORDER)


def eligible_for(query: Select, agent: Agent, kinds: list[str] | None = None) -> Select:
    """Only tickets this agent may take: level, languages and channels when set, and (when
    `kinds` is given) channel kinds that fit the agent's free capacity."""
    allowed = allowed_kinds(agent, kinds)
    return _eligible(query, agent.level, agent.languages or None,
                     sorted(allowed) if allowed is not None else None)


def allowed_kinds(agent: Agent, kinds: list[str] | None) -> set[str] | None:
    """The channel kinds the agent may take now; None when any will do."""
    allowed = set(agent.channels or []) or None
    # When every kind fits (capacity to spare: the usual case) the kinds filter is a no-op,
    # since a channel's kind is always one of KINDS; leaving it out saves a subquery.
    if kinds is not None and not set(KINDS) <= set(kinds):
        allowed = set(kinds) if allowed is None else allowed & set(kinds)
    return allowed


def _eligible(query: Select, level: int, languages: list[str] | None,
              kinds: list[str] | None) -> Select:
    """The eligibility filters (languages and kinds: None for no filter)."""
    query = query.where(Ticket.level <= level)
    if languages is not None:
        query = query.where(or_(Ticket.language.is_(None), Ticket.language.in_(languages)))
    if kinds is not None:
        query = query.where(Ticket.channel_id.in_(
            select(Channel.id).where(Channel.kind.in_(kinds))))
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
    if db.session.get_bind().dialect.name == "postgresql":
        return _claim_in_one_statement(agent, kinds)
    ticket = db.session.execute(eligible_for(queued(), agent, kinds).limit(1)).scalars().first()
    if ticket is None:  # SQLite: the write transaction (BEGIN IMMEDIATE) keeps others out
        db.session.rollback()
        return None
    assignment.give(ticket, db.session.get(Agent, agent.id), "queue.next")
    commit()
    return ticket


def _claim_in_one_statement(agent: Agent, kinds: list[str]) -> Ticket | None:
    """PostgreSQL: lock the first eligible ticket nobody else holds (SKIP LOCKED), assign
    it, log the assignment and note the agent's last assignment, in one round trip; what
    `assignment.give` does, without loading anything first."""
    allowed = allowed_kinds(agent, kinds)
    languages = list(agent.languages or [])
    now = datetime.now(UTC)
    ticket_id = db.session.execute(_claim_statement(bool(languages), allowed is not None), {
        "agent_id": agent.id, "level": agent.level, "now": now,
        "data": json.dumps({"from": None, "to": agent.id, "via": "queue.next"}),
        "languages": languages, "kinds": sorted(allowed or ())}).scalar()
    if ticket_id is None:
        db.session.rollback()
        return None
    metrics_rollup.claimed(ticket_id)  # an UPDATE no flush saw
    # Its JSON needs the customer's identities: in the same query, not a second one.
    ticket = db.session.get(Ticket, ticket_id, populate_existing=True,
                            options=[joinedload(Ticket.customer).joinedload(Customer.identities)])
    events.ticket_changed(ticket)
    events.queue_changed()
    commit()
    return ticket


# The queue order and eligibility of `queued`/`eligible_for`, in the order of the partial
# index `ix_tickets_queue_order`. Plain SQL: one statement of data-modifying CTEs, written
# once per filter shape and sent with parameters only.
_CLAIM_SQL = """
WITH candidate AS (
    SELECT id FROM tickets
    WHERE assignee_id IS NULL AND status IN ('new', 'open') AND level <= :level{filters}
    ORDER BY priority_rank DESC, sla_due_at ASC, created_at ASC, id ASC
    LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE tickets SET assignee_id = :agent_id, status = 'open', updated_at = :now
    FROM candidate WHERE tickets.id = candidate.id RETURNING tickets.id),
logged AS (
    INSERT INTO ticket_events (ticket_id, name, actor_type, data, created_at)
    SELECT id, 'assigned', 'system', CAST(:data AS JSON), :now FROM claimed),
noted AS (
    UPDATE agents SET last_assigned_at = :now
    WHERE id = :agent_id AND EXISTS (SELECT 1 FROM claimed))
SELECT id FROM claimed
"""
_BY_LANGUAGE = "\n      AND (language IS NULL OR language = ANY(:languages))"
_BY_KIND = "\n      AND channel_id IN (SELECT id FROM channels WHERE kind = ANY(:kinds))"


@cache
def _claim_statement(by_language: bool, by_kind: bool) -> TextClause:
    filters = (_BY_LANGUAGE if by_language else "") + (_BY_KIND if by_kind else "")
    return text(_CLAIM_SQL.format(filters=filters))


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
