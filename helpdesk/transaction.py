"""One commit per use case, and work (enqueues, emits) that waits for it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from helpdesk.extensions import db

log = logging.getLogger(__name__)
_PENDING = "helpdesk.after_commit"


def after_commit(callback: Callable[[], None], *, once: bool = False,
                 first: bool = False) -> None:
    """Run `callback` once the current transaction has committed (dropped on rollback);
    with `once`, the same callback registered again in this transaction is not repeated;
    with `first`, before everything registered earlier."""
    pending = db.session.info.setdefault(_PENDING, [])
    if once and callback in pending:
        return
    if first:
        pending.insert(0, callback)
    else:
        pending.append(callback)


class _Collected:
    """One after-commit call with every item collected for it in the transaction."""

    def __init__(self, callback: Callable[[list], None]) -> None:
        self.callback = callback
        self.items: list = []

    def __call__(self) -> None:
        self.callback(self.items)


def after_commit_each(callback: Callable[[list], None], item: object) -> None:
    """Collect `item`; once the transaction commits, `callback(items)` runs once with all
    of them, in order (dropped on rollback)."""
    pending = db.session.info.setdefault(_PENDING, [])
    for entry in pending:
        if isinstance(entry, _Collected) and entry.callback is callback:
            entry.items.append(item)
            return
    collected = _Collected(callback)
    collected.items.append(item)
    pending.append(collected)


# A 64-bit key: its space does not overlap the (space, id) locks of ingest and routing.
_LOCK_NAME = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def lock_name(key: str) -> None:
    """Until this transaction ends, it alone holds `key`: two that would each find nothing
    and insert it (a setting's first value, an agent's work session on a ticket) go one
    after the other. PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises every writing
    transaction."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_LOCK_NAME, {"key": key})


def commit() -> None:
    """Commit the session, then run what waited for the commit."""
    db.session.commit()
    run_after_commit()


def run_after_commit() -> None:
    pending = db.session.info.pop(_PENDING, [])
    for callback in pending:
        try:
            callback()
        except Exception:  # an emit or enqueue failing must not undo a committed change
            log.exception("after-commit callback failed")


def listen(target: object, name: str, listener: Callable) -> None:
    """Register a SQLAlchemy event listener once, however many apps are created."""
    if not event.contains(target, name, listener):
        event.listen(target, name, listener)


_ROLLBACK_LISTENERS: list[Callable[[Session], None]] = []


def on_rollback(listener: Callable[[Session], None]) -> None:
    """Call `listener(session)` when a session's transaction rolls back, but not when only a
    savepoint does (`begin_nested`: a caught IntegrityError, say): what the outer
    transaction collected still commits with it. SQLAlchemy's `after_rollback` fires for
    savepoints too."""
    if listener not in _ROLLBACK_LISTENERS:
        _ROLLBACK_LISTENERS.append(listener)


def _outer_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        for listener in _ROLLBACK_LISTENERS:
            listener(session)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def init_app(_app: object) -> None:
    """Wire the session hooks: work waiting for a commit is dropped when it rolls back."""
    listen(Session, "after_soft_rollback", _outer_rollback)
    on_rollback(_drop_pending)
