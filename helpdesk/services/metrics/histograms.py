"""Histograms of resolution and first-response times: the figures and their roll-up rows.

A figure's values (services/metrics/buckets.py puts each in a bucket) are counted in the
`metric_histograms` roll-up per UTC day (dimension `day`, no key), and per agent or channel
(`agent`, `channel`) both per UTC month and over all time (`start` EVER). How a period's
counts are put together from these: services/metrics/counts.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, Float, cast, func, literal, select
from sqlalchemy.sql import ColumnElement, Select

from helpdesk.models import Call, Message, Ticket, TicketFact
from helpdesk.models.rollups import EVER, NO_KEY
from helpdesk.services.metrics import backlog as metrics_backlog
from helpdesk.services.metrics.parts import joined, keyed
from helpdesk.services.metrics.periods import Period
from helpdesk.services.metrics.sql import day_of, earliest, month_of, seconds_between

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


# Bits the `day` histograms drop from the facts' buckets: a day holds few values, so buckets
# four times as wide there save rows (a read then skips a little further along the day).
DAY_SHIFT = 2


def shift_of(dimension: str) -> int:
    return DAY_SHIFT if dimension == "day" else 0


def histogram_bucket(figure: Figure, dimension: str) -> ColumnElement:
    """A fact's bucket in the histograms of `dimension`."""
    shift = shift_of(dimension)
    return figure.bucket // (1 << shift) if shift else figure.bucket


def dimension_of(group_by: str | None) -> str:
    """The roll-up dimension a grouping reads; the totals read the channels' months (the
    fewest rows for a long period), summed."""
    if group_by == "day":
        return "day"
    return "channel" if group_by in ("channel", None) else "agent"


def histogram_rows(figure: Figure, dimension: str, condition: ColumnElement,
                   ever: bool = False) -> Select:
    """(figure, dimension, start, key, bucket, n, total) of the facts meeting `condition`:
    per day or month, or (`ever`, agents and channels) over all time."""
    f = TicketFact
    if dimension == "day":
        start, key = day_of(figure.moment), literal(NO_KEY)
    else:
        start = literal(EVER, Date) if ever else month_of(figure.moment)
        key = func.coalesce(f.assignee_id if dimension == "agent" else f.channel_id, NO_KEY)
    bucket = histogram_bucket(figure, dimension)
    keys = ([] if ever else [start]) + [bucket] + ([key] if dimension != "day" else [])
    return (select(literal(figure.name).label("figure"), literal(dimension).label("dimension"),
                   start.label("start"), key.label("key"), bucket.label("bucket"),
                   func.count().label("n"), cast(func.sum(figure.value), Float).label("total"))
            .where(condition, figure.value.is_not(None), *figure.where).group_by(*keys))


def all_histogram_rows(condition: ColumnElement) -> list[Select]:
    """Every histogram row select of the facts meeting `condition`."""
    return [*(histogram_rows(figure, dimension, condition)
              for figure in FIGURES for dimension in DIMENSIONS),
            *(histogram_rows(figure, dimension, condition, ever=True)
              for figure in FIGURES for dimension in ("agent", "channel"))]


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
