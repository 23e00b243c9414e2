"""Agents' presence: online while any connection is open, unless they said `away`."""

from __future__ import annotations

import logging
import time
import uuid

from redis.exceptions import ResponseError
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


def announce(agent: Agent) -> None:
    """To supervisors, after commit, with the live figures marked stale (they count agents
    online); also when an agent is created, deactivated or activated again (the agents
    board lists active agents: no presence changed for one who was offline)."""
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
        announce(agent)
    if changed and status == "online":
        after_commit(lambda: jobs.FILL_AGENT.enqueue(agent_id))
    commit()


# Connections live in web processes; a process that dies (killed, out of memory, its host
# gone) runs no disconnect handler. So each web process lists its connections under its
# own id with a key that expires unless the process keeps it alive, and the sweeper treats
# the connections of a process whose key has been gone for a while as closed: otherwise
# their agents stayed `online` for good (calls queued for nobody, push routing to them).
# A live process whose key lapsed (Redis was down or restarted) registers its connections
# again on its next keep-alive.
PROCESS = uuid.uuid4().hex
PROCESS_TTL_SECONDS = 60
_WEB_PREFIX = "helpdesk:web:"
_PROCESSES = f"{_WEB_PREFIX}processes"  # the web processes that have had connections
# This process's connections: sid -> (agent id, token hash), to register them again.
_local: dict[str, tuple[int, str]] = {}
log = logging.getLogger(__name__)


def _alive_key(process: str) -> str:
    return f"{_WEB_PREFIX}{process}"


def _connections_key(process: str) -> str:
    return f"{_WEB_PREFIX}{process}:connections"


def _gone_key(process: str) -> str:
    return f"{_WEB_PREFIX}{process}:gone"


def _register(pipe, agent_id: int, sid: str, token_hash: str) -> None:
    pipe.sadd(_key(agent_id), sid)
    pipe.hset(_connections_key(PROCESS), sid, f"{agent_id} {token_hash}")
    pipe.sadd(_PROCESSES, PROCESS)
    pipe.set(_alive_key(PROCESS), "1", ex=PROCESS_TTL_SECONDS)


def keep_process_alive() -> None:
    """Every few seconds in a web process with connections (see `PROCESS_TTL_SECONDS`).
    If the key had lapsed, the sweeper may have closed this process's connections: they
    are registered again, their agents online again, their tokens' sockets listed again."""
    from helpdesk.outbox import sockets

    client = redis_connection()
    connections = list(_local.items())
    lapsed = bool(connections) and not client.exists(_alive_key(PROCESS))
    if lapsed:
        log.warning("presence: this process's registration had lapsed; registering %d "
                    "connections again", len(connections))
        for sid, (agent_id, token_hash) in connections:  # first: a failure retries it all
            if token_hash:
                sockets.opened(token_hash, agent_id, sid)
            agent = db.session.get(Agent, agent_id)
            if agent is not None and agent.presence == "offline":
                _store(agent_id, "online")
        db.session.rollback()
    pipe = client.pipeline(transaction=False)
    for sid, (agent_id, token_hash) in connections if lapsed else ():
        if sid in _local:  # (not one that closed meanwhile)
            _register(pipe, agent_id, sid, token_hash)
    pipe.sadd(_PROCESSES, PROCESS)
    pipe.set(_alive_key(PROCESS), "1", ex=PROCESS_TTL_SECONDS)
    pipe.delete(_gone_key(PROCESS))
    pipe.execute()


def connected(agent_id: int, sid: str, token_hash: str = "") -> None:
    """A new connection starts `online`. One that could not be recorded (Redis not
    answering: the connect is refused) is not kept as this process's either, or the
    keep-alive would register it later, a connection nobody holds."""
    _local[sid] = (agent_id, token_hash)
    try:
        pipe = redis_connection().pipeline(transaction=False)
        _register(pipe, agent_id, sid, token_hash)
        pipe.execute()
        _store(agent_id, "online")
    except Exception:
        _local.pop(sid, None)
        raise


def disconnected(agent_id: int, sid: str, *, swept: bool = False) -> None:
    """Offline once the agent's last connection closes (`swept`: closed by the sweeper for
    a dead process, whose list it has already taken away)."""
    client = redis_connection()
    pipe = client.pipeline(transaction=False)
    pipe.srem(_key(agent_id), sid)
    if not swept:
        _local.pop(sid, None)
        pipe.hdel(_connections_key(PROCESS), sid)
    pipe.scard(_key(agent_id))
    if pipe.execute()[-1] == 0:
        _store(agent_id, "offline")


def sweep_dead_processes(now: float | None = None) -> int:
    """Close the connections of web processes whose key has been gone for a whole
    `PROCESS_TTL_SECONDS` (a live one renews it every quarter of that), as their disconnect
    handlers would have: work sessions end, presence goes offline once an agent has no
    other connection. Returns how many were closed."""
    client = redis_connection()
    now = time.time() if now is None else now
    closed = 0
    for process in client.smembers(_PROCESSES):
        process = process.decode() if isinstance(process, bytes) else process
        if client.exists(_alive_key(process)):
            continue
        try:
            # First seen gone: remembered; swept once it has stayed gone long enough.
            client.set(_gone_key(process), str(now), nx=True, ex=10 * PROCESS_TTL_SECONDS)
            since = float(client.get(_gone_key(process)) or now)
            if now - since < PROCESS_TTL_SECONDS:
                continue
            closed += _close_connections_of(client, process)
        except Exception:  # one process's entries must not stop the sweep's other work
            log.exception("presence: closing the connections of web process %s failed",
                          process)
    return closed


def _close_connections_of(client, process: str) -> int:
    from helpdesk.outbox import sockets
    from helpdesk.services.tickets import work_sessions

    # Taken out of the way first: what a lapsed process registers meanwhile is its own.
    taken = f"{_connections_key(process)}:sweeping"
    try:
        client.rename(_connections_key(process), taken)
    except ResponseError:  # no such key: nothing listed
        client.srem(_PROCESSES, process)
        return 0
    closed = 0
    for sid, value in client.hgetall(taken).items():
        if client.exists(_alive_key(process)):  # it came back: it registers its own again
            break
        sid = sid.decode() if isinstance(sid, bytes) else sid
        value = value.decode() if isinstance(value, bytes) else value
        agent, _, token_hash = value.partition(" ")
        try:
            if token_hash:
                sockets.closed(token_hash, int(agent), sid)
            work_sessions.disconnected(int(agent), sid)
            disconnected(int(agent), sid, swept=True)
            closed += 1
        except Exception:
            db.session.rollback()
            log.exception("presence: closing connection %s of web process %s failed",
                          sid, process)
    client.delete(taken, _gone_key(process))
    client.srem(_PROCESSES, process)
    return closed


def set_status(agent_id: int, status: str) -> None:
    _store(agent_id, status)


def online_agent_ids() -> list[int]:
    return list(db.session.execute(
        select(Agent.id).where(Agent.presence == "online", Agent.active.is_(True))).scalars())
