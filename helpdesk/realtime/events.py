"""Which rooms hear about what; serialized at commit, emitted after it."""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session

from helpdesk.extensions import db
from helpdesk.models import PRIORITIES, QUEUED_STATUSES, Message, Ticket
from helpdesk.realtime import emit, emit_many
from helpdesk.schemas.resources import message_schema, ticket_schema
from helpdesk.services import metrics_live
from helpdesk.services.metrics_sql import serial_scans
from helpdesk.services.transaction import after_commit, on_rollback

log = logging.getLogger(__name__)
_PENDING = "helpdesk.events.pending"
_ANNOUNCED = "helpdesk.events.announced"


def ticket_rooms(ticket: Ticket) -> list[str]:
    rooms = ["queue", "supervisors"]
    if ticket.assignee_id:
        rooms.append(f"agent:{ticket.assignee_id}")
    return rooms


def message_rooms(ticket: Ticket) -> list[str]:
    rooms = [f"ticket:{ticket.id}", "supervisors"]
    if ticket.assignee_id:
        rooms.append(f"agent:{ticket.assignee_id}")
    else:
        rooms.append("queue")
    return rooms


class PendingEvents:
    """This transaction's ticket and message events, one per object, in first-seen order.

    Serialized once, just before the commit (after one flush), so an object changed several
    times in a transaction (a batch of deliveries on one ticket) is announced once, in its
    committed state, to every room any of its changes addressed; emitted after the commit.
    """

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], list] = {}

    def add(self, kind: str, obj: Any, name: str, rooms: list[str], *, first: bool) -> None:
        item = self.items.get((kind, id(obj)))
        if item is None:
            self.items[(kind, id(obj))] = [name, obj, dict.fromkeys(rooms)]
            return
        if first:  # created in this transaction: announced as created, whatever came next
            item[0] = name
        item[2].update(dict.fromkeys(rooms))

    def prune(self) -> None:
        """Forget objects that are no longer in the database's future: created inside a
        savepoint that rolled back (the session expunged them)."""
        self.items = {key: item for key, item in self.items.items()
                      if inspect(item[1]).persistent}

    def serialize(self) -> list[tuple[str, dict, list[str]]]:
        schemas = {"ticket": ticket_schema, "message": message_schema}
        return [(name, schemas[kind].dump(obj), list(rooms))
                for (kind, _), (name, obj, rooms) in self.items.items()]

    def objects(self) -> list[Any]:
        return [obj for _name, obj, _rooms in self.items.values()]


def _pending() -> PendingEvents:
    pending = db.session.info.get(_PENDING)
    if pending is None:
        pending = db.session.info[_PENDING] = PendingEvents()
    return pending


def ticket_changed(ticket: Ticket, *, created: bool = False) -> None:
    """Announce the ticket (`ticket.created` or `ticket.updated`) once this commits (and
    tell the live metrics that they are due for a refresh)."""
    _pending().add("ticket", ticket, "ticket.created" if created else "ticket.updated",
                   ticket_rooms(ticket), first=created)


def message_created(message: Message, ticket: Ticket, *, updated: bool = False) -> None:
    """Announce the message (`message.created` or `message.updated`) once this commits."""
    _pending().add("message", message, "message.updated" if updated else "message.created",
                   message_rooms(ticket), first=not updated)


@event.listens_for(Session, "before_commit")
def _serialize_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending is None or not pending.items:
        return
    try:
        session.flush()
        pending.prune()
        serialized = pending.serialize()
    except Exception:  # the change itself must still commit; clients refetch
        log.exception("events not serialized; they will not be emitted")
        return
    session.info[_ANNOUNCED] = {id(obj): (obj, data) for obj, (_, data, _r) in
                                zip(pending.objects(), serialized, strict=True)}
    tickets = any(kind == "ticket" for kind, _ in pending.items)
    # First: a job enqueued by this commit (routing) must not announce the ticket's next
    # state before this commit's events are out.
    after_commit(partial(emit_many, serialized, flags=(metrics_live.DIRTY,) if tickets else ()),
                 first=True)


@on_rollback
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def as_announced(ticket: Ticket) -> dict:
    """The ticket's JSON as the last commit announced it (serialized then), so a handler
    answering with the object it just committed does not serialize it twice."""
    obj, data = db.session.info.get(_ANNOUNCED, {}).get(id(ticket), (None, None))
    return data if obj is ticket else ticket_schema.dump(ticket)


def queue_stats() -> dict:
    # By rank, the integer the queue's partial index leads with, so that PostgreSQL may
    # count from that index alone when it judges it cheaper than reading the rows.
    serial_scans()
    rows = db.session.execute(
        select(Ticket.priority_rank, func.count())
        .where(Ticket.assignee_id.is_(None), Ticket.status.in_(QUEUED_STATUSES))
        .group_by(Ticket.priority_rank)).all()
    by_priority = {name: 0 for name in PRIORITIES}
    by_priority.update({PRIORITIES[rank]: count for rank, count in rows})
    return {"size": sum(by_priority.values()), "by_priority": by_priority}


def queue_changed() -> None:
    """The queue moved: agents hear `queue.updated` soon after the commit (coalesced)."""
    after_commit(_queue_throttle(current_app._get_current_object()).request, once=True)


def _queue_throttle(app: Flask) -> QueueStatsThrottle:
    throttle = app.extensions.get("helpdesk.queue_throttle")
    if throttle is None:
        throttle = app.extensions.setdefault("helpdesk.queue_throttle", QueueStatsThrottle(app))
    return throttle


class QueueStatsThrottle:
    """At most one `queue.updated` per interval per process, always with fresh figures.

    Counting the queue costs a scan of its index; a busy ingest changes it hundreds of times
    a second. Changes within the interval share one trailing event computed when it fires.
    One count at a time per process, and the interval grows with what a count costs (at
    most 1/COST_FACTOR of the time), between 0.2 s (small queues) and 10 s (a million queued
    tickets took 0.25-0.5 s to count here: one event every 5-10 s).
    """

    INTERVAL = 0.2
    MAX_INTERVAL = 10.0
    COST_FACTOR = 20

    def __init__(self, app: Flask):
        self.app = app
        self.lock = threading.Lock()
        self.pending = False
        self.running = False
        self.last_sent = 0.0
        self.interval = self.INTERVAL

    def request(self) -> None:
        with self.lock:
            if self.pending:
                return
            self.pending = True
            if self.running:
                return  # the running count reschedules when it is done
            delay = max(0.0, self.last_sent + self.interval - time.monotonic())
        self._schedule(delay)

    def _schedule(self, delay: float) -> None:
        timer = threading.Timer(delay, self._fire)
        timer.daemon = True
        timer.start()

    def _fire(self) -> None:
        with self.lock:
            self.pending = False
            self.running = True
        began = time.monotonic()
        cost = 0.0
        try:
            with self.app.app_context():  # its own session, closed when the context ends
                stats = queue_stats()
                cost = time.monotonic() - began
                emit("queue.updated", stats, ["queue", "supervisors"])
        finally:
            with self.lock:
                self.running = False
                self.last_sent = began
                self.interval = min(self.MAX_INTERVAL,
                                    max(self.INTERVAL, cost * self.COST_FACTOR))
                again = self.pending
                delay = max(0.0, began + self.interval - time.monotonic())
            if again:
                self._schedule(delay)
