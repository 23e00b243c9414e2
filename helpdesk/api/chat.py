"""Website chat visitors (public: visitor tokens, not agents'), with CORS for the site."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify, request

from helpdesk.api import rate_limit
from helpdesk.api.common import json_body, paginate, query_args
from helpdesk.api.security import bearer_token
from helpdesk.api.v1 import bp, public
from helpdesk.schemas.inputs import ChatMessageCreateSchema, ChatSessionCreateSchema, PageSchema
from helpdesk.schemas.resources import customer_message_schema
from helpdesk.services.outbound import chat

_CORS_ENDPOINTS = {f"{bp.name}.{name}" for name in
                   ("start_chat_session", "post_chat_message", "list_chat_messages")}
CORS_HEADERS = {"Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Max-Age": "600"}


@bp.before_request
def _find_cors_origin() -> None:
    """Resolved before the view runs, so error responses get the same headers."""
    if request.endpoint in _CORS_ENDPOINTS:
        g.chat_cors_origin = chat.allowed_origin(request.headers.get("Origin"),
                                                 **(request.view_args or {}))


@bp.after_request
def _add_cors_headers(response: Response) -> Response:
    if request.endpoint not in _CORS_ENDPOINTS:
        return response
    response.headers.update(CORS_HEADERS)
    response.vary.add("Origin")
    origin = g.get("chat_cors_origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def _rate_limit(channel_id: int) -> None:
    """Visitors share their channel's webhook budget (HELPDESK_WEBHOOK_RATE)."""
    rate_limit.check(f"webhook:{channel_id}", current_app.config["WEBHOOK_RATE"])


@bp.post("/chat/<channel_key>/sessions")
@public
def start_chat_session(channel_key: str):
    _rate_limit(chat.widget_channel(channel_key).id)
    data = json_body(ChatSessionCreateSchema(), optional=True)  # (every field optional)
    session, token = chat.start_session(channel_key, data["name"], data["email"],
                                        data["email_hmac"])
    return jsonify({"session_id": session.public_id, "visitor_token": token}), 201


@bp.post("/chat/sessions/<session_id>/messages")
@public
def post_chat_message(session_id: str):
    _rate_limit(chat.authorize(session_id, bearer_token()).channel_id)
    data = json_body(ChatMessageCreateSchema())
    message, created = chat.post_message(session_id, bearer_token(), data["text"],
                                         data["client_message_id"])
    return jsonify(customer_message_schema.dump(message)), 201 if created else 200


@bp.get("/chat/sessions/<session_id>/messages")
@public
def list_chat_messages(session_id: str):
    query = chat.session_messages(session_id, bearer_token())
    args = query_args(PageSchema())
    return jsonify(paginate(query, args["page"], args["per_page"], customer_message_schema))
