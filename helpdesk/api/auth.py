"""Login and logout."""

from __future__ import annotations

from flask import current_app, jsonify, request

from helpdesk.api import rate_limit
from helpdesk.api.common import json_body
from helpdesk.api.security import bearer_token, current_agent
from helpdesk.api.v1 import bp, public
from helpdesk.errors import ApiError
from helpdesk.schemas.inputs import LoginSchema
from helpdesk.schemas.resources import agent_ref_schema, agent_schema
from helpdesk.services import auth


@bp.post("/auth/login")
@public
def login():
    data = json_body(LoginSchema())
    email = data["email"].strip().lower()
    # Per IP too, so one address cannot spray passwords over many emails: that limit
    # counts failed logins only (an office behind one address signs in all morning).
    # Both are required: while Redis is away logins answer 503 rather than go unlimited.
    failures = f"login-failed-ip:{request.remote_addr}"
    rate_limit.refuse_if_spent(failures, current_app.config["LOGIN_IP_RATE"], required=True)
    rate_limit.check(f"login:{request.remote_addr}:{email}", current_app.config["LOGIN_RATE"],
                     required=True)
    try:
        token, agent = auth.login(email, data["password"])
    except ApiError as exc:
        if exc.status == 401:
            rate_limit.check(failures, current_app.config["LOGIN_IP_RATE"], required=True)
        raise
    return jsonify({"token": token, "agent": agent_ref_schema.dump(agent)})


@bp.post("/auth/logout")
def logout():
    auth.logout(bearer_token() or "")
    return "", 204


@bp.get("/auth/me")
def me():
    return jsonify(agent_schema.dump(current_agent()))
