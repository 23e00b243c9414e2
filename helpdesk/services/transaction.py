"""One commit per use case, and work (enqueues, emits) that waits for it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from helpdesk.extensions import db

log = logging.getLogger(__name__)
_PENDING = "helpdesk.after_commit"


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction has committed (dropped on rollback)."""
    db.session.info.setdefault(_PENDING, []).append(callback)


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


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
