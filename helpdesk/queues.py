"""Redis, the RQ queues and the only way work is enqueued.

Queue names are declared here and nowhere else. Jobs take ids, never objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from redis import Redis
from rq import Queue, Retry

log = logging.getLogger(__name__)

INGEST = "ingest"
ROUTING = "routing"
OUTBOUND = "outbound"
DEFAULT = "default"
QUEUE_NAMES = (INGEST, ROUTING, OUTBOUND, DEFAULT)

JOB_TIMEOUT = 120
RESULT_TTL = 60
FAILURE_TTL = 7 * 24 * 3600


def init_app(app: Flask) -> None:
    app.extensions["helpdesk.redis"] = None
    app.extensions["helpdesk.redis_probe"] = None


def redis_connection(app: Flask | None = None) -> Redis:
    """The app's Redis client (created once per app, shared by threads)."""
    app = app or current_app._get_current_object()
    client = app.extensions.get("helpdesk.redis")
    if client is None:
        url = app.config["REDIS_URL"]
        if not url:
            raise RuntimeError("REDIS_URL is not set (helpdesk run starts an embedded Redis)")
        # No socket_timeout: RQ's BLPOP blocks longer than any sensible read timeout.
        client = Redis.from_url(url, socket_connect_timeout=2, health_check_interval=30)
        app.extensions["helpdesk.redis"] = client
    return client


def redis_probe(app: Flask | None = None) -> Redis:
    """A client for readiness probes: every command gives up after 2 s, so a Redis that
    accepts connections but does not answer (paused, partitioned, busy in a script) is
    reported down instead of hanging the probe (the shared client has no read timeout)."""
    app = app or current_app._get_current_object()
    client = app.extensions.get("helpdesk.redis_probe")
    if client is None:
        client = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2,
                                socket_timeout=2)
        app.extensions["helpdesk.redis_probe"] = client
    return client


def get_queue(name: str, app: Flask | None = None, queue_class: type[Queue] = Queue) -> Queue:
    return queue_class(name, connection=redis_connection(app), default_timeout=JOB_TIMEOUT)


def _retry(intervals: Sequence[int] | None) -> Retry | None:
    """n intervals = n retries (n + 1 attempts); none: a single attempt."""
    if intervals is None:
        intervals = current_app.config["JOB_RETRY_INTERVALS"]
    intervals = list(intervals)
    return Retry(max=len(intervals), interval=intervals) if intervals else None


def outbound_retry_intervals() -> list[int]:
    """Seconds between send attempts (`HELPDESK_OUTBOUND_RETRY_INTERVALS`)."""
    return list(current_app.config["OUTBOUND_RETRY_INTERVALS"])


WAITING = (b"queued", b"scheduled", b"deferred")


def job_waiting(job_id: str) -> bool:
    """A job of this id is queued (or scheduled for a retry) and has not started yet."""
    return jobs_waiting([job_id]) == {job_id}


def job_statuses(job_ids: Sequence[str]) -> list[bytes | None]:
    """Each job's RQ status, None for a job Redis does not know (one round trip)."""
    pipe = redis_connection().pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(f"rq:job:{job_id}", "status")
    return pipe.execute()


def jobs_waiting(job_ids: Sequence[str]) -> set[str]:
    """Which of these jobs are waiting to run (one round trip)."""
    return {job_id for job_id, status in zip(job_ids, job_statuses(job_ids), strict=True)
            if status in WAITING}


PENDING_TTL = 10  # seconds a job may wait to start before another one is enqueued anyway


def pending_key(name: str) -> str:
    """The Redis key of a job's pending flag (set `NX` with `PENDING_TTL` seconds, here or by
    a script of its own: `event_log.emit_numbered`)."""
    return f"helpdesk:pending:{name}"


def enqueue_unless_pending(name: str, queue: str, func: str) -> bool:
    """Enqueue `func()` unless a job of this `name` is waiting to start: one round trip
    when one is. The job calls `job_started(name)` before it reads its work, so whatever
    was committed before this call is seen by the waiting job or by the new one."""
    try:
        flagged = set_pending(redis_connection(), name)
    except Exception as exc:  # redis down: the sweeper finds the work in the database
        log.warning("enqueue %s on %s failed: %s", func, queue, exc)
        return False
    return enqueue_if_flagged(flagged, name, queue, func)


def set_pending(client: Any, name: str) -> Any:
    """Set the flag that a job of this `name` waits to start, unless it is set (on a client:
    whether it was set now; on a pipeline, that answer is its reply)."""
    return client.set(pending_key(name), "1", nx=True, ex=PENDING_TTL)


def enqueue_if_flagged(flagged: Any, name: str, queue: str, func: str) -> bool:
    """The rest of `enqueue_unless_pending` once `set_pending` answered: enqueue `func()` if
    this call set the flag (and clear it if the enqueue failed)."""
    if not flagged:
        return True
    if enqueue(queue, func):
        return True
    try:
        redis_connection().delete(pending_key(name))
    except Exception:  # noqa: S110  (the flag expires by itself)
        pass
    return False


def pending(name: str) -> bool:
    """Whether a job enqueued with `enqueue_unless_pending(name)` is waiting to start (one
    round trip; False when Redis is unreachable)."""
    try:
        return bool(redis_connection().exists(pending_key(name)))
    except Exception:  # noqa: BLE001  (a hint for the caller, never a failure)
        return False


def job_started(name: str) -> None:
    """Called by a job enqueued with `enqueue_unless_pending` before it reads its work."""
    try:
        redis_connection().delete(pending_key(name))
    except Exception as exc:  # the flag expires; at worst the next job starts later
        log.warning("job %s: pending flag not cleared: %s", name, exc)


def enqueue_each(queue: str, func: str, calls: Sequence[tuple[tuple, str]],
                 intervals: Sequence[int] | None = None) -> bool:
    """Enqueue `func(*args)` for each (args, job_id), skipping any whose job is still waiting
    (coalesced, as with `enqueue(..., coalesce=True)`): two round trips for all of them.
    Retries wait `intervals` seconds (default `JOB_RETRY_INTERVALS`)."""
    if not calls:
        return True
    try:
        waiting = jobs_waiting([job_id for _args, job_id in calls])
        if len(waiting) == len(calls):
            return True
        q = get_queue(queue)
        policy = _retry(intervals)
        q.enqueue_many([Queue.prepare_data(func, args, job_id=job_id, result_ttl=RESULT_TTL,
                                           failure_ttl=FAILURE_TTL, retry=policy,
                                           timeout=JOB_TIMEOUT)
                        for args, job_id in calls if job_id not in waiting])
        return True
    except Exception as exc:  # redis down, timeouts: the database still has the work
        log.warning("enqueue of %d %s jobs on %s failed: %s", len(calls), func, queue, exc)
        return False


def enqueue(queue: str, func: str, *args: Any, job_id: str | None = None,
            at: datetime | None = None, retry: bool = True,
            intervals: Sequence[int] | None = None, coalesce: bool = False) -> bool:
    """Enqueue `func(*args)`; False (logged) when Redis is unreachable: callers rely on sweeps.

    Retries wait `intervals` seconds (default `JOB_RETRY_INTERVALS`). With `coalesce`, a job
    of the same `job_id` still waiting to run is enough: it will read the state this commit
    made, so a second one would only repeat it.
    """
    try:
        q = get_queue(queue)
        if coalesce and job_id and job_waiting(job_id):
            return True
        options: dict[str, Any] = {"job_id": job_id, "result_ttl": RESULT_TTL,
                                   "failure_ttl": FAILURE_TTL}
        policy = _retry(intervals) if retry else None
        if policy is not None:
            options["retry"] = policy
        if at is not None:
            q.enqueue_at(at, func, *args, **options)
        else:
            q.enqueue(func, *args, **options)
        return True
    except Exception as exc:  # redis down, timeouts: the database still has the work
        log.warning("enqueue %s%r on %s failed: %s", func, args, queue, exc)
        return False
