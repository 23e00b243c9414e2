"""Exact percentiles from the histograms: count the values per bucket, then read, in value
order, only the few values of the buckets that hold the wanted ranks.

Percentiles interpolate linearly between the two closest ranks like PostgreSQL's
`percentile_cont`, with the same floating-point steps. The reads skip to a rank within one
bucket along an index in value order (per agent, channel or day, or overall; a team's agents'
values are sorted after); on PostgreSQL all of a figure's reads go in one statement (LATERAL).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from math import ceil, floor
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    Integer,
    bindparam,
    column,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement

from helpdesk.extensions import db
from helpdesk.models import Agent, TicketFact
from helpdesk.services.metrics import sql as metrics_sql
from helpdesk.services.metrics.buckets import bucket_range
from helpdesk.services.metrics.counts import Group, counts
from helpdesk.services.metrics.histograms import (
    Figure,
    dimension_of,
    shift_of,
    values_in,
)
from helpdesk.services.metrics.periods import Period, following
from helpdesk.services.metrics.sql import day_key, day_of, dialect

FRACTIONS = metrics_sql.FRACTIONS
Distribution = tuple[int, float | None, list[float | None]]  # (count, mean, [p50, p90])


@dataclass(frozen=True)
class Read:
    """`take` values of one group's bucket after skipping `skip`, in value order or (`from_top`,
    when nearer that end) from the largest down; `first`: the first one's position."""

    key: Any
    bucket: int
    skip: int
    take: int
    first: int
    from_top: bool = False


def distribution(figure: Figure, period: Period, group_by: str | None, direct: bool = False
                 ) -> dict[Any, Distribution]:
    """{key: (count, mean, [p50, p90])} of the figure's values in the period, per group.

    `direct`: sort the period's values instead (what a short period costs least with)."""
    if direct:
        found = metrics_sql.sorted_distribution(values_in(figure, period, group_by),
                                                grouped=group_by is not None)
        return {day_key(k): v for k, v in found.items()} if group_by == "day" else found
    found, live = counts(figure, period, group_by, FRACTIONS)
    plans = {key: _plan(group) for key, group in found.items()}
    reads = [_read(key, bucket, positions, live, found[key].sizes[bucket])
             for key, at in plans.items() for bucket, positions in _by_bucket(at)]
    read = _values(figure, period, group_by, reads, live)
    result = {}
    for key, at in plans.items():
        def value(rank: int, key=key, at=at) -> float:
            bucket, position = at[rank]
            first, found_values = read[key, bucket]
            return found_values[position - first]
        group = found[key]
        result[key] = (group.count, group.total / group.count,
                       [_percentile(p, group.count, value) for p in FRACTIONS])
    return result


def _plan(group: Group) -> dict[int, tuple[int, int]]:
    """{rank: (bucket, position in the bucket)} of the ranks the fractions need."""
    at = {}
    for rank in {r for p in FRACTIONS for r in _ranks(p, group.count)}:
        bucket, below = next((bucket, below) for bucket, below, n in group.buckets
                             if below <= rank < below + n)
        at[rank] = (bucket, rank - below)
    return at


def _ranks(p: float, count: int) -> tuple[int, int]:
    return floor(p * (count - 1)), ceil(p * (count - 1))


def _by_bucket(at: dict[int, tuple[int, int]]) -> list[tuple[int, list[int]]]:
    positions: dict[int, list[int]] = defaultdict(list)
    for bucket, position in at.values():
        positions[bucket].append(position)
    return sorted(positions.items())


def _read(key: Any, bucket: int, positions: list[int], live: dict, size: int) -> Read:
    low, high = min(positions), max(positions)
    if live.get((key, bucket)):  # merged with the live values: read the facts from the first
        return Read(key, bucket, 0, high + 1, 0)
    if size - 1 - high < low:  # nearer the top: skip fewer
        return Read(key, bucket, size - 1 - high, high - low + 1, low, from_top=True)
    return Read(key, bucket, low, high - low + 1, low)


def _percentile(p: float, count: int, value) -> float:
    position = p * (count - 1)
    first, second = _ranks(p, count)
    low = value(first)
    if second == first:
        return low
    return low + (position - first) * (value(second) - low)


def _values(figure: Figure, period: Period, group_by: str | None, reads: list[Read],
            live: dict) -> dict[tuple, tuple[int, list[float]]]:
    """{(key, bucket): (first position, the values read from it up, merged with the bucket's
    live values)}."""
    found: dict[tuple, list[float]] = {}
    if dialect() == "postgresql":
        batched = [r for r in reads if r.key is not None or group_by is None]
        for from_top in (False, True):
            found.update(_lateral(figure, period, group_by,
                                  [r for r in batched if r.from_top == from_top]))
    for r in reads:
        if (r.key, r.bucket) not in found:
            where = _where(figure, period, group_by, _target(period, group_by, r))
            found[r.key, r.bucket] = sorted(db.session.execute(
                select(figure.value).where(*where).order_by(_order(figure, r.from_top))
                .offset(r.skip).limit(r.take)).scalars())
    return {(r.key, r.bucket): (r.first, sorted(found[r.key, r.bucket]
                                                + live.get((r.key, r.bucket), [])))
            for r in reads}


def _order(figure: Figure, from_top: bool) -> ColumnElement:
    return figure.value.desc() if from_top else figure.value


def _target(period: Period, group_by: str | None, r: Read) -> dict[str, Any]:
    """What one read needs: its bucket's range of values (a `day` histogram bucket spans
    several of the facts'), and for a day, that day and its span within the period."""
    shift = shift_of(dimension_of(group_by))
    low = bucket_range(r.bucket << shift)[0]
    high = bucket_range(((r.bucket + 1) << shift) - 1)[1]
    target = {"key": r.key, "low": low, "high": high, "day": None, "since": None,
              "until": None}
    if group_by == "day":
        day = datetime.fromisoformat(r.key).replace(tzinfo=UTC)
        target.update(day=day.date(), since=max(day, period.start),
                      until=min(following(day, "day"), period.end))
    return target


def _where(figure: Figure, period: Period, group_by: str | None, t: dict) -> list:
    """Conditions on the facts of one group's bucket (`t`'s entries: values or columns)."""
    conditions = [*figure.where, figure.value >= t["low"], figure.value < t["high"]]
    if group_by == "day":  # along the (day, value) index
        return [*conditions, day_of(figure.moment) == t["day"], figure.moment >= t["since"],
                figure.moment < t["until"]]
    conditions.append(period.has(figure.moment))
    if group_by in ("agent", "channel"):  # along the (key, value) index
        key = TicketFact.assignee_id if group_by == "agent" else TicketFact.channel_id
        conditions.append(key.is_(None) if t["key"] is None else key == t["key"])
    elif group_by == "team":  # each agent's (assignee, value) range, sorted after
        conditions.append(_in_team(t["key"]))
    return conditions


def _in_team(team: Any) -> ColumnElement:
    assignee = TicketFact.assignee_id
    if team is None:  # unassigned, or an agent in no team (or no longer known)
        return or_(assignee.is_(None), assignee.not_in(
            select(Agent.id).where(Agent.team_id.is_not(None)).correlate_except(Agent)))
    # Correlated (on PostgreSQL `team` is the LATERAL targets' column).
    return assignee.in_(select(Agent.id).where(Agent.team_id == team).correlate_except(Agent))


def _lateral(figure: Figure, period: Period, group_by: str | None, reads: list[Read]
             ) -> dict[tuple, list[float]]:
    """Every read (all in one direction) in one statement: the targets, passed as arrays,
    joined LATERAL to their reads (arrays: a few parameters however many, cheap to compile)."""
    if not reads:
        return {}
    targets = [_target(period, group_by, r) for r in reads]
    arrays = {"i": (list(range(len(reads))), Integer),
              "key": ([None if group_by == "day" else r.key for r in reads], Integer),
              "day": ([t["day"] for t in targets], Date),
              "low": ([t["low"] for t in targets], Float),
              "high": ([t["high"] for t in targets], Float),
              "since": ([t["since"] for t in targets], DateTime(timezone=True)),
              "until": ([t["until"] for t in targets], DateTime(timezone=True)),
              "skip": ([r.skip for r in reads], Integer),
              "take": ([r.take for r in reads], Integer)}
    t = func.unnest(*(bindparam(name, values, type_=ARRAY(type_))
                      for name, (values, type_) in arrays.items())).table_valued(
        *(column(name, type_) for name, (_, type_) in arrays.items())).render_derived(name="t")
    inner = (select(figure.value.label("value"))
             .where(*_where(figure, period, group_by, dict(t.c.items())))
             .order_by(_order(figure, reads[0].from_top)).offset(t.c.skip).limit(t.c.take)
             .lateral())
    found: dict[tuple, list[float]] = defaultdict(list)
    for i, value in db.session.execute(select(t.c.i, inner.c.value).select_from(t).join(
            inner, true())):
        found[reads[i].key, reads[i].bucket].append(value)
    for values_read in found.values():
        values_read.sort()
    return {(r.key, r.bucket): found.get((r.key, r.bucket), []) for r in reads}
