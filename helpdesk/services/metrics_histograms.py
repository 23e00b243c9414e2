"""Histograms of resolution and first-response times: values per bucket, per group.

A figure's values (services/metrics_buckets.py puts each in a bucket) are counted per UTC day
(dimension `day`) and per agent or channel and UTC month (`agent`, `channel`) in the
`metric_histograms` roll-up. `counts` gives a period's number and sum of values per bucket
for each group: whole units from the roll-up, partial units at the ends from the facts (or,
when the part of a month outside the period is shorter, the month minus that part), plus the
unsolved tickets' first responses, which have no fact yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    Integer,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement, Select

from helpdesk.extensions import db
from helpdesk.models import Agent, Call, Message, MetricHistogram, Ticket, TicketFact
from helpdesk.models.rollups import NO_KEY
from helpdesk.services import metrics_backlog
from helpdesk.services.metrics_buckets import bucket_of
from helpdesk.services.metrics_parts import joined, keyed
from helpdesk.services.metrics_periods import Period, any_of, split
from helpdesk.services.metrics_sql import (
    day_key,
    day_of,
    dialect,
    earliest,
    key_column,
    month_of,
    seconds_between,
)

DIMENSIONS = ("day", "agent", "channel")


@dataclass(frozen=True)
class Figure:
    """A distribution over the facts: `value` (bucketed in `bucket`) counted by `moment`,
    over the facts meeting `where`; `live` selects (key, value) of what has no fact yet."""

    name: str
    value: Any
    bucket: Any
    moment: Any
    where: tuple
    live: Callable[[Period, str | None], Select] | None = None


def live_first_responses(period: Period, group_by: str | None) -> Select:
    """(key, FRT) of unsolved tickets answered in the period whose response no fact counts."""
    f = TicketFact
    query, _, join_on = keyed(group_by, Ticket.assignee_id, Ticket.channel_id,
                              Ticket.first_response_at,
                              cast(seconds_between(Ticket.first_response_at, _first_contact()),
                                   Float))
    return joined(query.where(
        metrics_backlog.UNSOLVED, period.has(Ticket.first_response_at),
        ~select(f.id).where(f.ticket_id == Ticket.id, f.frt_counted).exists()),
        Ticket, join_on)


def _first_contact() -> ColumnElement:
    message = select(func.min(Message.created_at)).where(
        Message.ticket_id == Ticket.id, Message.direction == "inbound",
        Message.author_type == "customer", Message.internal.is_(False)).scalar_subquery()
    call = select(func.min(Call.started_at)).where(
        Call.ticket_id == Ticket.id, Call.direction == "inbound").scalar_subquery()
    return func.coalesce(earliest(message, call), Ticket.created_at)


_f = TicketFact
RESOLUTION = Figure("resolution_seconds", _f.resolution_seconds, _f.resolution_bucket,
                    _f.solved_at, ())
# FRT by the first response: each ticket once, on the cycle that knew it; unsolved ones live.
FRT = Figure("frt_seconds", _f.first_response_seconds, _f.frt_bucket, _f.first_response_at,
             (_f.frt_counted,), live_first_responses)
FIGURES = (RESOLUTION, FRT)


def dimension_of(group_by: str | None) -> str:
    """The roll-up dimension a grouping reads; the totals read the channels' months (the
    fewest rows for a long period), summed."""
    if group_by == "day":
        return "day"
    return "channel" if group_by in ("channel", None) else "agent"


def histogram_rows(figure: Figure, dimension: str, condition: ColumnElement) -> Select:
    """(figure, dimension, start, key, bucket, n, total) of the facts meeting `condition`."""
    f = TicketFact
    if dimension == "day":
        start, key = day_of(figure.moment), literal(NO_KEY)
    else:
        start = month_of(figure.moment)
        key = func.coalesce(f.assignee_id if dimension == "agent" else f.channel_id, NO_KEY)
    keys = [start, figure.bucket] + ([key] if dimension != "day" else [])
    return (select(literal(figure.name).label("figure"), literal(dimension).label("dimension"),
                   start.label("start"), key.label("key"), figure.bucket.label("bucket"),
                   func.count().label("n"), cast(func.sum(figure.value), Float).label("total"))
            .where(condition, figure.value.is_not(None), *figure.where).group_by(*keys))


def values_in(figure: Figure, period: Period, group_by: str | None) -> Select:
    """(key, value) of every value of the period: the straightforward way, for short ones."""
    f = TicketFact
    facts, _, join_on = keyed(group_by, f.assignee_id, f.channel_id, figure.moment,
                              figure.value.label("value"))
    facts = joined(facts.where(*figure.where, period.has(figure.moment)), f, join_on)
    if figure.live is None:
        return facts
    both = facts.union_all(figure.live(period, group_by)).subquery()
    return select(both.c.key, both.c.value)


@dataclass
class Group:
    """One group's values in a period: how many, their sum, and the buckets near the wanted
    ranks as (bucket, values in lower buckets, values in the bucket)."""

    count: int
    total: float
    buckets: list[tuple[int, int, int]] = field(default_factory=list)


def counts(figure: Figure, period: Period, group_by: str | None, fractions: tuple[float, ...]
           ) -> tuple[dict[Any, Group], dict[tuple, list[float]]]:
    """({key: Group} of the period's values, {(key, bucket): sorted live values}).

    One statement: the period's counts per group and bucket, summed from its parts, and the
    running count per group, keeping only the buckets next to the fractions' ranks."""
    live = _live(figure, period, group_by)
    members = _members(figure, period, group_by, live)
    parts = (union_all(*members) if len(members) > 1 else members[0]).subquery()
    summed = (select(parts.c.key, parts.c.bucket, cast(func.sum(parts.c.n), BigInteger).label("n"),
                     func.sum(parts.c.total).label("total"))
              .group_by(parts.c.key, parts.c.bucket)).subquery()
    cells = select(*summed.c).where(summed.c.n > 0).subquery()
    per_group = {"partition_by": cells.c.key}
    running = (select(
        cells.c.key, cells.c.bucket, cells.c.n,
        (cast(func.sum(cells.c.n).over(**per_group, order_by=cells.c.bucket), BigInteger)
         - cells.c.n).label("below"),
        cast(func.sum(cells.c.n).over(**per_group), BigInteger).label("count"),
        func.sum(cells.c.total).over(**per_group).label("total"))).subquery()
    near = [and_(running.c.below <= rank + 1, running.c.below + running.c.n >= rank)
            for rank in (cast(literal(p), Float) * (running.c.count - 1) for p in fractions)]
    found: dict[Any, Group] = {}
    for key, bucket, n, below, count, total in _normal(group_by, db.session.execute(
            select(running.c.key, running.c.bucket, running.c.n, running.c.below,
                   running.c.count, running.c.total).where(or_(*near)))):
        group = found.setdefault(key, Group(int(count), float(total)))
        group.buckets.append((bucket, int(below), int(n)))
    for group in found.values():
        group.buckets.sort()
    return found, live


def _members(figure: Figure, period: Period, group_by: str | None, live: dict) -> list:
    """Selects of (key, bucket, n, total) that add up to the period's values."""
    dimension = dimension_of(group_by)
    whole, partials = split(period, "day" if dimension == "day" else "month")
    months, inside, outside = [], [], []
    for partial in partials:
        if dimension != "day" and sum(s.seconds for s in partial.outside) < partial.inside.seconds:
            months.append(partial.unit)  # the whole month, less the part outside the period
            outside += partial.outside
        else:
            inside.append(partial.inside)
    h = MetricHistogram
    members = []
    if whole is not None:
        members.append(_stored(figure, group_by, h.start >= whole[0], h.start < whole[1]))
    if months:
        members.append(_stored(figure, group_by, h.start.in_(months)))
    if inside:
        members.append(_counted(figure, group_by, inside, 1))
    if outside:
        members.append(_counted(figure, group_by, outside, -1))
    return members + _live_members(group_by, live)


def _normal(group_by: str | None, rows) -> list:
    return [(day_key(k), *rest) for k, *rest in rows] if group_by == "day" else list(rows)


def _stored(figure: Figure, group_by: str | None, *conditions) -> Select:
    h = MetricHistogram
    key = {"agent": func.nullif(h.key, NO_KEY), "channel": h.key, "team": Agent.team_id,
           "day": h.start}.get(group_by)  # the unassigned are NO_KEY in the roll-up
    query = select(key_column(key), h.bucket.label("bucket"), h.n.label("n"),
                   h.total.label("total")).where(
        h.figure == figure.name, h.dimension == dimension_of(group_by), *conditions)
    return query.outerjoin(Agent, Agent.id == h.key) if group_by == "team" else query


def _counted(figure: Figure, group_by: str | None, spans: list[Period], sign: int) -> Select:
    f = TicketFact
    query, key, join_on = keyed(group_by, f.assignee_id, f.channel_id, figure.moment,
                                figure.bucket.label("bucket"), (sign * func.count()).label("n"),
                                (sign * func.sum(figure.value)).label("total"))
    query = joined(query.where(any_of(spans, figure.moment), figure.value.is_not(None),
                               *figure.where), f, join_on)
    return query.group_by(*([figure.bucket] if key is None else [key, figure.bucket]))


def _live(figure: Figure, period: Period, group_by: str | None) -> dict[tuple, list[float]]:
    """{(key, bucket): sorted values} of what has no fact yet."""
    live: dict[tuple, list[float]] = defaultdict(list)
    if figure.live is not None:
        for key, value in _normal(group_by, db.session.execute(figure.live(period, group_by))):
            if value is not None:
                live[key, bucket_of(value)].append(value)
    for values in live.values():
        values.sort()
    return live


def _live_members(group_by: str | None, live: dict[tuple, list[float]]) -> list[Select]:
    """The live values' counts as selects (one of arrays on PostgreSQL, literal rows else)."""
    if not live:
        return []
    key_type = Date if group_by == "day" else Integer
    columns = {"key": ([date.fromisoformat(k) if group_by == "day" else k
                        for k, _ in live], key_type),
               "bucket": ([b for _, b in live], Integer),
               "n": ([len(values) for values in live.values()], Integer),
               "total": ([sum(values) for values in live.values()], Float)}
    if dialect() == "postgresql":
        rows = func.unnest(*(bindparam(f"live_{name}", values, type_=ARRAY(type_))
                             for name, (values, type_) in columns.items())).table_valued(
            *(column(name, type_) for name, (_, type_) in columns.items())
        ).render_derived(name="live")
        return [select(*rows.c)]
    return [select(*(literal(values[i], type_).label(name)
                     for name, (values, type_) in columns.items()))
            for i in range(len(live))]
