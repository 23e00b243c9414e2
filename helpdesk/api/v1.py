"""The `/api/v1` blueprint: every route needs a bearer token unless marked public."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, request
from werkzeug.exceptions import MethodNotAllowed

from helpdesk.api.security import authenticate

bp = Blueprint("v1", __name__, url_prefix="/api/v1")
_PUBLIC: set[str] = set()


def public(view: Callable) -> Callable:
    """Mark a view as reachable without a token (login, chat visitors, the OpenAPI document)."""
    _PUBLIC.add(f"{bp.name}.{view.__name__}")
    return view


@bp.before_request
def _require_token() -> None:
    """Every method, OPTIONS included: only the public routes (the visitors' chat among them,
    whose browsers send CORS preflights without a token) answer it without one."""
    if request.endpoint not in _PUBLIC:
        authenticate()


@bp.after_request
def _not_kept_by_caches(response):
    """What the API answers is someone's data (a customer's export, the metrics): browsers
    and proxies keep none of it (an answer that set its own caching keeps it)."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.before_app_request
def _require_token_before_routing_errors() -> None:
    """Authentication is checked before anything else (API.md): a path under /api/v1 that
    matches no route, or no route for its method, is a 401 without a valid token, and only
    then a 404 or 405 (the blueprint's own check runs for matched routes only). The public
    parts (visitors' chat, login, the OpenAPI document) keep their 404 and 405."""
    error = request.routing_exception
    if (error is None
            or not request.path.startswith(f"{bp.url_prefix}/")
            or request.path.startswith(f"{bp.url_prefix}/chat/")
            or _public_route(error)):
        return
    authenticate()


def _public_route(error: Exception) -> bool:
    if not isinstance(error, MethodNotAllowed) or not error.valid_methods:
        return False
    adapter = current_app.url_map.bind_to_environ(request.environ)
    endpoint, _args = adapter.match(method=error.valid_methods[0])
    return endpoint in _PUBLIC
