"""Work sessions: an agent's measured time on a ticket, the basis of handle time.

A session opens when the agent focuses the ticket (Socket.IO `ticket.focus` or REST
`work/start`) and closes on blur, on disconnect, or after the idle limit without activity.
Several tabs on one ticket are one session: Redis counts the tabs, the database holds the
session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from helpdesk.errors import NotFound
from helpdesk.extensions import db
from helpdesk.models import Agent, Ticket, WorkSession
from helpdesk.outbox import emit, rooms
from helpdesk.queues import redis_connection
from helpdesk.services.metrics import facts as ticket_facts
from helpdesk.transaction import after_commit, commit, lock_name

REST_TAB = "rest"


def _tabs_key(agent_id: int, ticket_id: int) -> str:
    return f"helpdesk:focus:{agent_id}:{ticket_id}"


def _viewers_key(ticket_id: int) -> str:
    return f"helpdesk:viewers:{ticket_id}"


def _sid_key(sid: str) -> str:
    return f"helpdesk:sidfocus:{sid}"


def open_session(agent_id: int, ticket_id: int) -> WorkSession | None:
    return db.session.execute(select(WorkSession).where(
        WorkSession.agent_id == agent_id, WorkSession.ticket_id == ticket_id,
        WorkSession.ended_at.is_(None)).with_for_update()).scalar_one_or_none()


def last_session(agent_id: int, ticket_id: int) -> WorkSession | None:
    """The agent's latest session on the ticket, open or ended."""
    return db.session.execute(select(WorkSession).where(
        WorkSession.agent_id == agent_id, WorkSession.ticket_id == ticket_id)
        .order_by(WorkSession.started_at.desc(), WorkSession.id.desc()).limit(1)).scalar()


def _focus_lock(agent_id: int, ticket_id: int) -> str:
    return f"focus:{agent_id}:{ticket_id}"


def _open_or_join(agent_id: int, ticket_id: int, source: str) -> WorkSession:
    # One agent's focus on one ticket at a time: two tabs, or a tab and REST, may focus
    # together, and both would find no open session and open one each.
    lock_name(_focus_lock(agent_id, ticket_id))
    now = datetime.now(UTC)
    session = open_session(agent_id, ticket_id)
    if session is None:
        session = WorkSession(agent_id=agent_id, ticket_id=ticket_id, source=source,
                              started_at=now, last_seen_at=now)
        db.session.add(session)
    else:
        session.last_seen_at = now
    _announce_viewers(ticket_id)
    commit()
    return session


def start(agent_id: int, ticket_id: int, tab: str, source: str) -> WorkSession:
    """Focus: open the agent's session on the ticket, or join it from another tab."""
    if db.session.get(Ticket, ticket_id) is None:
        raise NotFound("ticket")
    client = redis_connection()
    pipe = client.pipeline()
    pipe.sadd(_tabs_key(agent_id, ticket_id), tab)
    pipe.sadd(_viewers_key(ticket_id), agent_id)
    if tab != REST_TAB:
        pipe.sadd(_sid_key(tab), ticket_id)
    pipe.execute()
    try:
        session = _open_or_join(agent_id, ticket_id, source)
    except IntegrityError as exc:  # the ticket (erased) or the agent went away meanwhile
        db.session.rollback()
        raise NotFound("ticket") from exc
    return session


def stop(agent_id: int, ticket_id: int, tab: str, reason: str = "blur") -> WorkSession | None:
    """Blur: close the session once the agent's last tab on the ticket lets go."""
    lock_name(_focus_lock(agent_id, ticket_id))  # (after a focus or heartbeat reopening it)
    client = redis_connection()
    client.srem(_tabs_key(agent_id, ticket_id), tab)
    if tab != REST_TAB:
        client.srem(_sid_key(tab), ticket_id)
    if client.scard(_tabs_key(agent_id, ticket_id)) and reason != "idle":
        return open_session(agent_id, ticket_id)
    client.delete(_tabs_key(agent_id, ticket_id))
    client.srem(_viewers_key(ticket_id), agent_id)
    session = open_session(agent_id, ticket_id)
    if session is not None:
        now = datetime.now(UTC)
        session.ended_at = session.last_seen_at if reason == "idle" else now
        session.end_reason = reason
        ticket_facts.changed(ticket_id)
    _announce_viewers(ticket_id)
    commit()
    return session


def disconnected(agent_id: int, sid: str) -> None:
    """A dropped connection blurs every ticket it had in focus."""
    for ticket_id in redis_connection().smembers(_sid_key(sid)):
        stop(agent_id, int(ticket_id), sid, "disconnect")
    redis_connection().delete(_sid_key(sid))


def keep_alive(agent_id: int, ticket_id: int) -> bool:
    """A heartbeat, or typing, on the ticket: the agent's open session on it is still being
    worked (their sessions on other tickets are not). Whether there was one."""
    kept = worked_on(agent_id, ticket_id)
    commit()
    return kept


def heartbeat(agent_id: int, ticket_id: int, tab: str) -> bool:
    """A tab's heartbeat on a ticket: its session stays open, or, closed as idle while the
    tab kept the ticket in focus, the agent is back: a new session, and a viewer again (the
    heartbeat was acknowledged and recorded nothing). Whether a session is open now."""
    if keep_alive(agent_id, ticket_id):
        return True
    lock_name(_focus_lock(agent_id, ticket_id))  # (a blur of this tab meanwhile goes first)
    if not redis_connection().sismember(_sid_key(tab), ticket_id):
        db.session.rollback()
        return False
    start(agent_id, ticket_id, tab, "socket")
    return True


def worked_on(agent_id: int, ticket_id: int) -> bool:
    """The agent acted on the ticket (a reply, a note, a change): activity on their open
    session on it, in the caller's transaction (a REST client keeps its session alive by
    working, or by calling `work/start` again, as a socket does with `heartbeat`). Whether
    they had one open."""
    return db.session.execute(_WORKED_ON, {"agent": agent_id, "ticket": ticket_id,
                                           "now": datetime.now(UTC)}).rowcount > 0


_WORKED_ON = (update(WorkSession)
              .where(WorkSession.agent_id == bindparam("agent"),
                     WorkSession.ticket_id == bindparam("ticket"),
                     WorkSession.ended_at.is_(None))
              .values(last_seen_at=bindparam("now"))
              .execution_options(synchronize_session=False))


def close_idle() -> int:
    """Close sessions idle past the limit; the time after the last activity is not work."""
    limit = timedelta(seconds=current_app.config["WORK_IDLE_SECONDS"])
    stale = db.session.execute(select(WorkSession.agent_id, WorkSession.ticket_id).where(
        WorkSession.ended_at.is_(None),
        WorkSession.last_seen_at < datetime.now(UTC) - limit)).all()
    db.session.rollback()
    for agent_id, ticket_id in stale:
        stop(agent_id, ticket_id, REST_TAB, "idle")
    return len(stale)


def viewers(ticket_id: int) -> list[dict]:
    ids = sorted(int(v) for v in redis_connection().smembers(_viewers_key(ticket_id)))
    if not ids:
        return []
    agents = db.session.execute(select(Agent).where(Agent.id.in_(ids))).scalars()
    return [{"id": agent.id, "name": agent.name} for agent in agents]


def _announce_viewers(ticket_id: int) -> None:
    data = {"ticket_id": ticket_id, "viewers": viewers(ticket_id)}
    after_commit(lambda: emit("ticket.viewers", data, [rooms.ticket(ticket_id)]))
