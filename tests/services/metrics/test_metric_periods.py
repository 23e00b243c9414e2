"""Periods split into whole UTC days or months and partial ones; value buckets hold exactly
the values of their range."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from helpdesk.services.metrics.buckets import BOUNDS, bucket_of, bucket_range
from helpdesk.services.metrics.periods import Period, following, split

BASE = datetime(2025, 11, 20, tzinfo=UTC)


def _random_periods(n: int = 300) -> list[Period]:
    rng = random.Random(3)
    periods = []
    for _ in range(n):
        start = BASE + timedelta(seconds=rng.random() * 200 * 86400)
        if rng.random() < 0.3:  # on a day's or a month's start
            start = start.replace(hour=0, minute=0, second=0, microsecond=0)
            if rng.random() < 0.5:
                start = start.replace(day=1)
        length = timedelta(seconds=rng.random() * rng.choice([3600, 86400, 40 * 86400,
                                                               300 * 86400]))
        periods.append(Period(start, start + max(length, timedelta(microseconds=1))))
    return periods


@pytest.mark.parametrize("unit", ["day", "month"])
def test_whole_and_partial_units_cover_the_period_once(unit):
    for period in _random_periods():
        whole, partials = split(period, unit)
        pieces = [partial.inside for partial in partials]
        if whole is not None:
            first, last = (datetime(d.year, d.month, d.day, tzinfo=UTC) for d in whole)
            assert first < last
            pieces.append(Period(first, last))
        pieces.sort(key=lambda p: p.start)
        assert pieces[0].start == period.start and pieces[-1].end == period.end
        assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
        for partial in partials:  # a partial unit is its inside and its outside
            unit_start = datetime(partial.unit.year, partial.unit.month, partial.unit.day,
                                  tzinfo=UTC)
            spans = sorted([partial.inside, *partial.outside], key=lambda p: p.start)
            assert spans[0].start == unit_start
            assert spans[-1].end == following(unit_start, unit)
            assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
            assert partial.outside, "a partial unit has something outside the period"


def test_buckets_hold_exactly_the_values_of_their_range():
    rng = random.Random(4)
    values = [0.0, -0.0, -1e-9, -7.5, 1e12, 2.0 ** 40, 2.0 ** 41, *BOUNDS,
              *(b * (1 - 1e-15) for b in BOUNDS), *(rng.expovariate(1e-4) for _ in range(2000))]
    for value in values:
        low, high = bucket_range(bucket_of(value))
        assert low <= value < high, value
    assert bucket_of(None) is None
    assert [bucket_range(b)[1] for b in range(len(BOUNDS))] == [
        bucket_range(b + 1)[0] for b in range(len(BOUNDS))]  # no gaps, no overlaps
