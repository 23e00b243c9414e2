"""Tickets and their messages (every role)."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import json_body, page_of, paginate, query_args
from helpdesk.api.security import current_agent
from helpdesk.api.v1 import bp
from helpdesk.errors import Unprocessable
from helpdesk.schemas.inputs import (
    EscalateSchema,
    MessageCreateSchema,
    PageSchema,
    TicketListSchema,
    TicketUpdateSchema,
    WholeListSchema,
)
from helpdesk.schemas.resources import message_schema, ticket_schema, work_session_schema
from helpdesk.services import settings
from helpdesk.services.tickets import actions as tickets
from helpdesk.services.tickets import work_sessions


@bp.get("/tickets")
def list_tickets():
    args = query_args(TicketListSchema())
    query = tickets.search(args, current_agent())
    return jsonify(paginate(query, args["page"], args["per_page"], ticket_schema))


@bp.get("/tickets/<int:ticket_id>")
def get_ticket(ticket_id: int):
    ticket = tickets.get(ticket_id)
    data = ticket_schema.dump(ticket)
    data["messages"] = message_schema.dump(tickets.messages_of(ticket), many=True)
    return jsonify(data)


@bp.patch("/tickets/<int:ticket_id>")
def update_ticket(ticket_id: int):
    changes = json_body(TicketUpdateSchema())
    return jsonify(ticket_schema.dump(tickets.update(ticket_id, changes, current_agent())))


@bp.post("/tickets/<int:ticket_id>/messages")
def add_message(ticket_id: int):
    data = json_body(MessageCreateSchema())
    message = tickets.add_message(ticket_id, data["text"], data["internal"], current_agent(),
                                  status=data.get("status"))
    return jsonify(message_schema.dump(message)), 201


@bp.post("/tickets/<int:ticket_id>/messages/<int:message_id>/resend")
def resend_message(ticket_id: int, message_id: int):
    message = tickets.resend(ticket_id, message_id, current_agent())
    return jsonify(message_schema.dump(message))


@bp.get("/tickets/<int:ticket_id>/messages")
def list_messages(ticket_id: int):
    args = query_args(PageSchema())
    ticket = tickets.get(ticket_id)
    return jsonify(paginate(tickets.messages_query(ticket), args["page"], args["per_page"],
                            message_schema))


@bp.post("/tickets/<int:ticket_id>/escalate")
def escalate_ticket(ticket_id: int):
    data = json_body(EscalateSchema())
    ticket = tickets.escalate(ticket_id, data["level"], data["reason"], current_agent())
    return jsonify(ticket_schema.dump(ticket))


@bp.post("/tickets/<int:ticket_id>/work/start")
def start_work(ticket_id: int):
    session = work_sessions.start(current_agent().id, ticket_id, work_sessions.REST_TAB, "rest")
    return jsonify(work_session_schema.dump(session))


@bp.post("/tickets/<int:ticket_id>/work/stop")
def stop_work(ticket_id: int):
    tickets.get(ticket_id)
    agent_id = current_agent().id
    session = work_sessions.stop(agent_id, ticket_id, work_sessions.REST_TAB)
    if session is None:  # stopped already (a retried request, an idle close): the last one
        session = work_sessions.last_session(agent_id, ticket_id)
    if session is None:
        raise Unprocessable("you have no work session on this ticket", "no_work_session")
    return jsonify(work_session_schema.dump(session))


@bp.get("/contact-reasons")
def list_contact_reasons():
    """The contact reasons a ticket may be given (every role: agents set them); while the
    list is empty, any text is accepted."""
    args = query_args(WholeListSchema())
    return jsonify(page_of(settings.get("contact_reasons") or [], args["page"],
                           args["per_page"]))
