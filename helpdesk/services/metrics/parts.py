"""The additive parts of the metrics: counts and sums, per source and group.

Each source (tickets created, solved cycles' facts, calls, survey answers) is declared once, as
a `Source`; the same declaration counts a span of time from the records (`counted`) and builds
the daily roll-up rows (`rollup_rows`, written by services/metrics/rollup.py), so both always
agree. A group's rates and means, and the totals, are derived from the parts in `metrics`.
Percentiles are not additive: see services/metrics/histograms.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, literal, not_, or_, select
from sqlalchemy.sql import ColumnElement, Select

from helpdesk.extensions import db
from helpdesk.models import Agent, Call, MetricRollup, Survey, Ticket, TicketFact
from helpdesk.models.rollups import NO_KEY
from helpdesk.services.metrics import backlog as metrics_backlog
from helpdesk.services.metrics.periods import Period, any_of
from helpdesk.services.metrics.sql import day_of, grouped, key_column

Parts = dict[Any, dict[str, float]]
DIMENSIONS = ("agent", "channel")


@dataclass(frozen=True)
class Source:
    """One table's parts: its rows that meet `where`, counted by `moment`, keyed by agent
    and channel; `parts` gives each part's aggregate (built when asked: config may change)."""

    model: Any
    moment: Any
    agent: Any
    channel: Any
    parts: Callable[[], dict[str, ColumnElement]]
    where: Callable[[], list[ColumnElement]]


def _solved() -> dict[str, ColumnElement]:
    f = TicketFact
    fcr = and_(f.cycle == 1, f.public_replies <= 1, f.reopened.is_(False))
    return {"solved": func.count(), "handle_sum": func.sum(f.handle_seconds),
            "flr": func.count().filter(f.max_level <= 1), "fcr": func.count().filter(fcr),
            "pending_sum": func.sum(f.pending_seconds),
            "sla_met": func.count().filter(f.sla_met.is_(True)), "sla_n": func.count(f.sla_met)}


def _surveys() -> dict[str, ColumnElement]:
    s = Survey
    kinds = {kind: s.kind == kind for kind in ("csat", "ces", "nps")}
    return {"csat_n": func.count().filter(kinds["csat"]),
            "csat_sum": func.sum(s.score).filter(kinds["csat"]),
            "csat_good": func.count().filter(and_(kinds["csat"], s.score >= 4)),
            "ces_n": func.count().filter(kinds["ces"]),
            "ces_sum": func.sum(s.score).filter(kinds["ces"]),
            "nps_n": func.count().filter(kinds["nps"]),
            "promoters": func.count().filter(and_(kinds["nps"], s.score >= 9)),
            "detractors": func.count().filter(and_(kinds["nps"], s.score <= 6))}


# Created tickets, by created_at (auto-replies closed unworked never count).
CREATED = Source(Ticket, Ticket.created_at, Ticket.assignee_id, Ticket.channel_id,
                 lambda: {"created": func.count()},
                 lambda: [not_(metrics_backlog.AUTO_CLOSED)])
# Solved cycles, by the fact's solved_at.
SOLVED = Source(TicketFact, TicketFact.solved_at, TicketFact.assignee_id, TicketFact.channel_id,
                _solved, lambda: [])
# Inbound calls with an outcome, by their start; short abandons are taken off afterwards.
CALLS = Source(Call, Call.started_at, Call.agent_id, Call.channel_id,
               lambda: {"calls": func.count(),
                        "abandoned": func.count().filter(Call.outcome == "abandoned")},
               lambda: [Call.direction == "inbound", Call.outcome.is_not(None)])
# Survey answers, by the answer.
SURVEYS = Source(Survey, Survey.answered_at, Survey.agent_id, Survey.channel_id, _surveys,
                 lambda: [Survey.score.is_not(None)])
SOURCES = (CREATED, SOLVED, CALLS, SURVEYS)
NAMES = tuple(name for source in SOURCES for name in source.parts())


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


def counted(source: Source, spans: list[Period], group_by: str | None) -> Parts:
    """The source's parts over these spans of time, counted from its records."""
    parts = source.parts()
    query, key, join_on = keyed(group_by, source.agent, source.channel, source.moment,
                                *parts.values())
    query = query.where(any_of(spans, source.moment), *source.where())
    return _rows(query, key, join_on, source.model, tuple(parts))


def rollup_rows(source: Source, dimension: str, condition: ColumnElement) -> Select:
    """(day, dimension, key, *parts) of the source's records meeting `condition`, one row per
    UTC day and agent (`dimension` "agent") or channel ("channel")."""
    key = func.coalesce(source.agent if dimension == "agent" else source.channel, NO_KEY)
    day = day_of(source.moment)
    parts = [func.coalesce(aggregate, 0).label(name)
             for name, aggregate in source.parts().items()]
    return (select(day.label("day"), literal(dimension).label("dimension"), key.label("key"),
                   *parts)
            .where(condition, *source.where()).group_by(day, key))


def rolled(days: tuple[date, date], group_by: str | None) -> Parts:
    """The parts of the whole UTC days [first, last), from the daily roll-up."""
    r = MetricRollup
    key = {"agent": r.key, "team": Agent.team_id, "channel": r.key, "day": r.day}.get(group_by)
    query = select(key_column(key), *(func.sum(getattr(r, name)) for name in NAMES)).where(
        r.dimension == ("agent" if group_by in ("agent", "team") else "channel"),
        r.day >= days[0], r.day < days[1]).select_from(r)
    if group_by == "team":
        query = query.outerjoin(Agent, Agent.id == r.key)
    found = {}
    for key_value, *values in db.session.execute(grouped(query, key)):
        if group_by == "agent" and key_value == NO_KEY:
            key_value = None  # unassigned
        found[key_value] = dict(zip(NAMES, values, strict=True))
    return found


def short_abandons(period: Period, group_by: str | None) -> Parts:
    """Inbound calls abandoned before SHORT_ABANDON_SECONDS: taken off both calls and
    abandons (they count nowhere). The wait is the queue time, or, for a caller who hung up
    before reaching the queue (no queue time), the whole call. Few by nature, found through
    their own index."""
    short = current_app.config["SHORT_ABANDON_SECONDS"]
    query, key, join_on = keyed(group_by, Call.agent_id, Call.channel_id, Call.started_at,
                                func.count())
    query = query.where(
        Call.direction == "inbound", Call.outcome == "abandoned",
        or_(Call.wait_seconds < short,
            and_(Call.wait_seconds.is_(None), Call.call_duration < short)),
        period.has(Call.started_at))
    return {k: {"calls": -v["n"], "abandoned": -v["n"]}
            for k, v in _rows(query, key, join_on, Call, ("n",)).items()}
