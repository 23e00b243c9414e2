"""The additive parts of the metrics, per group, in one grouped query per source.

Counts and sums only: a group's rates and means, and the totals (the sum of the groups'
parts), are derived from them in `metrics`. Percentiles are not additive: they come from
`metrics_sql.distribution`, per group and once more over the whole period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import and_, func, not_, select
from sqlalchemy.sql import ColumnElement

from helpdesk.extensions import db
from helpdesk.models import Agent, Call, Survey, Ticket, TicketFact
from helpdesk.services import metrics_backlog
from helpdesk.services.metrics_sql import day_of, grouped, key_column

if TYPE_CHECKING:
    from helpdesk.services.metrics import Period

Parts = dict[Any, dict[str, float]]


def group_key(group_by: str | None, agent: ColumnElement | None, channel: ColumnElement,
              moment: ColumnElement) -> tuple[ColumnElement | None, Any]:
    """The key expression of a figure's rows and the join it needs (for teams)."""
    if group_by == "agent":
        return agent, None
    if group_by == "channel":
        return channel, None
    if group_by == "day":
        return day_of(moment), None
    if group_by == "team":
        return Agent.team_id, agent
    return None, None


def keyed(group_by: str | None, agent, channel, moment, *columns):
    """select(key, *columns) and the key and the join it needs."""
    key, join_on = group_key(group_by, agent, channel, moment)
    return select(key_column(key), *columns), key, join_on


def joined(query, source, join_on):
    query = query.select_from(source)
    return query.outerjoin(Agent, Agent.id == join_on) if join_on is not None else query


def _rows(query, key, join_on, source, names: tuple[str, ...]) -> Parts:
    rows = db.session.execute(grouped(joined(query, source, join_on), key))
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def created(period: Period, group_by: str | None) -> Parts:
    query, key, join_on = keyed(group_by, Ticket.assignee_id, Ticket.channel_id,
                                Ticket.created_at, func.count())
    query = query.where(period.has(Ticket.created_at), not_(metrics_backlog.AUTO_CLOSED))
    return _rows(query, key, join_on, Ticket, ("created",))


SOLVED = ("solved", "handle_sum", "flr", "fcr", "pending_sum", "sla_met", "sla_n")


def solved(period: Period, group_by: str | None) -> Parts:
    f = TicketFact
    fcr = and_(f.cycle == 1, f.public_replies <= 1, f.reopened.is_(False))
    query, key, join_on = keyed(
        group_by, f.assignee_id, f.channel_id, f.solved_at, func.count(),
        func.sum(f.handle_seconds), func.count().filter(f.max_level <= 1),
        func.count().filter(fcr), func.sum(f.pending_seconds),
        func.count().filter(f.sla_met.is_(True)), func.count(f.sla_met))
    query = query.where(period.has(f.solved_at))
    return _rows(query, key, join_on, f, SOLVED)


def calls(period: Period, group_by: str | None) -> Parts:
    """Inbound calls with an outcome; abandons shorter than SHORT_ABANDON_SECONDS count
    nowhere."""
    short = and_(Call.outcome == "abandoned", Call.wait_seconds.is_not(None),
                 Call.wait_seconds < current_app.config["SHORT_ABANDON_SECONDS"])
    query, key, join_on = keyed(group_by, Call.agent_id, Call.channel_id, Call.started_at,
                                func.count(), func.count().filter(Call.outcome == "abandoned"))
    query = query.where(period.has(Call.started_at), Call.direction == "inbound",
                        Call.outcome.is_not(None), not_(short))
    return _rows(query, key, join_on, Call, ("calls", "abandoned"))


SURVEYS = ("csat_n", "csat_sum", "csat_good", "ces_n", "ces_sum", "nps_n", "promoters",
           "detractors")


def surveys(period: Period, group_by: str | None) -> Parts:
    s = Survey
    kinds = {kind: s.kind == kind for kind in ("csat", "ces", "nps")}
    counted = [func.count().filter(kinds["csat"]), func.sum(s.score).filter(kinds["csat"]),
               func.count().filter(and_(kinds["csat"], s.score >= 4)),
               func.count().filter(kinds["ces"]), func.sum(s.score).filter(kinds["ces"]),
               func.count().filter(kinds["nps"]),
               func.count().filter(and_(kinds["nps"], s.score >= 9)),
               func.count().filter(and_(kinds["nps"], s.score <= 6))]
    query, key, join_on = keyed(group_by, s.agent_id, s.channel_id, s.answered_at, *counted)
    query = query.where(period.has(s.answered_at), s.score.is_not(None))
    return _rows(query, key, join_on, s, SURVEYS)


SOURCES = (created, solved, calls, surveys)
