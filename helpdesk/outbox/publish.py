"""Publishing events to Socket.IO clients through the Redis message queue.

Every process (web, worker, CLI) emits through its app's own write-only publisher, so there
is no global emitter state and an event reaches clients of every web process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import socketio as socketio_server
from flask import current_app

from helpdesk.outbox import event_log
from helpdesk.queues import redis_connection

if TYPE_CHECKING:
    from helpdesk.jobs import Job

log = logging.getLogger(__name__)

AGENTS = "/agents"
CHAT = "/chat"
_PUBLISHER = "helpdesk.socket_publisher"


def pubsub_channel(redis_url: str) -> str:
    """Pub/sub ignores Redis database numbers: name the channel after the database instead,
    so two systems sharing one Redis server (e.g. CI and a benchmark) never hear each other."""
    from redis.connection import parse_url

    return f"helpdesk-socketio-{parse_url(redis_url).get('db', 0)}"


class Publisher(socketio_server.RedisManager):
    """A write-only Redis manager that can publish several events in one round trip.

    Messages are built by the library itself (`emit`); only the final PUBLISH is collected,
    per thread (greenlet under gevent), and sent with the caller's pipeline.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._collecting = threading.local()

    def _publish(self, data: Any) -> Any:
        collected = getattr(self._collecting, "messages", None)
        if collected is None:
            return super()._publish(data)
        collected.append(self.json.dumps(data))
        return None

    def collect(self, events: Iterable[tuple[str, dict[str, Any], list[str], str]]
                ) -> list[str]:
        """The serialized pub/sub messages of these events, not yet published."""
        self._collecting.messages = []
        try:
            for event_type, message, rooms, namespace in events:
                self.emit(event_type, message, namespace=namespace, room=rooms)
            return self._collecting.messages
        finally:
            self._collecting.messages = None


def publisher() -> Publisher:
    app = current_app._get_current_object()
    manager = app.extensions.get(_PUBLISHER)
    if manager is None:
        url = app.config["REDIS_URL"]
        manager = Publisher(url, channel=pubsub_channel(url), write_only=True)
        app.extensions[_PUBLISHER] = manager
    return manager


def envelope(event_type: str, data: Any) -> dict[str, Any]:
    return {"type": event_type, "at": datetime.now(UTC).isoformat(), "data": data}


def emit(event_type: str, data: Any, rooms: list[str] | str, namespace: str = AGENTS) -> None:
    """Send one event to rooms now; call it after the commit that made `data` true.

    Agents' events are numbered (`seq`) and kept for a while, so a client that lost its
    connection can ask for what it missed (`events.since`).
    """
    emit_many([(event_type, data, rooms)], namespace)


def emit_many(events: list[tuple[str, Any, list[str] | str]], namespace: str = AGENTS,
              *, flags: tuple[str, ...] = (), signals: Sequence[Job] = ()) -> None:
    """Send several events, in order, in one Redis round trip (for agents' events a script
    that numbers, logs and publishes them all: event_log.emit_numbered; otherwise one
    pipeline) that also sets `flags` and the pending flags of `signals`, whose jobs are then
    enqueued unless pending (after the events are out); call it after the commit that made
    them true."""
    batch = []
    for event_type, data, rooms in events:
        if rooms:
            rooms = [rooms] if isinstance(rooms, str) else list(rooms)
            message = envelope(event_type, data)
            if namespace == AGENTS:
                message["seq"] = event_log.MARKER  # the script writes the number there
            batch.append((event_type, message, rooms, namespace))
    if not batch:
        for job in signals:
            job.enqueue_unless_pending()
        return
    try:
        client = redis_connection()
        manager = publisher()
        if namespace == AGENTS:
            flagged = event_log.emit_numbered(client, manager.channel, [
                (kind, message, rooms, manager.collect([(kind, message, rooms, namespace)]))
                for kind, message, rooms, namespace in batch], flags,
                [job.pending_key for job in signals])
        else:
            pipe = client.pipeline(transaction=False)
            for payload in manager.collect(batch):
                pipe.publish(manager.channel, payload)
            for flag in flags:
                pipe.set(flag, "1")
            for job in signals:
                job.set_pending(pipe)
            replies = pipe.execute()
            flagged = replies[len(replies) - len(signals):]
    except Exception as exc:  # Redis down: clients refetch on reconnect; data is committed
        log.warning("emit %s failed: %s", ", ".join(sorted({b[0] for b in batch})), exc)
        for job in signals:  # on their own (the sweeper finds the work if Redis is down)
            job.enqueue_unless_pending()
        return
    for job, answer in zip(signals, flagged, strict=True):
        job.enqueue_if_flagged(answer)
