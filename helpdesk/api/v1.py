"""The `/api/v1` blueprint: every route needs a bearer token unless marked public."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, request

from helpdesk.api.security import authenticate

bp = Blueprint("v1", __name__, url_prefix="/api/v1")
_PUBLIC: set[str] = set()


def public(view: Callable) -> Callable:
    """Mark a view as reachable without a token (login, chat visitors, the OpenAPI document)."""
    _PUBLIC.add(f"{bp.name}.{view.__name__}")
    return view


@bp.before_request
def _require_token() -> None:
    if request.endpoint not in _PUBLIC and request.method != "OPTIONS":
        authenticate()
