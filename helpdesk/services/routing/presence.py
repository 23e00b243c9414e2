"""Agents' presence: online while any connection is open, unless they said `away`."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import Agent
from helpdesk.outbox import emit_many, rooms
from helpdesk.outbox.events import METRICS_DIRTY
from helpdesk.queues import redis_connection
from helpdesk.transaction import after_commit, commit


def _key(agent_id: int) -> str:
    return f"helpdesk:presence:{agent_id}"


def _announce(agent: Agent) -> None:
    """To supervisors, with the live figures marked stale (they count agents online)."""
    data = {"agent_id": agent.id, "name": agent.name, "status": agent.presence}
    after_commit(lambda: emit_many([("agent.presence", data, [rooms.SUPERVISORS])],
                                   flags=(METRICS_DIRTY,)))


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


# Connections live in web processes; a process that dies (killed, out of memory, its host
# gone) runs no disconnect handler. So each web process lists its connections under its
# own id with a key that expires unless the process keeps it alive, and the sweeper treats
# the connections of a process whose key has expired as closed: otherwise their agents
# stayed `online` for good (calls queued for nobody, push routing to them).
PROCESS = uuid.uuid4().hex
PROCESS_TTL_SECONDS = 60
_WEB_PREFIX = "helpdesk:web:"


def _alive_key(process: str) -> str:
    return f"{_WEB_PREFIX}{process}"


def _connections_key(process: str) -> str:
    return f"{_WEB_PREFIX}{process}:connections"


def keep_process_alive() -> None:
    """Every few seconds in a web process with connections (see `PROCESS_TTL_SECONDS`)."""
    redis_connection().set(_alive_key(PROCESS), "1", ex=PROCESS_TTL_SECONDS)


def connected(agent_id: int, sid: str, token_hash: str = "") -> None:
    """A new connection starts `online`."""
    pipe = redis_connection().pipeline(transaction=False)
    pipe.sadd(_key(agent_id), sid)
    pipe.hset(_connections_key(PROCESS), sid, f"{agent_id} {token_hash}")
    pipe.set(_alive_key(PROCESS), "1", ex=PROCESS_TTL_SECONDS)
    pipe.execute()
    _store(agent_id, "online")


def disconnected(agent_id: int, sid: str, process: str = PROCESS) -> None:
    """Offline once the agent's last connection closes."""
    client = redis_connection()
    pipe = client.pipeline(transaction=False)
    pipe.srem(_key(agent_id), sid)
    pipe.hdel(_connections_key(process), sid)
    pipe.scard(_key(agent_id))
    if pipe.execute()[-1] == 0:
        _store(agent_id, "offline")


def sweep_dead_processes() -> int:
    """Close the connections of web processes that stopped keeping themselves alive, as
    their disconnect handlers would have: work sessions end, presence goes offline once an
    agent has no other connection. Returns how many were closed."""
    from helpdesk.outbox import sockets
    from helpdesk.services.tickets import work_sessions

    client = redis_connection()
    closed = 0
    for key in client.scan_iter(match=f"{_WEB_PREFIX}*:connections", count=100):
        key = key.decode() if isinstance(key, bytes) else key
        process = key[len(_WEB_PREFIX):-len(":connections")]
        if client.exists(_alive_key(process)):
            continue
        for sid, value in client.hgetall(key).items():
            sid = sid.decode() if isinstance(sid, bytes) else sid
            value = value.decode() if isinstance(value, bytes) else value
            agent, _, token_hash = value.partition(" ")
            if token_hash:
                sockets.closed(token_hash, int(agent), sid)
            work_sessions.disconnected(int(agent), sid)
            disconnected(int(agent), sid, process)
            closed += 1
        client.delete(key)
    return closed


def set_status(agent_id: int, status: str) -> None:
    _store(agent_id, status)


def online_agent_ids() -> list[int]:
    return list(db.session.execute(
        select(Agent.id).where(Agent.presence == "online", Agent.active.is_(True))).scalars())
