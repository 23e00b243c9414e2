"""Socket.IO handlers: the `/agents` and `/chat` namespaces (a peer of `api/`).

Web processes run the Socket.IO server here; emitting lives in `helpdesk.outbox`.
"""

from __future__ import annotations

import logging
import time

import socketio as socketio_server
from flask import Flask, request
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from helpdesk.errors import dependency_down, error_body
from helpdesk.extensions import db, socketio
from helpdesk.outbox import pubsub_channel

log = logging.getLogger(__name__)


def init_app(app: Flask, *, server: bool) -> None:
    """Bind the Socket.IO server and its handlers (web processes only)."""
    url = app.config["REDIS_URL"] or None
    if not server:
        return
    # Built here because Flask-SocketIO only recognizes redis:// URLs, not unix:// sockets.
    options = {"client_manager": socketio_server.RedisManager(url, channel=pubsub_channel(url))
               } if url else {}
    socketio.init_app(app, async_mode=async_mode(app.config["ASYNC_MODE"]),
                      cors_allowed_origins="*", logger=False, engineio_logger=False, **options)
    if url:
        # Listen to the message queue from the start, not from the first connection
        # (python-socketio's default): what was published while the first client of a new
        # process connected (its `message.created`, a revocation closing it) was lost.
        server = socketio.server
        if not server.manager_initialized:
            server.manager_initialized = True
            server.manager.initialize()
    from helpdesk.realtime import agents, chat  # noqa: F401  (registers the handlers)


def async_mode(configured: str) -> str:
    """`auto`: gevent when the process was patched for it (gunicorn -k gevent), else threading."""
    if configured != "auto":
        return configured
    try:
        from gevent import monkey
    except ImportError:
        return "threading"
    return "gevent" if monkey.is_module_patched("socket") else "threading"


def connect_sent_by_the_client() -> bool:
    """Whether a `connect` handler runs for an event a connected client named `connect`.

    python-socketio hands a client's event named `connect` or `disconnect` to those handlers
    like any other (only its clients refuse to send them): a visitor could join another
    session's room, an agent connect again with another token. The server's own call passes
    the connection's WSGI environ first; a client's event passes what the client sent."""
    args = (request.event or {}).get("args") or ()
    return not args or args[0] is not request.environ


def disconnect_sent_by_the_client() -> bool:
    """Whether a `disconnect` handler runs for an event a connected client named so: the
    socket closed its own records and stayed connected, out of reach of a revocation. While
    the server disconnects a socket, the socket no longer counts as connected."""
    return socketio.server.manager.is_connected(request.sid, request.namespace)


TYPING_INTERVAL_SECONDS = 1.0  # the console sends one every 2 s while its agent types
_typing_relayed: dict[tuple[str, int | None], float] = {}


def typing_too_soon(ticket_id: int | None = None) -> bool:
    """Whether this connection's last `typing` on the ticket was relayed less than a second
    ago: then this one is acknowledged and not relayed (each was an event in every
    listener's numbered log, a database read or write, and a visitor's loop could push the
    agents' real events out of the catch-up log within seconds)."""
    now, key = time.monotonic(), (request.sid, ticket_id)
    last = _typing_relayed.get(key)
    if last is not None and now - last < TYPING_INTERVAL_SECONDS:
        return True
    if len(_typing_relayed) > 10_000:  # (closed connections' keys, forgotten in bulk)
        for stale in [k for k, at in list(_typing_relayed.items())
                      if now - at >= TYPING_INTERVAL_SECONDS]:
            _typing_relayed.pop(stale, None)
    _typing_relayed[key] = now
    return False


@socketio.on_error_default
def event_failed(exc: Exception) -> dict | bool:
    """A client's event whose handler failed (the database or Redis not answering, a
    deadlock, a bug) is answered like the REST API would (its acknowledgement, if it asked
    for one, is an error to retry on), the transaction is let go, and the process logs it:
    the client was left without an answer, and the handler's thread died with the error."""
    try:
        db.session.rollback()
    except Exception:  # (a connection gone for good: the pool replaces it)
        pass
    event = (request.event or {}).get("message")
    if event == "connect":
        # Refused: a connection is let in only by a connect handler that finished (a value
        # other than False returned here would accept it half-authenticated).
        log.warning("socket connect failed, refused: %s", type(exc).__name__)
        return False
    if dependency_down(exc) or isinstance(exc, PoolTimeoutError):
        log.warning("socket event %s: a dependency is not answering (%s)", event,
                    type(getattr(exc, "orig", None) or exc).__name__)
        return error_body("unavailable", "not answering; retry")
    log.exception("socket event %s failed", event)
    return error_body("internal_error", "internal server error")
