"""`queue.updated`: counting the queue and announcing it to agents, throttled per process."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask, current_app
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import PRIORITIES, QUEUED_STATUSES, Ticket
from helpdesk.outbox import emit, rooms
from helpdesk.services.metrics.sql import serial_scans
from helpdesk.transaction import after_commit

log = logging.getLogger(__name__)


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


def queue_changed_committed() -> None:
    """`queue_changed` for a change already committed (a statement run in autocommit mode)."""
    _queue_throttle(current_app._get_current_object()).request()


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
                # Ended by COMMIT, not by the pool's ROLLBACK: psycopg 3 forgets every
                # statement a connection has prepared when it rolls back (DEALLOCATE ALL),
                # and this connection goes back to the pool the claims draw from.
                db.session.commit()
                cost = time.monotonic() - began
                emit("queue.updated", stats, [rooms.QUEUE, rooms.SUPERVISORS])
        except Exception as exc:  # e.g. its pooled connection was killed: the next change
            log.warning("queue.updated not sent: %s", exc)  # of the queue counts again
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
