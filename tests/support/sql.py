"""The SQL statements a test's own thread sends to the database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from helpdesk.extensions import db


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """The SQL statements this thread sends to the database inside the block (not those of
    the live server's threads: the queue count a webhook schedules runs on a timer)."""
    seen: list[str] = []
    mine = threading.get_ident()

    def record(_conn, _cursor, statement, *_args) -> None:
        if threading.get_ident() == mine:
            seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
