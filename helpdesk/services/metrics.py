"""Supervisors' metrics (API.md "Metrics"), computed by the database from facts and records.

Each figure counts by its own moment: created tickets by `created_at`; solve figures (AHT,
FLR, FCR, resolution, pending, SLA) by the fact's `solved_at`; FRT by the first response;
calls by their start; surveys by their answer; backlog at the end of the period.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, cast, func, select
from sqlalchemy.sql import ColumnElement, Select

from helpdesk.extensions import db
from helpdesk.models import Agent, Call, Channel, Message, Team, Ticket, TicketFact
from helpdesk.services import metrics_backlog
from helpdesk.services.metrics_parts import SOURCES, joined, keyed
from helpdesk.services.metrics_sql import (
    day_key,
    distribution,
    earliest,
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
# Parts that make a group worth showing (for days, every day of the period is shown).
ACTIVE = ("created", "solved", "backlog", "frt_seconds", "calls", "csat_n", "ces_n", "nps_n")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def has(self, column: ColumnElement) -> ColumnElement:
        return and_(column >= self.start, column < self.end)

    def days(self) -> list[str]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def resolution_values(period: Period, group_by: str | None) -> Select:
    f = TicketFact
    values, _, join_on = keyed(group_by, f.assignee_id, f.channel_id, f.solved_at,
                               f.resolution_seconds.label("value"))
    return joined(values.where(period.has(f.solved_at)), f, join_on)


def frt_values(period: Period, group_by: str | None) -> Select:
    """FRT by the first response: facts of solved tickets, and unsolved tickets live."""
    f = TicketFact
    from_facts, _, join_on = keyed(group_by, f.assignee_id, f.channel_id,
                                   f.first_response_at, f.first_response_seconds.label("value"))
    from_facts = joined(from_facts.where(f.frt_counted,  # the partial index's predicate
                                         period.has(f.first_response_at)), f, join_on)
    live, _, join_on = keyed(group_by, Ticket.assignee_id, Ticket.channel_id,
                             Ticket.first_response_at,
                             cast(seconds_between(Ticket.first_response_at, _first_contact()),
                                  Float).label("value"))  # the facts' type: one ordered union
    live = joined(live.where(
        metrics_backlog.UNSOLVED, period.has(Ticket.first_response_at),
        ~select(f.id).where(f.ticket_id == Ticket.id, f.frt_counted).exists()),
        Ticket, join_on)
    both = from_facts.union_all(live).subquery()
    return select(both.c.key, both.c.value)


def _first_contact() -> ColumnElement:
    message = select(func.min(Message.created_at)).where(
        Message.ticket_id == Ticket.id, Message.direction == "inbound",
        Message.author_type == "customer", Message.internal.is_(False)).scalar_subquery()
    call = select(func.min(Call.started_at)).where(
        Call.ticket_id == Ticket.id, Call.direction == "inbound").scalar_subquery()
    return func.coalesce(earliest(message, call), Ticket.created_at)


DISTRIBUTIONS = {"resolution_seconds": resolution_values, "frt_seconds": frt_values}


def parts(period: Period, group_by: str | None) -> dict[Any, Counter]:
    """{key: additive parts} of every source, in one grouped query each."""
    found: dict[Any, Counter] = defaultdict(Counter)
    for source in SOURCES:
        for key, values in _by_key(group_by, source(period, group_by)).items():
            found[key].update({name: value or 0 for name, value in values.items()})
    return found


def _by_key(group_by: str | None, found: dict) -> dict:
    """Days as `YYYY-MM-DD` whatever the database returns them as."""
    return {day_key(k): v for k, v in found.items()} if group_by == "day" else found


def figures(period: Period, group_by: str | None) -> tuple[dict, dict[Any, dict]]:
    """(totals M, {key: M} for every group with anything to show).

    Additive parts are counted once, per group; the totals add them up. Percentiles
    and the means next to them are computed per group and once over the whole period."""
    found = parts(period, group_by)
    dists = {name: _by_key(group_by, distribution(values(period, group_by),
                                                  grouped=group_by is not None))
             for name, values in DISTRIBUTIONS.items()}
    backlog = metrics_backlog.backlog(period, group_by, found)
    for key, count in backlog.items():
        found[key]["backlog"] = count
    for name, dist in dists.items():
        for key, (count, *_rest) in dist.items():
            found[key][name] = count
    groups = {key: _figures(values, {name: d.get(key) for name, d in dists.items()})
              for key, values in found.items() if _active(values)}
    if group_by is None:
        return groups.get(None) or copy.deepcopy(EMPTY), {}
    total: Counter = Counter()
    for values in found.values():
        total.update(values)
    total["backlog"] = metrics_backlog.total(period, group_by, backlog)
    overall = {name: distribution(values(period, None), grouped=False).get(None)
               for name, values in DISTRIBUTIONS.items()}
    return _figures(total, overall), groups


def _figures(p: Counter, dists: dict) -> dict:
    solved, calls = p["solved"], p["calls"]
    values = {**copy.deepcopy(EMPTY), "tickets_created": p["created"],
              "tickets_solved": solved, "backlog": p["backlog"],
              "abandoned_call_rate": p["abandoned"] / calls if calls else None,
              "sla_compliance": p["sla_met"] / p["sla_n"] if p["sla_n"] else None,
              **_surveys(p)}
    if solved:
        values.update(aht_seconds=p["handle_sum"] / solved, flr_rate=p["flr"] / solved,
                      fcr_rate=p["fcr"] / solved,
                      pending_seconds={"mean": p["pending_sum"] / solved})
    for name, found in dists.items():
        if found is not None:
            _count, mean, (p50, p90) = found
            values[name] = {"mean": mean, "p50": p50, "p90": p90}
    return values


def _surveys(p: Counter) -> dict:
    csat, ces, nps = p["csat_n"], p["ces_n"], p["nps_n"]
    return {
        "csat": {"score": p["csat_good"] / csat if csat else None,
                 "mean": p["csat_sum"] / csat if csat else None, "responses": csat},
        "ces": {"mean": p["ces_sum"] / ces if ces else None, "responses": ces},
        "nps": {"score": 100.0 * (p["promoters"] - p["detractors"]) / nps if nps else None,
                "responses": nps}}


def summary(start: datetime, end: datetime, group_by: str | None) -> dict:
    """`GET /metrics/summary`: totals and, when asked, one entry per group."""
    period = Period(start, end)
    tune_session()
    totals, found = figures(period, group_by)
    groups = _groups(period, group_by, found) if group_by else []
    return {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by,
            "totals": totals, "groups": groups}


def _groups(period: Period, group_by: str, found: dict[Any, dict]) -> list[dict]:
    if group_by == "day":
        keys: list = period.days()
    else:
        keys = sorted(found, key=lambda k: (k is None, k))
    labels = _labels(group_by, [k for k in keys if k is not None])
    return [{"key": key, "label": key if group_by == "day" else labels.get(key),
             **(found.get(key) or copy.deepcopy(EMPTY))} for key in keys]


def _active(p: Counter) -> bool:
    return any(p[name] for name in ACTIVE)


def _labels(group_by: str, keys: list) -> dict:
    model = {"agent": Agent, "channel": Channel, "team": Team}.get(group_by)
    if model is None or not keys:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(keys))).all())

