"""Supervisors' metrics (API.md "Metrics"), computed by the database from facts and records.

Each figure counts by its own moment: created tickets by `created_at`; solve figures (AHT,
FLR, FCR, resolution, pending, SLA) by the fact's `solved_at`; FRT by the first response;
calls by their start; surveys by their answer; backlog at the end of the period.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, not_, select
from sqlalchemy.sql import ColumnElement

from helpdesk.extensions import db
from helpdesk.models import Agent, Call, Channel, Message, Survey, Team, Ticket, TicketFact
from helpdesk.services import metrics_backlog
from helpdesk.services.metrics_sql import (
    day_of,
    distribution,
    earliest,
    grouped,
    key_column,
    percentile_columns,
    ratio,
    seconds_between,
    tune_session,
)

GROUPS = ("agent", "channel", "team", "day")
EMPTY = {
    "tickets_created": 0, "tickets_solved": 0, "aht_seconds": None, "flr_rate": None,
    "fcr_rate": None, "frt_seconds": {"mean": None, "p50": None, "p90": None},
    "resolution_seconds": {"mean": None, "p50": None, "p90": None},
    "pending_seconds": {"mean": None}, "sla_compliance": None, "abandoned_call_rate": None,
    "csat": {"score": None, "mean": None, "responses": 0},
    "ces": {"mean": None, "responses": 0}, "nps": {"score": None, "responses": 0},
    "backlog": 0,
}
COUNTS = ("tickets_created", "tickets_solved", "backlog")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def has(self, column: ColumnElement) -> ColumnElement:
        return and_(column >= self.start, column < self.end)

    def days(self) -> list[str]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


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


def _select(group_by: str | None, agent, channel, moment, *columns):
    key, join_on = group_key(group_by, agent, channel, moment)
    query = select(key_column(key), *columns)
    return query, key, join_on


def _run(query, key, join_on, source) -> list:
    query = query.select_from(source)
    if join_on is not None:
        query = query.outerjoin(Agent, Agent.id == join_on)
    return db.session.execute(grouped(query, key)).all()


def created(period: Period, group_by: str | None) -> dict:
    query, key, join_on = _select(group_by, Ticket.assignee_id, Ticket.channel_id,
                                  Ticket.created_at, func.count())
    query = query.where(period.has(Ticket.created_at), not_(metrics_backlog.AUTO_CLOSED))
    return {row.key: {"tickets_created": row[1]} for row in _run(query, key, join_on, Ticket)}


def solved(period: Period, group_by: str | None) -> dict:
    f = TicketFact
    fcr = and_(f.cycle == 1, f.public_replies <= 1, f.reopened.is_(False))
    in_sql = percentile_columns(f.resolution_seconds) or []
    query, key, join_on = _select(
        group_by, f.assignee_id, f.channel_id, f.solved_at, func.count(),
        func.avg(f.handle_seconds), ratio(f.max_level <= 1), ratio(fcr),
        func.avg(f.pending_seconds), func.count().filter(f.sla_met.is_(True)),
        func.count(f.sla_met), func.avg(f.resolution_seconds), *in_sql)
    query = query.where(period.has(f.solved_at))
    result = {}
    for row in _run(query, key, join_on, f):
        result[row.key] = {
            "tickets_solved": row[1], "aht_seconds": _num(row[2]), "flr_rate": _num(row[3]),
            "fcr_rate": _num(row[4]), "pending_seconds": {"mean": _num(row[5])},
            "sla_compliance": row[6] / row[7] if row[7] else None,
            "resolution_seconds": {"mean": _num(row[8]), "p50": _num(row[9]) if in_sql else None,
                                   "p90": _num(row[10]) if in_sql else None}}
    if not in_sql:
        values, key, join_on = _select(group_by, f.assignee_id, f.channel_id, f.solved_at,
                                       f.resolution_seconds.label("value"))
        values = _joined(values.where(period.has(f.solved_at)), f, join_on)
        _put_distribution(result, "resolution_seconds", distribution(values))
    return result


def _joined(query, source, join_on):
    query = query.select_from(source)
    return query.outerjoin(Agent, Agent.id == join_on) if join_on is not None else query


def _put_distribution(result: dict, name: str, found: dict) -> None:
    for key, (_count, mean, (p50, p90)) in found.items():
        result.setdefault(key, {})[name] = {"mean": mean, "p50": p50, "p90": p90}


def first_response(period: Period, group_by: str | None) -> dict:
    """FRT by the first response: facts of solved tickets, and unsolved tickets live."""
    f = TicketFact
    from_facts, _, join_on = _select(group_by, f.assignee_id, f.channel_id,
                                     f.first_response_at, f.first_response_seconds.label("value"))
    from_facts = _joined(from_facts.where(f.frt_counted,  # the partial index's predicate
                                          period.has(f.first_response_at)), f, join_on)
    live, _, join_on = _select(group_by, Ticket.assignee_id, Ticket.channel_id,
                               Ticket.first_response_at,
                               seconds_between(Ticket.first_response_at,
                                               _first_contact()).label("value"))
    live = _joined(live.where(
        metrics_backlog.UNSOLVED, period.has(Ticket.first_response_at),
        ~select(f.id).where(f.ticket_id == Ticket.id, f.frt_counted).exists()),
        Ticket, join_on)
    both = from_facts.union_all(live).subquery()
    found = distribution(select(both.c.key, both.c.value))
    result: dict = {}
    _put_distribution(result, "frt_seconds", found)
    for key, (count, *_rest) in found.items():
        result[key]["frt_count"] = count
    return result


def _first_contact() -> ColumnElement:
    message = select(func.min(Message.created_at)).where(
        Message.ticket_id == Ticket.id, Message.direction == "inbound",
        Message.author_type == "customer", Message.internal.is_(False)).scalar_subquery()
    call = select(func.min(Call.started_at)).where(
        Call.ticket_id == Ticket.id, Call.direction == "inbound").scalar_subquery()
    return func.coalesce(earliest(message, call), Ticket.created_at)


def calls(period: Period, group_by: str | None) -> dict:
    """Abandoned call rate; abandons shorter than SHORT_ABANDON_SECONDS count nowhere."""
    short = and_(Call.outcome == "abandoned", Call.wait_seconds.is_not(None),
                 Call.wait_seconds < current_app.config["SHORT_ABANDON_SECONDS"])
    query, key, join_on = _select(group_by, Call.agent_id, Call.channel_id, Call.started_at,
                                  func.count(), ratio(Call.outcome == "abandoned"))
    query = query.where(period.has(Call.started_at), Call.direction == "inbound",
                        Call.outcome.is_not(None), not_(short))
    return {row.key: {"abandoned_call_rate": _num(row[2]), "call_count": row[1]}
            for row in _run(query, key, join_on, Call)}


def surveys(period: Period, group_by: str | None) -> dict:
    s = Survey
    kinds = {kind: s.kind == kind for kind in ("csat", "ces", "nps")}
    counted = [func.count().filter(kinds["csat"]), func.avg(s.score).filter(kinds["csat"]),
               func.count().filter(and_(kinds["csat"], s.score >= 4)),
               func.count().filter(kinds["ces"]), func.avg(s.score).filter(kinds["ces"]),
               func.count().filter(kinds["nps"]),
               func.count().filter(and_(kinds["nps"], s.score >= 9)),
               func.count().filter(and_(kinds["nps"], s.score <= 6))]
    query, key, join_on = _select(group_by, s.agent_id, s.channel_id, s.answered_at, *counted)
    query = query.where(period.has(s.answered_at), s.score.is_not(None))
    return {row.key: _survey_figures(*row[1:]) for row in _run(query, key, join_on, s)}


def _survey_figures(csat_n, csat_mean, csat_good, ces_n, ces_mean, nps_n, promoters,
                    detractors) -> dict:
    return {
        "csat": {"score": csat_good / csat_n if csat_n else None, "mean": _num(csat_mean),
                 "responses": csat_n},
        "ces": {"mean": _num(ces_mean), "responses": ces_n},
        "nps": {"score": 100.0 * (promoters - detractors) / nps_n if nps_n else None,
                "responses": nps_n},
        "survey_count": csat_n + ces_n + nps_n}


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


FIGURES = (created, solved, first_response, calls, surveys)


def figures(period: Period, group_by: str | None) -> dict[Any, dict]:
    """{key: M} for every group with anything to show (key None for the totals)."""
    merged: dict[Any, dict] = {}
    for figure in FIGURES:
        for key, values in figure(period, group_by).items():
            _merge(merged.setdefault(key, copy.deepcopy(EMPTY)), values)
    for key, count in metrics_backlog.backlog(period, group_by).items():
        merged.setdefault(key, copy.deepcopy(EMPTY))["backlog"] = count
    return merged


def _merge(target: dict, values: dict) -> None:
    for name, value in values.items():
        if isinstance(value, dict):
            target[name].update(value)
        else:
            target[name] = value


def summary(start: datetime, end: datetime, group_by: str | None) -> dict:
    """`GET /metrics/summary`: totals and, when asked, one entry per group."""
    period = Period(start, end)
    tune_session()
    totals = figures(period, None).get(None) or copy.deepcopy(EMPTY)
    groups = _groups(period, group_by) if group_by else []
    return {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by,
            "totals": _public(totals), "groups": groups}


def _groups(period: Period, group_by: str) -> list[dict]:
    found = figures(period, group_by)
    if group_by == "day":
        keys: list = period.days()
        found = {str(key): value for key, value in found.items()}
    else:
        keys = sorted((k for k, v in found.items() if _active(v)), key=lambda k: (k is None, k))
    labels = _labels(group_by, [k for k in keys if k is not None])
    return [{"key": key, "label": key if group_by == "day" else labels.get(key),
             **_public(found.get(key) or copy.deepcopy(EMPTY))} for key in keys]


def _active(values: dict) -> bool:
    return any(values.get(name) for name in (*COUNTS, "frt_count", "call_count",
                                               "survey_count"))


def _public(values: dict) -> dict:
    return {name: values[name] for name in EMPTY}


def _labels(group_by: str, keys: list) -> dict:
    model = {"agent": Agent, "channel": Channel, "team": Team}.get(group_by)
    if model is None or not keys:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(keys))).all())

