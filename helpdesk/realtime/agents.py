"""The `/agents` namespace: authenticated connections, rooms, presence, focus."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app, request, session
from flask_socketio import ConnectionRefusedError, join_room, leave_room

from helpdesk.errors import NotFound, error_body
from helpdesk.extensions import db, socketio
from helpdesk.models import Agent, Ticket
from helpdesk.outbox import AGENTS, emit, event_log, rooms, sockets
from helpdesk.realtime import (
    connect_sent_by_the_client,
    disconnect_sent_by_the_client,
    typing_too_soon,
)
from helpdesk.realtime.chat import agent_typing
from helpdesk.schemas.inputs import MAX_ID
from helpdesk.schemas.resources import work_session_schema
from helpdesk.services import auth
from helpdesk.services.routing import presence
from helpdesk.services.tickets import work_sessions

log = logging.getLogger(__name__)


@socketio.on("connect", namespace=AGENTS)
def connect(auth_data=None):
    if connect_sent_by_the_client():
        return
    token = (auth_data or {}).get("token") if isinstance(auth_data, dict) else None
    agent = auth.agent_for_token(token)
    if agent is None:
        raise ConnectionRefusedError("unauthorized")
    token_hash = auth.hash_token(token)
    sockets.opened(token_hash, agent.id, request.sid)
    # Checked again once recorded: a revocation committed in between found no connection.
    db.session.rollback()
    if auth.agent_for_token(token, fresh=True) is None:
        sockets.closed(token_hash, agent.id, request.sid)
        raise ConnectionRefusedError("unauthorized")
    session["agent_id"] = agent.id
    session["token_hash"] = token_hash
    join_room(rooms.agent(agent.id))
    join_room(rooms.QUEUE)
    if agent.has_role("supervisor"):
        join_room(rooms.SUPERVISORS)
    presence.connected(agent.id, request.sid, token_hash)
    _keep_process_alive()


_alive = []  # the keep-alive task, started with this process's first connection


def _keep_process_alive() -> None:
    if _alive:
        return
    app = current_app._get_current_object()
    _alive.append(socketio.start_background_task(_keep_alive_loop, app))


def _keep_alive_loop(app: Flask, stop: Callable[[], bool] = lambda: False) -> None:
    """This process's connections are alive while it is (presence.sweep_dead_processes)."""
    while not stop():
        socketio.sleep(presence.PROCESS_TTL_SECONDS / 4)
        try:
            with app.app_context():
                presence.keep_process_alive()
        except Exception as exc:  # Redis down: the next round tries again
            log.warning("presence keep-alive failed: %s", exc)


@socketio.on("disconnect", namespace=AGENTS)
def disconnect(*_args):
    if disconnect_sent_by_the_client():
        return
    agent_id = session.get("agent_id")
    if agent_id is not None:
        try:
            sockets.closed(session["token_hash"], agent_id, request.sid)
            work_sessions.disconnected(agent_id, request.sid)
        finally:  # (else a failure above would leave the connection listed as live)
            presence.disconnected(agent_id, request.sid)


@socketio.on("presence", namespace=AGENTS)
def set_presence(data=None, *_more):
    status = (data or {}).get("status") if isinstance(data, dict) else None
    if status not in ("online", "away"):
        return error_body("validation_error", "status: online or away",
                          {"status": ["online or away"]})
    presence.set_status(session["agent_id"], status)
    return {"ok": True}


def _ticket_id(data) -> int | None:
    value = (data or {}).get("ticket_id") if isinstance(data, dict) else None
    valid = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
    return value if valid else None


_BAD_TICKET_ID = error_body("validation_error", f"ticket_id: an integer from 1 to {MAX_ID}",
                            {"ticket_id": [f"an integer from 1 to {MAX_ID}"]})
_NO_TICKET = error_body("not_found", "ticket not found")


def _exists(ticket_id: int) -> bool:
    return db.session.get(Ticket, ticket_id) is not None


@socketio.on("ticket.focus", namespace=AGENTS)
def focus(data=None, *_more):
    ticket_id = _ticket_id(data)
    if ticket_id is None:
        return _BAD_TICKET_ID
    join_room(rooms.ticket(ticket_id))
    try:
        work = work_sessions.start(session["agent_id"], ticket_id, request.sid, "socket")
    except NotFound:
        leave_room(rooms.ticket(ticket_id))
        return _NO_TICKET
    return {"ok": True, "work_session": work_session_schema.dump(work)}


@socketio.on("ticket.blur", namespace=AGENTS)
def blur(data=None, *_more):
    ticket_id = _ticket_id(data)
    if ticket_id is None:
        return _BAD_TICKET_ID
    leave_room(rooms.ticket(ticket_id))
    work = work_sessions.stop(session["agent_id"], ticket_id, request.sid)
    if work is None and not _exists(ticket_id):
        return _NO_TICKET
    return {"ok": True, "work_session": work_session_schema.dump(work) if work else None}


@socketio.on("heartbeat", namespace=AGENTS)
def heartbeat(data=None, *_more):
    """The ticket is still on the agent's screen: their session on it stays open (and only
    that one: a heartbeat for one ticket is not work on another)."""
    ticket_id = _ticket_id(data)
    if ticket_id is None:
        return _BAD_TICKET_ID
    # (the ticket is looked up only when no session was kept: a heartbeat is one UPDATE)
    try:
        kept = work_sessions.heartbeat(session["agent_id"], ticket_id, request.sid)
    except NotFound:
        return _NO_TICKET
    if not kept and not _exists(ticket_id):
        return _NO_TICKET
    return {"ok": True}


@socketio.on("events.since", namespace=AGENTS)
def events_since(data=None, *_more):
    seq = (data or {}).get("seq") if isinstance(data, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return error_body("validation_error", "seq: a non-negative integer",
                          {"seq": ["a non-negative integer"]})
    return event_log.since(seq, set(socketio.server.rooms(request.sid, namespace=AGENTS)))


@socketio.on("typing", namespace=AGENTS)
def typing(data=None, *_more):
    ticket_id = _ticket_id(data)
    if ticket_id is None:
        return _BAD_TICKET_ID
    agent = db.session.get(Agent, session["agent_id"])
    if agent is None:
        return None
    if not _exists(ticket_id):
        return _NO_TICKET
    work_sessions.keep_alive(agent.id, ticket_id)
    if typing_too_soon(ticket_id):
        return {"ok": True}
    # Numbered like every agents' event (its own tab gets it too: `agent_id` says whose).
    emit("typing", {"ticket_id": ticket_id, "agent_id": agent.id, "name": agent.name},
         rooms.ticket(ticket_id))
    agent_typing(ticket_id, agent)
    return {"ok": True}
