"""Bearer-token authentication and role checks for every non-public route."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request

from helpdesk.errors import ApiError
from helpdesk.models import Agent
from helpdesk.services import auth


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate() -> None:
    """Before every protected request: 401 unless a valid token names an active agent."""
    found = auth.authenticated(bearer_token())
    if found is None:
        raise ApiError(401, "a valid bearer token is required", "unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})
    g.authenticated = found


def current_agent() -> Agent:
    """The caller, an object of the request's session (made on first use)."""
    agent = g.get("agent")
    if agent is None:
        agent = g.agent = auth.attach(g.authenticated)
    return agent


def current_agent_columns() -> Agent | auth.AgentColumns:
    """The caller's columns (id, email, name, role, level, languages, channels, capacity,
    team_id, active, created_at) without making an object of the session when the token
    cache answered: for a request that reads no more than them (the claim)."""
    return g.authenticated


def requires(role: str) -> Callable:
    """Route decorator: the caller's role must be at least `role` (else 403)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            if not current_agent().has_role(role):
                raise ApiError(403, f"this takes the {role} role", "forbidden")
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper

    return decorator
