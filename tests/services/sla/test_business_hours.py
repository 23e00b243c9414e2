from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from helpdesk.services.sla.business_hours import (
    Calendar,
    add_business_seconds,
    business_seconds_between,
)

HOUR = 3600.0
MADRID = ZoneInfo("Europe/Madrid")
WEEKDAYS_9_17 = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def calendar(tz: str = "UTC", hours=None, holidays=()) -> Calendar:
    return Calendar.from_dict(
        {"timezone": tz, "hours": hours or WEEKDAYS_9_17, "holidays": list(holidays)}
    )


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def madrid(*args) -> datetime:
    return datetime(*args, tzinfo=MADRID)


def test_from_dict_parses_hours_and_holidays():
    cal = calendar("Europe/Madrid", holidays=["2026-12-25"])
    assert cal.timezone == "Europe/Madrid"
    assert cal.hours[0] == [("09:00", "17:00")]
    assert 5 not in cal.hours and 6 not in cal.hours
    assert cal.holidays == frozenset({date(2026, 12, 25)})


def test_friday_afternoon_rolls_over_the_weekend():
    # 2026-05-01 is a Friday.
    result = add_business_seconds(utc(2026, 5, 1, 16), 2 * HOUR, calendar())
    assert result == utc(2026, 5, 4, 10)
    assert result.tzinfo == UTC


def test_deadline_at_closing_time_stays_on_that_day():
    assert add_business_seconds(utc(2026, 5, 1, 16), HOUR, calendar()) == utc(2026, 5, 1, 17)


def test_holiday_is_skipped():
    # 2026-12-24 is a Thursday, 2026-12-25 a Friday holiday.
    cal = calendar(holidays=["2026-12-25"])
    assert add_business_seconds(utc(2026, 12, 24, 16), 2 * HOUR, cal) == utc(2026, 12, 28, 10)
    assert business_seconds_between(utc(2026, 12, 24, 9), utc(2026, 12, 28, 17), cal) == 16 * HOUR


def test_start_on_saturday_starts_the_clock_on_monday_opening():
    # 2026-05-02 is a Saturday.
    assert add_business_seconds(utc(2026, 5, 2, 11), HOUR, calendar()) == utc(2026, 5, 4, 10)


def test_start_before_opening_and_after_closing():
    cal = calendar()
    assert add_business_seconds(utc(2026, 5, 4, 7), 1800, cal) == utc(2026, 5, 4, 9, 30)
    assert add_business_seconds(utc(2026, 5, 4, 20), 1800, cal) == utc(2026, 5, 5, 9, 30)


def test_several_intervals_per_day():
    cal = calendar(hours={"mon": [["14:00", "18:00"], ["09:00", "13:00"]]})
    monday = utc(2026, 5, 4, 12)
    assert add_business_seconds(monday, 2 * HOUR, cal) == utc(2026, 5, 4, 15)
    assert add_business_seconds(monday, 6 * HOUR, cal) == utc(2026, 5, 11, 10)
    assert business_seconds_between(utc(2026, 5, 4, 0), utc(2026, 5, 5, 0), cal) == 8 * HOUR


def test_local_hours_in_madrid_across_spring_dst_change():
    # Clocks go from CET (+1) to CEST (+2) on Sunday 2026-03-29.
    cal = calendar("Europe/Madrid")
    start = madrid(2026, 3, 27, 16)
    result = add_business_seconds(start, 2 * HOUR, cal)
    assert result == madrid(2026, 3, 30, 10)
    assert result == utc(2026, 3, 30, 8)
    week = business_seconds_between(madrid(2026, 3, 23, 0), madrid(2026, 3, 30, 0), cal)
    assert week == 40 * HOUR
    dst_week = business_seconds_between(madrid(2026, 3, 27, 0), madrid(2026, 4, 3, 0), cal)
    assert dst_week == 40 * HOUR


def test_local_hours_in_madrid_across_autumn_dst_change():
    # Clocks go from CEST (+2) back to CET (+1) on Sunday 2026-10-25.
    cal = calendar("Europe/Madrid")
    assert add_business_seconds(madrid(2026, 10, 23, 16), 2 * HOUR, cal) == utc(2026, 10, 26, 9)


def test_round_the_clock_calendar_counts_real_seconds_over_dst():
    every_day = {
        day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    cal = calendar("Europe/Madrid", hours=every_day)
    start = madrid(2026, 3, 28, 12)
    result = add_business_seconds(start, 24 * HOUR, cal)
    assert result == start.astimezone(UTC) + timedelta(hours=24)
    assert result.astimezone(MADRID).hour == 13  # the lost hour is not business time
    sunday = business_seconds_between(madrid(2026, 3, 29, 0), madrid(2026, 3, 30, 0), cal)
    assert sunday == 23 * HOUR


@pytest.mark.parametrize("seconds", [1, 1800, 2 * HOUR, 8 * HOUR, 11.5 * HOUR, 100 * HOUR])
@pytest.mark.parametrize(
    "start",
    [madrid(2026, 3, 27, 16, 30), madrid(2026, 3, 28, 10), madrid(2026, 12, 24, 8, 15)],
)
def test_between_is_the_inverse_of_add(start, seconds):
    cal = calendar("Europe/Madrid", holidays=["2026-12-25"])
    end = add_business_seconds(start, seconds, cal)
    assert business_seconds_between(start, end, cal) == pytest.approx(seconds)


def test_between_is_signed_and_zero_outside_hours():
    cal = calendar()
    friday, monday = utc(2026, 5, 1, 16), utc(2026, 5, 4, 10)
    assert business_seconds_between(friday, monday, cal) == 2 * HOUR
    assert business_seconds_between(monday, friday, cal) == -2 * HOUR
    assert business_seconds_between(utc(2026, 5, 2, 8), utc(2026, 5, 3, 20), cal) == 0


def test_no_calendar_means_wall_clock():
    start = datetime(2026, 5, 2, 11, tzinfo=MADRID)
    assert add_business_seconds(start, 90, None) == start + timedelta(seconds=90)
    assert add_business_seconds(start, 90, None).tzinfo == UTC
    assert business_seconds_between(start, start + timedelta(days=2), None) == 48 * HOUR


def test_zero_seconds_returns_start():
    start = utc(2026, 5, 2, 11)
    assert add_business_seconds(start, 0, calendar()) == start


def test_naive_datetimes_and_negative_seconds_are_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_seconds(datetime(2026, 5, 1, 16), HOUR, calendar())
    with pytest.raises(ValueError, match="negative"):
        add_business_seconds(utc(2026, 5, 1, 16), -1, calendar())


def test_long_run_of_holidays_still_terminates():
    holidays = [date(2026, 6, 1) + timedelta(days=i) for i in range(30)]
    cal = calendar(holidays=holidays)
    assert add_business_seconds(utc(2026, 5, 29, 16), 2 * HOUR, cal) == utc(2026, 7, 1, 10)


def test_holidays_on_the_only_open_days_still_find_the_next_open_hour():
    """A weekend-only calendar whose next weekend is a holiday: the search gave up after
    holidays + 8 days without an open hour (10 here), and a ticket's deadline failed."""
    weekends = {"sat": [["09:00", "17:00"]], "sun": [["09:00", "17:00"]]}
    cal = calendar(hours=weekends, holidays=[date(2026, 12, 26), date(2026, 12, 27)])
    # Sunday 20 December after closing: the next open hour is Saturday 2 January.
    assert add_business_seconds(utc(2026, 12, 20, 18), HOUR, cal) == utc(2027, 1, 2, 10)
    mondays = calendar(hours={"mon": [["09:00", "17:00"]]}, holidays=[date(2026, 12, 28)])
    assert add_business_seconds(utc(2026, 12, 21, 18), HOUR, mondays) == utc(2027, 1, 4, 10)


def test_a_target_beyond_reach_is_refused_not_an_overflow():
    minute_a_week = calendar(hours={"mon": [["09:00", "09:01"]]})
    with pytest.raises(ValueError, match="years"):
        add_business_seconds(utc(2026, 12, 7, 8), 10 * 365 * 24 * HOUR, minute_a_week)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"timezone": "Mars/Olympus", "hours": WEEKDAYS_9_17}, "time zone"),
        ({"timezone": "America", "hours": WEEKDAYS_9_17}, "time zone"),  # a folder: OSError
        ({"hours": WEEKDAYS_9_17}, "timezone"),
        ({"timezone": "UTC", "hours": {}}, "no open hours"),
        ({"timezone": "UTC", "hours": {"mon": []}}, "no open hours"),
        ({"timezone": "UTC", "hours": {"funday": [["09:00", "17:00"]]}}, "weekday"),
        ({"timezone": "UTC", "hours": {"mon": [["9am", "17:00"]]}}, "HH:MM"),
        ({"timezone": "UTC", "hours": {"mon": [["09:00", "25:00"]]}}, "out of range"),
        ({"timezone": "UTC", "hours": {"mon": [["17:00", "09:00"]]}}, "before its end"),
        ({"timezone": "UTC", "hours": {"mon": [["09:00"]]}}, r"\[start, end\]"),
        (
            {"timezone": "UTC", "hours": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}},
            "overlap",
        ),
        ({"timezone": "UTC", "hours": WEEKDAYS_9_17, "holidays": ["25/12/2026"]}, "YYYY-MM-DD"),
        ({"timezone": "UTC", "hours": WEEKDAYS_9_17, "holidays": "2026-12-25"}, "list"),
    ],
)
def test_from_dict_rejects_bad_input(data, message):
    with pytest.raises(ValueError, match=message):
        Calendar.from_dict(data)


@pytest.mark.parametrize(
    "data, message",
    [  # What Python reads but the calendar's own rules do not say (found by fuzzing):
        ({"timezone": "UTC", "hours": {"mon": [["٠٩:٠٠", "17:00"]]}}, "HH:MM"),
        ({"timezone": "UTC", "hours": WEEKDAYS_9_17, "holidays": ["20261225"]}, "YYYY-MM-DD"),
        ({"timezone": "UTC", "hours": WEEKDAYS_9_17, "holidays": ["2026-W52-5"]}, "YYYY-MM-DD"),
        ({"timezone": "Factory", "hours": WEEKDAYS_9_17}, "time zone"),
    ],
)
def test_a_calendar_given_now_keeps_to_its_rules_while_a_stored_one_is_still_read(data, message):
    """A policy saved before these rules keeps its deadlines (its calendar is read on every
    ticket: refusing it there would fail every ticket of its priority)."""
    from helpdesk.services.sla.business_hours import check_input

    Calendar.from_dict(data)
    with pytest.raises(ValueError, match=message):
        check_input(data)
