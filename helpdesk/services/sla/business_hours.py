"""Business-hours arithmetic for SLA clocks (pure: no database).

Opening hours are wall-clock times in the calendar's time zone; every interval is turned
into real UTC instants day by day, so DST changes, weekends and holidays come out right.
A business second is a real elapsed second that falls inside an opening interval.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = 24 * 60  # minutes
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HH_MM = re.compile(r"[0-9]{2}:[0-9]{2}")


@dataclass(frozen=True)
class Calendar:
    timezone: str
    hours: dict[int, list[tuple[str, str]]]
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _minutes: dict[int, tuple[tuple[int, int], ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _zone(self.timezone))
        minutes = {day: _parse_day(day, spans) for day, spans in self.hours.items()}
        minutes = {day: spans for day, spans in minutes.items() if spans}
        if not minutes:
            raise ValueError("calendar has no open hours on any weekday")
        object.__setattr__(self, "_minutes", minutes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calendar:
        """Build a calendar from {"timezone", "hours": {"mon": [["09:00", "17:00"]]}, ...}."""
        if not isinstance(data, dict):
            raise ValueError("calendar must be an object")
        if not isinstance(data.get("timezone"), str):
            raise ValueError("calendar.timezone must be an IANA time zone name")
        unknown = sorted(set(data) - {"timezone", "hours", "holidays"})
        if unknown:  # a misspelt "holiday" gave a calendar with no holidays, silently
            raise ValueError(f"calendar: unknown key(s) {', '.join(map(repr, unknown))}; "
                             "use timezone, hours and holidays")
        hours = data.get("hours")
        if not isinstance(hours, dict):
            raise ValueError("calendar.hours must map weekday names to lists of intervals")
        parsed: dict[int, list[tuple[str, str]]] = {}
        for key, spans in hours.items():
            day = _weekday(key)
            if day in parsed:  # "mon" and "monday": one would silently replace the other
                raise ValueError(f"calendar.hours: {key!r} names a weekday given twice")
            parsed[day] = _intervals(key, spans)
        return cls(
            timezone=data["timezone"],
            hours=parsed,
            holidays=frozenset(_holiday(d) for d in _list(data.get("holidays", []), "holidays")),
        )

    def open_intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """Yield the day's opening intervals as (start, end) UTC instants."""
        if day in self.holidays:
            return
        for start, end in self._minutes.get(day.weekday(), ()):
            a, b = self._instant(day, start), self._instant(day, end)
            if b > a:  # an interval swallowed by a DST gap has no length
                yield a, b

    def _instant(self, day: date, minute: int) -> datetime:
        local_day = day + timedelta(days=minute // _DAY)
        wall = time(minute % _DAY // 60, minute % 60)
        return datetime.combine(local_day, wall, tzinfo=self._zone).astimezone(UTC)

    def local_date(self, instant: datetime) -> date:
        """Return the calendar-local date of a UTC instant."""
        return instant.astimezone(self._zone).date()


# --------------------------------------------------------------------------- parsing


@cache
def _known_zones() -> frozenset[str]:
    """The IANA zones, without the host's own (`localtime`) and the placeholder `Factory`
    (`posixrules` and `right/…` are not among them)."""
    return frozenset(available_timezones() - {"localtime", "Factory"})


def check_input(data: dict[str, Any]) -> None:
    """What a calendar given now must also be (raises ValueError), beyond what `from_dict`
    reads: times in ASCII HH:MM, holidays as YYYY-MM-DD, an IANA zone other than the host's
    own. (Python reads more: Arabic-Indic digits, 20261225, 2026-W52-5, `localtime`. Stored
    calendars saved before these rules are still read as they were.)"""
    if data.get("timezone") not in _known_zones():
        raise ValueError(f"unknown time zone {data.get('timezone')!r}")
    for key, spans in (data.get("hours") or {}).items():
        for span in _intervals(key, spans):
            for text in span:
                if not _HH_MM.fullmatch(text):
                    raise ValueError(f"time {text!r} is not HH:MM")
    for value in _list(data.get("holidays", []), "holidays"):
        if not isinstance(value, date) and not _ISO_DATE.fullmatch(str(value)):
            raise ValueError(f"calendar.holidays: {value!r} is not a YYYY-MM-DD date")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        # (OSError: a folder of the zone database, such as "America")
        raise ValueError(f"unknown time zone {name!r}") from exc


def _weekday(key: Any) -> int:
    name = str(key).strip().lower()
    if name in WEEKDAYS:
        return WEEKDAYS.index(name)
    if name in _FULL_NAMES:
        return _FULL_NAMES.index(name)
    raise ValueError(f"unknown weekday {key!r}; use one of {', '.join(WEEKDAYS)}")


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"calendar.{what} must be a list")
    return list(value)


def _intervals(key: Any, spans: Any) -> list[tuple[str, str]]:
    result = []
    for span in _list(spans, f"hours.{key}"):
        if not isinstance(span, (list, tuple)) or len(span) != 2:
            raise ValueError(f"calendar.hours.{key}: each interval must be [start, end]")
        result.append((str(span[0]), str(span[1])))
    return result


def _holiday(value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"calendar.holidays: {value!r} is not a YYYY-MM-DD date") from exc


def _minute_of_day(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(f"time {text!r} is not HH:MM")
    hour, minute = int(parts[0]), int(parts[1])
    if (hour, minute) == (24, 0):
        return _DAY
    if hour > 23 or minute > 59:
        raise ValueError(f"time {text!r} is out of range")
    return hour * 60 + minute


def _parse_day(day: int, spans: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    if not isinstance(day, int) or not 0 <= day <= 6:
        raise ValueError(f"weekday {day!r} must be 0 (Monday) to 6 (Sunday)")
    parsed = sorted((_minute_of_day(a), _minute_of_day(b)) for a, b in spans)
    for start, end in parsed:
        if start >= end:
            raise ValueError(f"{WEEKDAYS[day]}: interval start must be before its end")
    for (_, prev_end), (next_start, _) in pairwise(parsed):
        if next_start < prev_end:
            raise ValueError(f"{WEEKDAYS[day]}: intervals overlap")
    return tuple(parsed)


# --------------------------------------------------------------------------- arithmetic


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


MAX_SPAN = timedelta(days=366 * 100)  # the furthest a business-hours deadline may fall


def add_business_seconds(start: datetime, seconds: float, calendar: Calendar | None) -> datetime:
    """Return the instant `seconds` business seconds after start (UTC; None = wall clock)."""
    cursor = _utc(start, "start")
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if calendar is None or seconds == 0:
        return cursor + timedelta(seconds=seconds)
    remaining = float(seconds)
    day = calendar.local_date(cursor)  # intervals never cross local midnight
    # Each holiday closes at most one open day, and every week has one: after 7 days per
    # holiday (and a week) without an open hour, none will come.
    idle_days, max_idle = 0, 7 * (len(calendar.holidays) + 1)
    last_day = day + MAX_SPAN
    while True:
        progressed = False
        for opens, closes in calendar.open_intervals(day):
            if closes <= cursor:
                continue
            progressed = True
            begin = max(opens, cursor)
            available = (closes - begin).total_seconds()
            if remaining <= available:
                return begin + timedelta(seconds=remaining)
            remaining -= available
            cursor = closes
        idle_days = 0 if progressed else idle_days + 1
        if idle_days > max_idle:
            raise ValueError("calendar has no open business hours ahead")
        if day >= last_day:  # (a minute a week and a ten-year target: past year 9999)
            raise ValueError(f"the target is more than {MAX_SPAN.days // 365} years of the "
                             "calendar's business hours away")
        day += timedelta(days=1)


def business_seconds_between(start: datetime, end: datetime, calendar: Calendar | None) -> float:
    """Return business seconds from start to end (negative when end is before start)."""
    a, b = _utc(start, "start"), _utc(end, "end")
    if b < a:
        return -business_seconds_between(b, a, calendar)
    if calendar is None:
        return (b - a).total_seconds()
    total = 0.0
    day, last = calendar.local_date(a), calendar.local_date(b)
    while day <= last:
        for opens, closes in calendar.open_intervals(day):
            overlap = (min(closes, b) - max(opens, a)).total_seconds()
            if overlap > 0:
                total += overlap
        day += timedelta(days=1)
    return total
