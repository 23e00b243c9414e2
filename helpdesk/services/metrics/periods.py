"""Periods of the metrics, and how they split into whole UTC days or months and the rest.

The roll-ups hold whole days (and, for some histograms, whole months): a period reads the
whole units it covers from them and counts the partial units at its ends from the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_
from sqlalchemy.sql import ColumnElement

UNITS = ("day", "month")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def has(self, column: ColumnElement) -> ColumnElement:
        return and_(column >= self.start, column < self.end)

    def days(self) -> list[str]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def any_of(spans: list[Period], column: ColumnElement) -> ColumnElement:
    return or_(*(span.has(column) for span in spans))


@dataclass(frozen=True)
class Partial:
    """A unit the period covers in part: `inside` is its share, `outside` the rest."""

    unit: date
    inside: Period
    outside: list[Period]


def floor(moment: datetime, unit: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if unit == "day" else day.replace(day=1)


def following(start: datetime, unit: str) -> datetime:
    """The start of the next unit; the last moment there is after the calendar's last."""
    try:
        if unit == "day":
            return start + timedelta(days=1)
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    except OverflowError:
        return datetime.max.replace(tzinfo=start.tzinfo)


def split(period: Period, unit: str) -> tuple[tuple[date, date] | None, list[Partial]]:
    """([first, last) starts of the whole units inside the period, or None; the partial units
    at its ends)."""
    first, last = floor(period.start, unit), floor(period.end, unit)
    whole_from = first if first == period.start else following(first, unit)
    whole = (whole_from.date(), last.date()) if whole_from < last else None
    starts = [first] if first < period.start else []
    if last < period.end and (not starts or last != first):
        starts.append(last)
    return whole, [_partial(period, start, unit) for start in starts]


def _partial(period: Period, start: datetime, unit: str) -> Partial:
    end = following(start, unit)
    inside = Period(max(start, period.start), min(end, period.end))
    outside = [span for span in (Period(start, inside.start), Period(inside.end, end))
               if span.start < span.end]
    return Partial(start.date(), inside, outside)
