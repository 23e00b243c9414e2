"""Supervisors' metrics (API.md "Metrics"), computed by the database from facts and records.

Each figure counts by its own moment: created tickets by `created_at`; solve figures (AHT,
FLR, FCR, resolution, pending, SLA) by the fact's `solved_at`; FRT by the first response;
calls by their start; surveys by their answer; backlog at the end of the period.

Whole UTC days are read from the roll-ups (models/rollups.py, kept in step with the records by
metrics/rollup.py), the partial days at a period's ends are counted from the records. Percentiles
come from the histograms plus a few reads of the facts (metrics/percentiles), equal to
`percentile_cont` over the records.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Agent, Channel, Team
from helpdesk.services.metrics import backlog as metrics_backlog
from helpdesk.services.metrics.histograms import FIGURES
from helpdesk.services.metrics.parts import SOURCES, counted, rolled, short_abandons
from helpdesk.services.metrics.percentiles import distribution
from helpdesk.services.metrics.periods import Period, split
from helpdesk.services.metrics.sql import day_key, tune_session

GROUPS = ("agent", "channel", "team", "day")


def _empty() -> dict:
    """M with no data: zeros and nulls (a fresh dict each time: callers fill it in)."""
    return {
        "tickets_created": 0, "tickets_solved": 0, "aht_seconds": None, "flr_rate": None,
        "fcr_rate": None, "frt_seconds": {"mean": None, "p50": None, "p90": None},
        "resolution_seconds": {"mean": None, "p50": None, "p90": None},
        "pending_seconds": {"mean": None}, "sla_compliance": None,
        "abandoned_call_rate": None, "csat": {"score": None, "mean": None, "responses": 0},
        "ces": {"mean": None, "responses": 0}, "nps": {"score": None, "responses": 0},
        "backlog": 0,
    }


EMPTY = _empty()
# Parts that make a group worth showing (for days, every day of the period is shown).
ACTIVE = ("created", "solved", "backlog", "frt_seconds", "calls", "csat_n", "ces_n", "nps_n")


def parts(period: Period, group_by: str | None) -> dict[Any, Counter]:
    """{key: additive parts}: whole days from the daily roll-up, the partial days at the
    ends counted from the records, less the short abandons."""
    days, partials = split(period, "day")
    pieces = [rolled(days, group_by)] if days else []
    if partials:
        spans = [partial.inside for partial in partials]
        pieces += [counted(source, spans, group_by) for source in SOURCES]
    pieces.append(short_abandons(period, group_by))
    found: dict[Any, Counter] = defaultdict(Counter)
    for piece in pieces:
        for key, values in _by_key(group_by, piece).items():
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
    size = max(sum(p["solved"] for p in found.values()),  # about each figure's values
               sum(p["created"] for p in found.values()))
    direct = size <= current_app.config["METRICS_SORT_UP_TO"]
    dists = {figure.name: distribution(figure, period, group_by, direct) for figure in FIGURES}
    backlog = metrics_backlog.backlog(period, group_by, found)
    for key, count in backlog.items():
        found[key]["backlog"] = count
    for name, dist in dists.items():
        for key, (count, *_rest) in dist.items():
            found[key][name] = count
    groups = {key: _figures(values, {name: d.get(key) for name, d in dists.items()})
              for key, values in found.items() if _active(values)}
    if group_by is None:
        return groups.get(None) or _empty(), {}
    total: Counter = Counter()
    for values in found.values():
        total.update(values)
    total["backlog"] = metrics_backlog.total(period, group_by, backlog)
    overall = {figure.name: distribution(figure, period, None, direct).get(None)
               for figure in FIGURES}
    return _figures(total, overall), groups


def _figures(p: Counter, dists: dict) -> dict:
    solved, calls = p["solved"], p["calls"]
    values = {**_empty(), "tickets_created": p["created"],
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
    return {"from_": start, "to": end, "group_by": group_by, "totals": totals,
            "groups": groups}


def _groups(period: Period, group_by: str, found: dict[Any, dict]) -> list[dict]:
    if group_by == "day":
        keys: list = period.days()
    else:
        keys = sorted(found, key=lambda k: (k is None, k))
    labels = _labels(group_by, [k for k in keys if k is not None])
    return [{"key": key, "label": key if group_by == "day" else labels.get(key),
             **(found.get(key) or _empty())} for key in keys]


def _active(p: Counter) -> bool:
    return any(p[name] for name in ACTIVE)


def _labels(group_by: str, keys: list) -> dict:
    model = {"agent": Agent, "channel": Channel, "team": Team}.get(group_by)
    if model is None or not keys:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(keys))).all())

