"""The `/chat` namespace: website visitors, authenticated by their visitor token."""

from __future__ import annotations

from flask import session
from flask_socketio import ConnectionRefusedError, join_room

from helpdesk.errors import error_body
from helpdesk.extensions import socketio
from helpdesk.models import Agent
from helpdesk.outbox import AGENTS, CHAT, emit, rooms
from helpdesk.realtime import connect_sent_by_the_client, typing_too_soon
from helpdesk.services.outbound import chat


@socketio.on("connect", namespace=CHAT)
def connect(auth_data=None):
    """Refuse without a valid visitor token; join the visitor's room."""
    if connect_sent_by_the_client():
        return
    token = auth_data.get("token") if isinstance(auth_data, dict) else None
    chat_session = chat.session_for_token(token if isinstance(token, str) else None)
    if chat_session is None:
        raise ConnectionRefusedError("unauthorized")
    session["chat_session_id"] = chat_session.id
    join_room(chat.visitor_room(chat_session.public_id))


@socketio.on("typing", namespace=CHAT)
def typing(_data=None, *_more):
    """The visitor is typing: tell the agents who have the ticket in focus."""
    chat_session = chat.get_session(session.get("chat_session_id", 0))
    if chat_session is None or chat_session.ticket_id is None:
        return error_body("no_ticket", "send a message first")
    if typing_too_soon():
        return {"ok": True}
    emit("typing", {"ticket_id": chat_session.ticket_id,
                    "customer_id": chat_session.customer_id, "name": chat_session.name},
         rooms.ticket(chat_session.ticket_id), AGENTS)
    return {"ok": True}


def agent_typing(ticket_id: int, agent: Agent) -> None:
    """An agent is typing on a website chat ticket: tell its visitor."""
    room = chat.visitor_room_of_ticket(ticket_id)
    if room is not None:
        emit("typing", {"ticket_id": ticket_id, "agent_id": agent.id, "name": agent.name},
             room, CHAT)
