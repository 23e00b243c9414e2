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
    agent = auth.agent_for_token(bearer_token())
    if agent is None:
        raise ApiError(401, "a valid bearer token is required", "unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})
    g.agent = agent


def current_agent() -> Agent:
    return g.agent


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
