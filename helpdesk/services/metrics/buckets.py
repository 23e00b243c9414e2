"""Value buckets for the percentile histograms (`metrics/histograms`).

A bucket is a half-open range of seconds, [BOUNDS[b - 1], BOUNDS[b]), eight to an octave
(each about 9% wide); bucket 0 holds negative values and the last one everything past 2^40 s.
Facts store the bucket of their resolution and first-response times, computed here from the
exact value, and a bucket's values are exactly those in its range, so counting values per
bucket and then reading one bucket in value order finds any rank exactly.

Changing BOUNDS changes what stored buckets mean: it takes `helpdesk metrics rebuild`.
"""

from __future__ import annotations

from bisect import bisect_right

PER_OCTAVE = 8
BOUNDS: tuple[float, ...] = (0.0, *(2.0 ** (n / PER_OCTAVE) for n in range(PER_OCTAVE * 40 + 1)))
INFINITY = float("inf")


def bucket_of(value: float | None) -> int | None:
    """The bucket holding `value` (None for no value)."""
    return None if value is None else bisect_right(BOUNDS, value)


def bucket_range(bucket: int) -> tuple[float, float]:
    """[low, high) of a bucket's values (infinite at the ends)."""
    low = BOUNDS[bucket - 1] if bucket > 0 else -INFINITY
    high = BOUNDS[bucket] if bucket < len(BOUNDS) else INFINITY
    return low, high
