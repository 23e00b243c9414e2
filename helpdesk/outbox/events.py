"""A transaction's ticket and message events: staged as it runs, serialized at its commit,
emitted after it (to the rooms `rooms` names)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from marshmallow import Schema
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import Message, Ticket
from helpdesk.outbox import rooms
from helpdesk.outbox.publish import emit_many
from helpdesk.schemas.resources import message_schema, ticket_schema
from helpdesk.transaction import after_commit, listen, on_rollback

log = logging.getLogger(__name__)
_PENDING = "helpdesk.events.pending"
_ANNOUNCED = "helpdesk.events.announced"
# Raised in the pipeline that emits a commit's ticket events: the live metrics are due for a
# refresh (services/metrics/live.py reads and clears it).
METRICS_DIRTY = "helpdesk:metrics:dirty"
# Message events carry at most this many characters of `text` and of `html`, flagged
# `truncated`: a 5 MiB email is not pushed whole to every agent's socket nor kept whole in
# the event log; clients fetch the full message over REST (GET /tickets/<id>).
PREVIEW_CHARS = 16 * 1024


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
        dump = {"ticket": ticket_schema.dump, "message": message_event}
        return [(name, dump[kind](obj), list(rooms))
                for (kind, _), (name, obj, rooms) in self.items.items()]

    def objects(self) -> list[Any]:
        return [obj for _name, obj, _rooms in self.items.values()]


def message_event(message: Message, schema: Schema = message_schema) -> dict:
    """The message's REST resource with `text` and `html` cut to PREVIEW_CHARS, and
    `"truncated": true` when either was cut (a message that fits is its resource as is);
    the agents' view unless `schema` says otherwise."""
    return bounded(schema.dump(message))


def bounded(data: dict) -> dict:
    """A serialized message as events carry it (see PREVIEW_CHARS)."""
    truncated = False
    for field in ("text", "html"):
        value = data.get(field)
        if isinstance(value, str) and len(value) > PREVIEW_CHARS:
            data[field], truncated = value[:PREVIEW_CHARS], True
    if truncated:
        data["truncated"] = True
    return data


def _pending() -> PendingEvents:
    pending = db.session.info.get(_PENDING)
    if pending is None:
        pending = db.session.info[_PENDING] = PendingEvents()
    return pending


def ticket_changed(ticket: Ticket, *, created: bool = False) -> None:
    """Announce the ticket (`ticket.created` or `ticket.updated`) once this commits (and
    tell the live metrics that they are due for a refresh)."""
    _pending().add("ticket", ticket, "ticket.created" if created else "ticket.updated",
                   rooms.for_ticket(ticket), first=created)


def message_created(message: Message, ticket: Ticket, *, updated: bool = False) -> None:
    """Announce the message (`message.created` or `message.updated`) once this commits."""
    _pending().add("message", message, "message.updated" if updated else "message.created",
                   rooms.for_message(ticket), first=not updated)


def _serialize_pending(session: Session) -> None:
    if session.in_nested_transaction():
        # SQLAlchemy fires `before_commit` for a savepoint too: the events wait for the
        # transaction's own commit (serialized here, they went out twice, the older last).
        return
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
    after_commit(partial(_emit_committed, serialized, (METRICS_DIRTY,) if tickets else ()),
                 first=True)


def _emit_committed(serialized: list, flags: tuple[str, ...]) -> None:
    """The commit's events, with the jobs it asked to enqueue unless pending (their flags
    ride in the events' pipeline: one Redis round trip less per commit)."""
    emit_many(serialized, flags=flags, signals=jobs.take_signals())


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def as_announced(ticket: Ticket) -> dict:
    """The ticket's JSON as the last commit announced it (serialized then), so a handler
    answering with the object it just committed does not serialize it twice."""
    obj, data = db.session.info.get(_ANNOUNCED, {}).get(id(ticket), (None, None))
    return data if obj is ticket else ticket_schema.dump(ticket)


def init_app(_app: object) -> None:
    """Wire the session hooks: events are serialized just before a commit, emitted after
    it, and dropped when the transaction rolls back."""
    listen(Session, "before_commit", _serialize_pending)
    on_rollback(_drop_pending)
