"""Agents' presence: online while any connection is open, unless they said `away`."""

from __future__ import annotations

from sqlalchemy import select

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import Agent
from helpdesk.outbox import emit, rooms
from helpdesk.queues import redis_connection
from helpdesk.transaction import after_commit, commit


def _key(agent_id: int) -> str:
    return f"helpdesk:presence:{agent_id}"


def _announce(agent: Agent) -> None:
    data = {"agent_id": agent.id, "name": agent.name, "status": agent.presence}
    after_commit(lambda: emit("agent.presence", data, [rooms.SUPERVISORS]))


def _store(agent_id: int, status: str) -> None:
    agent = db.session.execute(
        select(Agent).where(Agent.id == agent_id).with_for_update()).scalar_one_or_none()
    if agent is None:
        db.session.rollback()
        return
    changed = agent.presence != status
    agent.presence = status
    if changed:
        _announce(agent)
    if changed and status == "online":
        after_commit(lambda: jobs.FILL_AGENT.enqueue(agent_id))
    commit()


def connected(agent_id: int, sid: str) -> None:
    """A new connection starts `online`."""
    redis_connection().sadd(_key(agent_id), sid)
    _store(agent_id, "online")


def disconnected(agent_id: int, sid: str) -> None:
    """Offline once the agent's last connection closes."""
    client = redis_connection()
    client.srem(_key(agent_id), sid)
    if client.scard(_key(agent_id)) == 0:
        _store(agent_id, "offline")


def set_status(agent_id: int, status: str) -> None:
    _store(agent_id, status)


def online_agent_ids() -> list[int]:
    return list(db.session.execute(
        select(Agent.id).where(Agent.presence == "online", Agent.active.is_(True))).scalars())
