"""Backlog: tickets not solved at a moment (auto-replies closed unworked never count).

A ticket is in the backlog at T when it was created before T and is not inside one of its
solved spans [solved, reopened). With C = tickets created, S = solves and R = reopens:

    backlog(T) = C(< T) − S(< T) + R(< T)                      (counting forward)
               = unsolved now − C(≥ T) + S(≥ T) − R(≥ T)       (counting back from now)

Both are exact; the one with fewer rows to count is used. Grouped by agent or team, a
ticket counts for its current assignee.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, not_, select
from sqlalchemy.sql import ColumnElement

from helpdesk.extensions import db
from helpdesk.models import Agent, Ticket, TicketFact
from helpdesk.services.metrics.sql import day_key, day_of, grouped, key_column

if TYPE_CHECKING:
    from datetime import datetime

    from helpdesk.services.metrics.periods import Period

UNSOLVED = Ticket.status.in_(("new", "open", "pending"))
AUTO_CLOSED = and_(Ticket.status == "closed", Ticket.solved_at.is_(None))


def backlog(period: Period, group_by: str | None,
            parts: Mapping[Any, Mapping[str, int]] | None = None) -> dict[Any, int]:
    """The backlog at the end of the period (per day: at the end of each day).

    Per day, `parts` may give the tickets created and solved each day (the same counts
    as the summary's), so that only reopens are left to count."""
    if group_by == "day":
        return by_day(period, parts)
    return at(period.end, group_by)


def total(period: Period, group_by: str | None, found: dict[Any, int]) -> int:
    """The period's backlog from `backlog(period, group_by)`: the last day's, or the sum."""
    if group_by == "day":
        return found.get(period.days()[-1], 0)
    return sum(found.values())


def at(moment: datetime, group_by: str | None) -> dict[Any, int]:
    first, last = db.session.execute(
        select(func.min(Ticket.created_at), func.max(Ticket.created_at))).one()
    if first is None:
        return {}
    if moment - first <= last - moment:
        terms = [(1, _tickets(group_by, Ticket.created_at < moment)),
                 (-1, _facts(group_by, TicketFact.solved_at < moment)),
                 (1, _facts(group_by, TicketFact.reopened_at < moment))]
    else:
        terms = [(1, _tickets(group_by, UNSOLVED, include_closed=True)),
                 (-1, _tickets(group_by, Ticket.created_at >= moment)),
                 (1, _facts(group_by, TicketFact.solved_at >= moment)),
                 (-1, _facts(group_by, TicketFact.reopened_at >= moment))]
    return _combine(terms)


def by_day(period: Period, parts: Mapping[Any, Mapping[str, int]] | None = None
           ) -> dict[str, int]:
    """Backlog at the end of each day of the period (or at its end, for the last one)."""
    running = at(period.start, None).get(None, 0)
    if parts is None:
        created = _tickets("day", period.has(Ticket.created_at))
        solved = _facts("day", period.has(TicketFact.solved_at))
    else:
        created = {day: p.get("created", 0) for day, p in parts.items()}
        solved = {day: p.get("solved", 0) for day, p in parts.items()}
    reopened = _facts("day", period.has(TicketFact.reopened_at), moment=TicketFact.reopened_at)
    deltas = _combine([(sign, {day_key(day): n for day, n in counts.items()})
                       for sign, counts in ((1, created), (-1, solved), (1, reopened))])
    result = {}
    for day in period.days():
        running += deltas.get(day, 0)
        result[day] = running
    return result


def _combine(terms: list[tuple[int, dict[Any, int]]]) -> dict[Any, int]:
    total: dict[Any, int] = defaultdict(int)
    for sign, counts in terms:
        for key, count in counts.items():
            total[key] += sign * count
    return dict(total)


def _key(group_by: str | None, moment: ColumnElement, channel: ColumnElement
         ) -> ColumnElement | None:
    if group_by == "agent":
        return Ticket.assignee_id
    if group_by == "team":
        return Agent.team_id
    if group_by == "channel":
        return channel
    return day_of(moment) if group_by == "day" else None


def _tickets(group_by: str | None, condition: ColumnElement,
             include_closed: bool = False) -> dict[Any, int]:
    key = _key(group_by, Ticket.created_at, Ticket.channel_id)
    query = select(key_column(key), func.count()).select_from(Ticket).where(condition)
    if not include_closed:
        query = query.where(not_(AUTO_CLOSED))
    if group_by == "team":
        query = query.outerjoin(Agent, Agent.id == Ticket.assignee_id)
    return dict(db.session.execute(grouped(query, key)).all())


def _facts(group_by: str | None, condition: ColumnElement,
           moment: ColumnElement = TicketFact.solved_at) -> dict[Any, int]:
    key = _key(group_by, moment, TicketFact.channel_id)
    query = select(key_column(key), func.count()).select_from(TicketFact).where(condition)
    if group_by in ("agent", "team"):
        query = query.join(Ticket, Ticket.id == TicketFact.ticket_id)
    if group_by == "team":
        query = query.outerjoin(Agent, Agent.id == Ticket.assignee_id)
    return dict(db.session.execute(grouped(query, key)).all())
