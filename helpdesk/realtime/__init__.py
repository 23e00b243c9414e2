"""Socket.IO: the only place that emits. Every event is `{type, at, data}`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import socketio as socketio_server
from flask import Flask

from helpdesk.extensions import socketio

log = logging.getLogger(__name__)

AGENTS = "/agents"
CHAT = "/chat"


def init_app(app: Flask, *, server: bool) -> None:
    """Bind Socket.IO: a full server in web processes, a write-only emitter elsewhere."""
    url = app.config["REDIS_URL"] or None
    # Built here because Flask-SocketIO only recognizes redis:// URLs, not unix:// sockets.
    manager = socketio_server.RedisManager(url, write_only=not server) if url else None
    options = {"client_manager": manager} if manager else {}
    if server:
        socketio.init_app(app, async_mode=async_mode(app.config["ASYNC_MODE"]),
                          cors_allowed_origins="*", logger=False, engineio_logger=False,
                          **options)
        from helpdesk.realtime import agents  # noqa: F401  (registers the handlers)
    elif manager:
        socketio.init_app(None, **options)
    app.extensions["helpdesk.socket_server"] = server


def async_mode(configured: str) -> str:
    """`auto`: gevent when the process was patched for it (gunicorn -k gevent), else threading."""
    if configured != "auto":
        return configured
    try:
        from gevent import monkey
    except ImportError:
        return "threading"
    return "gevent" if monkey.is_module_patched("socket") else "threading"


def envelope(event_type: str, data: Any) -> dict[str, Any]:
    return {"type": event_type, "at": datetime.now(UTC).isoformat(), "data": data}


def emit(event_type: str, data: Any, rooms: list[str] | str, namespace: str = AGENTS) -> None:
    """Send one event to rooms now; call it after the commit that made `data` true."""
    if not rooms:
        return
    try:
        socketio.emit(event_type, envelope(event_type, data), to=rooms, namespace=namespace)
    except Exception as exc:  # Redis down: clients refetch on reconnect; data is committed
        log.warning("emit %s failed: %s", event_type, exc)
