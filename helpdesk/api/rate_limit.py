"""Sliding-window rate limits in Redis. They fail open when Redis is down (a webhook is
stored and acknowledged all the same), except where `required=True` (logins: without their
limit a password could be guessed at full speed while Redis is away; they answer 503).

The window is approximated from two fixed windows (the previous one weighted by how much of
it still overlaps), so a burst cannot double its allowance across a window boundary. One
hit is one script call: one round trip, which can also read one more key for the caller
(the webhook path reads the channels' version in it).
"""

from __future__ import annotations

import logging
import math
import time

from redis import Redis
from redis.commands.core import Script

from helpdesk.config import parse_rate
from helpdesk.errors import ApiError
from helpdesk.queues import redis_connection

log = logging.getLogger(__name__)
UNAVAILABLE = object()  # what `check` returns for `read` when Redis did not answer

# KEYS: this window, the previous one[, a key to read]; ARGV: the window's lifetime.
_HIT = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local before = redis.call('GET', KEYS[2])
local extra = false
if #KEYS > 2 then extra = redis.call('GET', KEYS[3]) end
return {hits, before, extra}
"""
_script: Script | None = None


def _hit(client: Redis, keys: list[str], lifetime: int) -> list:
    global _script
    if _script is None:  # the script's SHA; each call runs it on the caller's client
        _script = client.register_script(_HIT)
    return _script(keys, [lifetime], client=client)


def refuse_if_spent(bucket: str, rate: str, *, required: bool = False) -> None:
    """Raise 429 when `bucket` has no hit left, without counting one (for limits counted
    by `check` only after the fact: the failed logins of an address)."""
    limit, period = parse_rate(rate)
    keys, offset = _windows(bucket, period)
    try:
        hits, before = redis_connection().mget(keys)
    except Exception as exc:
        if required:
            raise  # Redis's errors answer 503 (helpdesk.errors)
        log.warning("rate limiter unavailable: %s", exc)
        return
    if _weighted(int(hits or 0), before, offset, period) + 1 > limit:
        _refuse(math.ceil(period - offset))


def check(bucket: str, rate: str, read: str | None = None, *, required: bool = False) -> object:
    """Count one hit on `bucket`; raise 429 with Retry-After past the limit. Returns the
    value of the key `read` (None when unset, UNAVAILABLE when Redis did not answer; with
    `required`, Redis's error is raised instead)."""
    limit, period = parse_rate(rate)
    keys, offset = _windows(bucket, period)
    try:
        client = redis_connection()
        hits, before, extra = _hit(client, keys + ([read] if read else []), 2 * period + 1)
    except Exception as exc:  # never lose a delivery because the limiter is unreachable
        if required:
            raise
        log.warning("rate limiter unavailable: %s", exc)
        return UNAVAILABLE
    if _weighted(hits, before, offset, period) > limit:
        _refuse(math.ceil(period - offset) if hits > limit else math.ceil(period * 0.1))
    return extra


def _windows(bucket: str, period: int) -> tuple[list[str], float]:
    """The keys of this window and the previous one, and how far into this one we are."""
    window, offset = divmod(time.time(), period)
    return ([f"helpdesk:rate:{bucket}:{int(window)}",
             f"helpdesk:rate:{bucket}:{int(window) - 1}"], offset)


def _weighted(hits: int, before: object, offset: float, period: int) -> float:
    """This window's hits plus the previous window's, weighted by how much of it still
    overlaps the sliding window."""
    return int(before or 0) * (1 - offset / period) + hits


def _refuse(retry_after: float) -> None:
    raise ApiError(429, "rate limit exceeded", "rate_limited",
                   headers={"Retry-After": str(max(int(retry_after), 1))})
