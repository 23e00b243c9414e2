"""A period's values per group and bucket, from the histograms (metrics/histograms).

Days come from the `day` histograms, the partial days at the ends from the facts. Agents and
channels (and the totals, from the channels) come from months: the whole months inside the
period, or, when fewer rows, the all-time counts less the months outside it; a month the
period covers in part is counted from the facts for that part, or taken whole less the facts
of the rest, whichever holds fewer facts (judged by how much of each part lies between the
first and the last fact). The unsolved tickets' first responses, which have no fact yet, are
added as they are. One statement sums it all and keeps the buckets next to the wanted ranks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
from sqlalchemy.sql import Select

from helpdesk.extensions import db
from helpdesk.models import Agent, MetricHistogram, TicketFact
from helpdesk.models.rollups import EVER, NO_KEY
from helpdesk.services.metrics.buckets import bucket_of
from helpdesk.services.metrics.histograms import (
    Figure,
    dimension_of,
    histogram_bucket,
    shift_of,
)
from helpdesk.services.metrics.parts import joined, keyed
from helpdesk.services.metrics.periods import Period, following, split
from helpdesk.services.metrics.sql import day_key, dialect, key_column


@dataclass
class Group:
    """One group's values in a period: how many, their sum, and the buckets near the wanted
    ranks as (bucket, values in lower buckets, values in the bucket)."""

    count: int
    total: float
    buckets: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def sizes(self) -> dict[int, int]:
        return {bucket: n for bucket, _, n in self.buckets}


# SQLite takes at most 500 SELECTs in one compound statement (SQLITE_MAX_COMPOUND_SELECT):
# more are nested, this many to a level.
COMPOUND_AT_MOST = 400


def _union(members: list[Select]) -> Select:
    """UNION ALL of the members (on SQLite nested by COMPOUND_AT_MOST: a grouped summary
    past METRICS_SORT_UP_TO reads one SELECT per live cell, and 50 agents' FRT buckets were
    'too many terms in compound SELECT', a 500)."""
    if len(members) == 1:
        return members[0]
    if len(members) > COMPOUND_AT_MOST and dialect() != "postgresql":
        chunks = [members[i:i + COMPOUND_AT_MOST]
                  for i in range(0, len(members), COMPOUND_AT_MOST)]
        return _union([select(*_union(chunk).subquery().c) if len(chunk) > 1 else chunk[0]
                       for chunk in chunks])
    return union_all(*members)


def counts(figure: Figure, period: Period, group_by: str | None, fractions: tuple[float, ...]
           ) -> tuple[dict[Any, Group], dict[tuple, list[float]]]:
    """({key: Group} of the period's values, {(key, bucket): sorted live values}).

    One statement: the period's counts per group and bucket, summed from its parts, and the
    running count per group, keeping only the buckets next to the fractions' ranks."""
    live = _live(figure, period, group_by)
    members = _members(figure, period, group_by, live)
    if not members:  # no facts at all, nothing live
        return {}, live
    parts = _union(members).subquery()
    # int4 counts: window sums of them are int8, not the much slower numeric
    summed = (select(parts.c.key, parts.c.bucket, cast(func.sum(parts.c.n), Integer).label("n"),
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
    h = MetricHistogram
    if dimension_of(group_by) == "day":
        whole, partials = split(period, "day")
        members = [] if whole is None else [
            _stored(figure, group_by, 1, h.start >= whole[0], h.start < whole[1])]
        if partials:
            members += [_counted(figure, group_by, p.inside, 1) for p in partials]
        return members + _live_members(group_by, live)
    return _month_members(figure, period, group_by) + _live_members(group_by, live)


def _month_members(figure: Figure, period: Period, group_by: str | None) -> list:
    h = MetricHistogram
    data = _data_span(figure)
    if data is None:
        return []
    whole, partials = split(period, "month")
    months = _months(figure, group_by)
    inside = [m for m in months if whole is not None and whole[0] <= m < whole[1]]
    outside = [m for m in months if not _overlaps(m, period)]
    complement = 1 + len(outside) < len(inside)  # all time, less what is not in the period
    if complement:
        members = [_stored(figure, group_by, 1, h.start == EVER)]
        if outside:
            members.append(_stored(figure, group_by, -1, h.start.in_(outside)))
    else:
        members = [] if whole is None else [
            _stored(figure, group_by, 1, h.start >= whole[0], h.start < whole[1])]
    spans: dict[int, list[Period]] = defaultdict(list)
    units: dict[int, list[date]] = defaultdict(list)
    for partial in partials:
        if _within(partial.outside, data) < _within([partial.inside], data):
            spans[-1] += partial.outside  # the month (counted already, if all time) less...
            if not complement:
                units[1].append(partial.unit)
        else:  # ...or just the part inside (less the whole month, if all time)
            spans[1].append(partial.inside)
            if complement:
                units[-1].append(partial.unit)
    members += [_stored(figure, group_by, sign, h.start.in_(unit_list))
                for sign, unit_list in units.items()]
    return members + [_counted(figure, group_by, span, sign)
                      for sign, span_list in spans.items() for span in span_list]


def _data_span(figure: Figure) -> Period | None:
    """From the first to the last moment of the figure's facts (to judge where facts are)."""
    first, last = db.session.execute(select(func.min(figure.moment), func.max(
        figure.moment)).where(*figure.where)).one()
    return None if first is None else Period(first, last + timedelta(microseconds=1))


def _months(figure: Figure, group_by: str | None) -> list[date]:
    h = MetricHistogram
    return sorted(db.session.execute(select(h.start).distinct().where(
        h.figure == figure.name, h.dimension == dimension_of(group_by),
        h.start != EVER)).scalars())


def _overlaps(month: date, period: Period) -> bool:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return start < period.end and following(start, "month") > period.start


def _within(spans: list[Period], data: Period) -> float:
    """Seconds of `spans` between the first and the last fact."""
    return sum(max(0.0, (min(s.end, data.end) - max(s.start, data.start)).total_seconds())
               for s in spans)


def _normal(group_by: str | None, rows) -> list:
    return [(day_key(k), *rest) for k, *rest in rows] if group_by == "day" else list(rows)


def _stored(figure: Figure, group_by: str | None, sign: int, *conditions) -> Select:
    h = MetricHistogram
    key = {"agent": func.nullif(h.key, NO_KEY), "channel": h.key, "team": Agent.team_id,
           "day": h.start}.get(group_by)  # the unassigned are NO_KEY in the roll-up
    query = select(key_column(key), h.bucket.label("bucket"), (sign * h.n).label("n"),
                   (sign * h.total).label("total")).where(
        h.figure == figure.name, h.dimension == dimension_of(group_by), *conditions)
    return query.outerjoin(Agent, Agent.id == h.key) if group_by == "team" else query


def _counted(figure: Figure, group_by: str | None, span: Period, sign: int) -> Select:
    """From the facts: one span (a range scan of the moment's covering index)."""
    f = TicketFact
    bucket = histogram_bucket(figure, dimension_of(group_by))
    query, key, join_on = keyed(group_by, f.assignee_id, f.channel_id, figure.moment,
                                bucket.label("bucket"), (sign * func.count()).label("n"),
                                (sign * func.sum(figure.value)).label("total"))
    query = joined(query.where(span.has(figure.moment), figure.value.is_not(None),
                               *figure.where), f, join_on)
    return query.group_by(*([bucket] if key is None else [key, bucket]))


def _live(figure: Figure, period: Period, group_by: str | None) -> dict[tuple, list[float]]:
    """{(key, bucket): sorted values} of what has no fact yet."""
    live: dict[tuple, list[float]] = defaultdict(list)
    if figure.live is not None:
        for key, value in _normal(group_by, db.session.execute(figure.live(period, group_by))):
            if value is not None:
                live[key, bucket_of(value) >> shift_of(dimension_of(group_by))].append(value)
    for values in live.values():
        values.sort()
    return live


def _live_members(group_by: str | None, live: dict[tuple, list[float]]) -> list[Select]:
    """The live values' counts as selects (one of arrays on PostgreSQL, literal rows else)."""
    if not live:
        return []
    columns = {"bucket": ([b for _, b in live], Integer),
               "n": ([len(values) for values in live.values()], Integer),
               "total": ([sum(values) for values in live.values()], Float)}
    if group_by is not None:
        keys = [date.fromisoformat(k) if group_by == "day" else k for k, _ in live]
        columns = {"key": (keys, Date if group_by == "day" else Integer), **columns}
    if dialect() == "postgresql":
        rows = func.unnest(*(bindparam(f"live_{name}", values, type_=ARRAY(type_))
                             for name, (values, type_) in columns.items())).table_valued(
            *(column(name, type_) for name, (_, type_) in columns.items())
        ).render_derived(name="live")
        cells = [[rows.c[name] for name in columns]]
    else:
        cells = [[literal(values[i], type_).label(name)
                  for name, (values, type_) in columns.items()] for i in range(len(live))]
    no_key = [] if group_by is not None else [key_column(None)]  # NULL, like the other parts
    return [select(*no_key, *row) for row in cells]
