"""Capacity and push assignment: who may take a ticket, and who gets it."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Select, bindparam, func, select, text

from helpdesk.extensions import db
from helpdesk.models import QUEUED_STATUSES, WORKING_STATUSES, Agent, Channel, Ticket
from helpdesk.outbox import events
from helpdesk.services import settings
from helpdesk.services.routing import queue_updates
from helpdesk.services.tickets import history


def weight(kind: str, weights: dict | None = None) -> float:
    weights = weights or settings.get("capacity_weights")
    return float(weights.get(kind, weights.get("default", 0.1)))


def loads(agent_ids: list[int], weights: dict | None = None) -> dict[int, float]:
    """Capacity used by each agent's active tickets, weighted by channel kind."""
    weights = weights or settings.get("capacity_weights")
    result = {agent_id: 0.0 for agent_id in agent_ids}
    if not agent_ids:
        return result
    rows = db.session.execute(_loads_statement(), {"agent_ids": list(agent_ids)}).all()
    for agent_id, kind, count in rows:
        result[agent_id] += weight(kind, weights) * count
    return result


def workloads() -> list[dict]:
    """Every active agent's active tickets (new or open, assigned to them): how many, the
    capacity they use (weighted by channel kind) and the agent's capacity; one query for
    all (the supervisors' board asked two counts per agent)."""
    weights = settings.get("capacity_weights")
    agents = db.session.execute(select(Agent.id, Agent.capacity).where(
        Agent.active.is_(True)).order_by(Agent.id)).all()
    found = {agent_id: {"agent_id": agent_id, "tickets": 0, "load": 0.0, "capacity": capacity}
             for agent_id, capacity in agents}
    if found:
        for agent_id, kind, count in db.session.execute(
                _loads_statement(), {"agent_ids": list(found)}).all():
            found[agent_id]["tickets"] += count
            found[agent_id]["load"] += weight(kind, weights) * count
    return list(found.values())


@cache
def _loads_statement() -> Select:
    """Built once: every claim runs it."""
    return (select(Ticket.assignee_id, Channel.kind, func.count())
            .join(Channel, Channel.id == Ticket.channel_id)
            .where(Ticket.assignee_id.in_(bindparam("agent_ids", expanding=True)),
                   Ticket.status.in_(WORKING_STATUSES))
            .group_by(Ticket.assignee_id, Channel.kind))


def free_capacity(agent: Agent, weights: dict | None = None) -> float:
    return agent.capacity - loads([agent.id], weights)[agent.id]


def fits(free: float, kind: str, weights: dict) -> bool:
    return weight(kind, weights) <= free + 1e-9


def eligible(agent: Agent, ticket: Ticket) -> bool:
    """Level, and the agent's languages and channels when set."""
    if agent.level < ticket.level:
        return False
    if agent.languages and ticket.language and ticket.language not in agent.languages:
        return False
    return not agent.channels or ticket.channel.kind in agent.channels


# Advisory locks per agent (PostgreSQL), held until the transaction ends: whatever weighs an
# agent's free capacity and then assigns takes it first, so a claim (`helpdesk_claim_room`,
# migration 0018, in the claim statement) and push mode (`push_assign`, `queue.fill`) weigh
# one after the other, each on what the other committed. Taken before the agent's row lock,
# in the order the claim statement takes them.
AGENT_LOCK_SPACE = 0x4841
_LOCK_AGENT = text("SELECT pg_advisory_xact_lock(:space, :agent_id)")


def lock_agent(agent_id: int) -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_LOCK_AGENT, {"space": AGENT_LOCK_SPACE, "agent_id": agent_id})


def give(ticket: Ticket, agent: Agent, via: str) -> None:
    now = datetime.now(UTC)
    history.record(ticket, "assigned", None, **{"from": None, "to": agent.id, "via": via})
    ticket.assignee_id = agent.id
    ticket.status = "open"
    ticket.updated_at = now
    agent.last_assigned_at = now
    events.ticket_changed(ticket)
    queue_updates.queue_changed()


def push_assign(ticket: Ticket) -> Agent | None:
    """Push mode: the eligible online agent with the most free capacity (then the one
    assigned least recently) gets the ticket; None leaves it in the queue."""
    if ticket.assignee_id is not None or ticket.status not in QUEUED_STATUSES:
        return None
    weights = settings.get("capacity_weights")
    online = db.session.execute(select(Agent).where(
        Agent.presence == "online", Agent.active.is_(True))).scalars().all()
    candidates = [agent for agent in online if eligible(agent, ticket)]
    used = loads([agent.id for agent in candidates], weights)
    kind = ticket.channel.kind
    ranked = sorted((agent for agent in candidates
                     if fits(agent.capacity - used[agent.id], kind, weights)),
                    key=lambda a: (-(a.capacity - used[a.id]),
                                   a.last_assigned_at or datetime.min.replace(tzinfo=UTC),
                                   a.id))
    for agent in ranked:
        # Lock the agent and recheck: two routing jobs, or a job and the agent's own claim,
        # must not overfill one agent.
        lock_agent(agent.id)
        # (as last committed: an admin's deactivation or lower level for the agent in
        # flight holds the agent's row, which this waits for, and is what is weighed)
        locked = db.session.execute(select(Agent).where(Agent.id == agent.id)
                                    .with_for_update()
                                    .execution_options(populate_existing=True)).scalar_one()
        if not (locked.active and locked.presence == "online" and eligible(locked, ticket)):
            continue
        if fits(locked.capacity - loads([locked.id], weights)[locked.id], kind, weights):
            give(ticket, locked, "push")
            return locked
    return None
