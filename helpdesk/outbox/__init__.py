"""The outbox: the only place that emits. Every event is `{type, at, data}`.

A transaction stages its ticket and message events (`events`); they are serialized just
before it commits and published after it (`publish`), numbered and kept for catch-up
(`event_log`), to the rooms `rooms` names.
"""

from __future__ import annotations

from flask import Flask

from helpdesk.outbox import event_log, events, rooms
from helpdesk.outbox.publish import (
    AGENTS,
    CHAT,
    Publisher,
    emit,
    emit_many,
    envelope,
    publisher,
    pubsub_channel,
)

__all__ = ["AGENTS", "CHAT", "Publisher", "emit", "emit_many", "envelope", "event_log",
           "events", "init_app", "publisher", "pubsub_channel", "rooms"]


def init_app(app: Flask) -> None:
    """Wire the session hooks that stage, serialize and drop a transaction's events."""
    events.init_app(app)
