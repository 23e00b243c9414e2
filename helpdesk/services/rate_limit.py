"""Fixed-window rate limits in Redis; they fail open when Redis is down."""

from __future__ import annotations

import logging
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
    window = int(time.time()) // period
    key = f"helpdesk:rate:{bucket}:{window}"
    try:
        pipe = redis_connection().pipeline()
        pipe.incr(key)
        pipe.expire(key, period + 1)
        hits = pipe.execute()[0]
    except Exception as exc:  # never lose a delivery because the limiter is unreachable
        log.warning("rate limiter unavailable: %s", exc)
        return
    if hits > limit:
        retry_after = period - int(time.time()) % period
        raise ApiError(429, "rate limit exceeded", "rate_limited",
                       headers={"Retry-After": str(max(retry_after, 1))})
