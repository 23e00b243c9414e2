"""The Pareto of contact reasons: solved tickets per reason, and the vital few."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select

from helpdesk.extensions import db
from helpdesk.models import TicketFact

VITAL_SHARE = 0.8


def contact_reasons(start: datetime, end: datetime) -> list[dict]:
    """Reasons by solves in the period, largest first (ties by name), with shares.

    `vital_few` marks the shortest prefix whose cumulative share reaches 80%.
    """
    f = TicketFact
    rows = db.session.execute(
        select(f.contact_reason, func.count().label("n"))
        .where(and_(f.solved_at >= start, f.solved_at < end), f.contact_reason.is_not(None))
        .group_by(f.contact_reason)).all()
    rows = sorted(rows, key=lambda row: (-row[1], row[0]))  # same order on every database
    total = sum(count for _, count in rows)
    items, running, vital = [], 0, True
    for reason, count in rows:
        running += count
        items.append({"reason": reason, "count": count, "share": count / total,
                      "cumulative_share": running / total, "vital_few": vital})
        vital = vital and running / total < VITAL_SHARE
    return items
