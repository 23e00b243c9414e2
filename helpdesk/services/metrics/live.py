"""Live figures for supervisors: `metrics.updated` to the `supervisors` room.

Commits that change tickets raise a Redis flag (METRICS_DIRTY, set in the pipeline that emits their
events); every worker's periodic pass (`publish_if_due`) computes today's headline figures
and emits them when the flag is up, at most once per INTERVAL seconds across all workers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import QUEUED_STATUSES, Agent, Ticket
from helpdesk.outbox import emit, rooms
from helpdesk.outbox.events import METRICS_DIRTY
from helpdesk.queues import redis_connection
from helpdesk.schemas.metrics import FiguresSchema
from helpdesk.services.metrics.backlog import UNSOLVED
from helpdesk.services.metrics.periods import Period
from helpdesk.services.metrics.sql import tune_session
from helpdesk.services.metrics.summary import figures
from helpdesk.services.routing.queue_updates import queue_stats

log = logging.getLogger(__name__)
LOCK = "helpdesk:metrics:published"
INTERVAL = 3
AT_RISK_SECONDS = 1800


def publish_if_due(app: Flask) -> bool:
    """Emit `metrics.updated` if something changed and none was sent in the last INTERVAL."""
    with app.app_context():
        client = redis_connection(app)
        if not client.get(METRICS_DIRTY) or not client.set(LOCK, "1", nx=True, ex=INTERVAL):
            return False
        client.delete(METRICS_DIRTY)
        try:
            data = headline()
        finally:
            db.session.remove()
        emit("metrics.updated", data, [rooms.SUPERVISORS])
        return True


def headline(now: datetime | None = None) -> dict:
    """Today's headline figures (the UTC day): every figure of `GET /metrics/summary` for
    today (as its `totals`, the supervisor view's `metric-*` figures among them), and the
    live ones: the queue, the oldest waiting ticket, SLA risk, agents online."""
    now = now or datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tune_session()
    totals, _ = figures(Period(today, today + timedelta(days=1)), None)
    return {"date": today.date().isoformat(), **FiguresSchema().dump(totals),
            "queue": queue_stats(), "oldest_waiting": _oldest_waiting(now), **_sla_risk(now),
            "agents_online": db.session.execute(select(func.count()).where(
                Agent.presence == "online", Agent.active.is_(True))).scalar_one()}


def _oldest_waiting(now: datetime) -> dict | None:
    row = db.session.execute(
        select(Ticket.id, Ticket.created_at)
        .where(Ticket.assignee_id.is_(None), Ticket.status.in_(QUEUED_STATUSES))
        .order_by(Ticket.created_at, Ticket.id).limit(1)).first()
    if row is None:
        return None
    return {"ticket_id": row.id, "since": row.created_at.isoformat(),
            "seconds": (now - row.created_at).total_seconds()}


def _sla_risk(now: datetime) -> dict:
    """Unsolved tickets past a deadline, and those due within AT_RISK_SECONDS."""
    soon = now + timedelta(seconds=AT_RISK_SECONDS)
    breached, at_risk = db.session.execute(
        select(func.count().filter(Ticket.sla_breached.is_(True)),
               func.count().filter(Ticket.sla_breached.is_(False), Ticket.sla_due_at <= soon))
        .where(UNSOLVED)).one()
    return {"sla_breached": breached, "sla_at_risk": at_risk}

