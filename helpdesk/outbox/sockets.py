"""Which `/agents` connections were opened with which token, and closing them on revocation.

A web process records each connection under its token and its agent (in Redis, so any
process can find it); revoking a token or an agent's access publishes a Socket.IO
`disconnect` for each of those connections on the message queue every web process listens
to, so the connection is closed wherever it lives, within moments of the commit.
"""

from __future__ import annotations

import logging

from helpdesk.outbox.publish import AGENTS, publisher
from helpdesk.queues import redis_connection

log = logging.getLogger(__name__)


def _by_token(token_hash: str) -> str:
    return f"helpdesk:sockets:token:{token_hash}"


def _by_agent(agent_id: int) -> str:
    return f"helpdesk:sockets:agent:{agent_id}"


def opened(token_hash: str, agent_id: int, sid: str) -> None:
    pipe = redis_connection().pipeline(transaction=False)
    pipe.sadd(_by_token(token_hash), sid)
    pipe.sadd(_by_agent(agent_id), sid)
    pipe.execute()


def closed(token_hash: str, agent_id: int, sid: str) -> None:
    pipe = redis_connection().pipeline(transaction=False)
    pipe.srem(_by_token(token_hash), sid)
    pipe.srem(_by_agent(agent_id), sid)
    pipe.execute()


def close_token(token_hash: str) -> None:
    """Disconnect every connection opened with this token; call it after the revocation
    committed."""
    _close(_by_token(token_hash))


def close_agent(agent_id: int) -> None:
    """Disconnect every connection of this agent, whatever token opened it."""
    _close(_by_agent(agent_id))


def _close(key: str) -> None:
    try:
        sids = [sid.decode() if isinstance(sid, bytes) else sid
                for sid in redis_connection().smembers(key)]
        if not sids:
            return
        manager = publisher()
        pipe = redis_connection().pipeline(transaction=False)
        for sid in sids:
            # The message python-socketio's own managers exchange to disconnect a client
            # that lives in another process; every web process acts on it.
            pipe.publish(manager.channel, manager.json.dumps(
                {"method": "disconnect", "sid": sid, "namespace": AGENTS,
                 "host_id": manager.host_id}))
        pipe.execute()
    except Exception as exc:  # Redis down: the token is revoked; sockets go at reconnect
        log.warning("closing revoked connections failed: %s", exc)
