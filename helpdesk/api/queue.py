"""The queue: what waits, and "give me the next ticket"."""

from __future__ import annotations

from flask import jsonify

from helpdesk.api.common import paginate, query_args
from helpdesk.api.security import current_agent_columns
from helpdesk.api.v1 import bp
from helpdesk.schemas.inputs import PageSchema
from helpdesk.schemas.resources import ticket_schema
from helpdesk.services.routing import queue


@bp.get("/queue")
def list_queue():
    args = query_args(PageSchema())
    return jsonify(paginate(queue.queued(), args["page"], args["per_page"], ticket_schema))


@bp.post("/queue/next")
def claim_next():
    ticket = queue.claim_next_ticket(current_agent_columns())
    if ticket is None:
        return "", 204
    return jsonify(ticket)
