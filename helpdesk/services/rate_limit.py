"""Sliding-window rate limits in Redis; they fail open when Redis is down.

The window is approximated from two fixed windows (the previous one weighted by how much of
it still overlaps), so a burst cannot double its allowance across a window boundary.
"""

from __future__ import annotations

import logging
import math
import time

from helpdesk.errors import ApiError
from helpdesk.queues import redis_connection

log = logging.getLogger(__name__)
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'6000/minute' → (6000, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().rstrip("s") or "minute"]


def check(bucket: str, rate: str) -> None:
    """Count one hit on `bucket`; raise 429 with Retry-After past the limit."""
    limit, period = parse_rate(rate)
    now = time.time()
    window, offset = divmod(now, period)
    current, previous = f"helpdesk:rate:{bucket}:{int(window)}", \
        f"helpdesk:rate:{bucket}:{int(window) - 1}"
    try:
        pipe = redis_connection().pipeline()
        pipe.incr(current)
        pipe.expire(current, 2 * period + 1)
        pipe.get(previous)
        hits, _, before = pipe.execute()
    except Exception as exc:  # never lose a delivery because the limiter is unreachable
        log.warning("rate limiter unavailable: %s", exc)
        return
    overlap = 1 - offset / period
    if int(before or 0) * overlap + hits > limit:
        retry_after = math.ceil(period - offset) if hits > limit else math.ceil(
            period * 0.1) or 1
        raise ApiError(429, "rate limit exceeded", "rate_limited",
                       headers={"Retry-After": str(max(retry_after, 1))})
