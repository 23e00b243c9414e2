"""Every background job in one registry: its function, queue, job id and coalescing.

Job names are spelled here and nowhere else; services enqueue through these entries (after
the commit that makes their work visible) and `workers/jobs.py` holds the functions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from helpdesk import queues
from helpdesk.extensions import db
from helpdesk.transaction import after_commit, on_rollback


@dataclass(frozen=True)
class Job:
    """One kind of job. `job_id` names a run by its arguments, so a second enqueue of the
    same work is recognised; with `coalesce`, one still waiting to start is enough."""

    func: str
    queue: str
    job_id: Callable[..., str] | None = None
    coalesce: bool = False
    retry_intervals: Callable[[], Sequence[int]] | None = None
    pending: str | None = None  # the flag `enqueue_unless_pending` keeps while one waits

    def id_for(self, *args: Any) -> str | None:
        return self.job_id(*args) if self.job_id else None

    def enqueue(self, *args: Any, at: datetime | None = None) -> bool:
        """Enqueue `func(*args)` (at `at`); False (logged) when Redis is unreachable."""
        intervals = self.retry_intervals() if self.retry_intervals else None
        return queues.enqueue(self.queue, self.func, *args, job_id=self.id_for(*args), at=at,
                              intervals=intervals, coalesce=self.coalesce)

    def enqueue_each(self, calls: Sequence[tuple]) -> bool:
        """Enqueue `func(*args)` for each args tuple, skipping any whose job still waits."""
        intervals = self.retry_intervals() if self.retry_intervals else None
        return queues.enqueue_each(self.queue, self.func,
                                   [(args, self.id_for(*args)) for args in calls], intervals)

    def enqueue_unless_pending(self) -> bool:
        """Enqueue `func()` unless a run of it is waiting to start (see queues)."""
        return queues.enqueue_unless_pending(self.pending or self.func, self.queue, self.func)

    def enqueue_unless_pending_after_commit(self) -> None:
        """`enqueue_unless_pending` once this transaction commits (once per transaction).
        When the commit announces events, the round trip that publishes them carries the
        flag's SET (`take_signals`, `publish.emit_many(signals=...)`): none of its own. If
        that fails, each job is signalled on its own, as before (had the failed
        pipeline set its flag, the job waits for the flag's expiry and the sweeper)."""
        signals = _signals()
        if self not in signals:
            signals.append(self)
        after_commit(_run_signals, once=True)

    def set_pending(self, pipe: Any) -> None:
        """Queue on `pipe` the first half of `enqueue_unless_pending` (its reply: flagged)."""
        queues.set_pending(pipe, self.pending or self.func)

    @property
    def pending_key(self) -> str:
        """The key `set_pending` sets (for a script that sets it: `event_log.emit_numbered`)."""
        return queues.pending_key(self.pending or self.func)

    def enqueue_if_flagged(self, flagged: Any) -> bool:
        """The second half, with the reply of `set_pending`."""
        return queues.enqueue_if_flagged(flagged, self.pending or self.func, self.queue,
                                         self.func)

    def waiting(self) -> bool:
        """Whether a run enqueued with `enqueue_unless_pending` is waiting to start."""
        return queues.pending(self.pending or self.func)

    def started(self) -> None:
        """Called by a job enqueued with `enqueue_unless_pending` before it reads its work."""
        queues.job_started(self.pending or self.func)


PROCESS_DELIVERY = Job("workers.jobs.process_delivery", queues.INGEST,
                       job_id=lambda delivery_id: f"delivery-{delivery_id}", coalesce=True)
PROCESS_DELIVERIES = Job("workers.jobs.process_deliveries", queues.INGEST,
                         pending="ingest-batch")
ROUTE_TICKET = Job("workers.jobs.route_ticket", queues.ROUTING,
                   job_id=lambda ticket_id: f"route-{ticket_id}", coalesce=True)
ROUTE_TICKETS = Job("workers.jobs.route_tickets", queues.ROUTING, pending="routing-batch")
FILL_AGENT = Job("workers.jobs.fill_agent", queues.ROUTING)
SEND_MESSAGE = Job("workers.jobs.send_message", queues.OUTBOUND,
                   job_id=lambda message_id: f"send-{message_id}",
                   retry_intervals=queues.outbound_retry_intervals)
def _sla_timer_id(suffix: str = "") -> Callable[..., str]:
    def job_id(ticket_id: int, clock: str, kind: str, due_iso: str) -> str:
        due = int(datetime.fromisoformat(due_iso).timestamp())
        return f"sla-{ticket_id}-{clock}-{kind}-{due}{suffix}"
    return job_id


CHECK_SLA = Job("workers.jobs.check_sla", queues.DEFAULT, job_id=_sla_timer_id())
# A breach timer that ran before its deadline, again once due: a job id of its own (the
# first one's, reused while it runs, was stored back as finished and could expire unrun).
CHECK_SLA_AGAIN = Job("workers.jobs.check_sla", queues.DEFAULT, job_id=_sla_timer_id("-again"))
SEND_SURVEY = Job("workers.jobs.send_survey", queues.DEFAULT,
                  job_id=lambda survey_id, _base_url="": f"survey-{survey_id}")

FETCH_MEDIA = Job("workers.jobs.fetch_media", queues.DEFAULT,  # (not before replies)
                  job_id=lambda attachment_id: f"media-{attachment_id}")

ALL = (PROCESS_DELIVERY, PROCESS_DELIVERIES, ROUTE_TICKET, ROUTE_TICKETS, FILL_AGENT, SEND_MESSAGE,
       CHECK_SLA, SEND_SURVEY, FETCH_MEDIA)


_SIGNALS = "helpdesk.jobs.signals"


def _signals() -> list[Job]:
    return db.session.info.setdefault(_SIGNALS, [])


def take_signals() -> list[Job]:
    """The jobs this committed transaction asked to enqueue unless pending, for the caller
    to flag in its own pipeline (then `Job.enqueue_if_flagged` with each reply)."""
    return db.session.info.pop(_SIGNALS, [])


def _run_signals() -> None:
    for job in take_signals():  # none left when the commit's events carried them
        job.enqueue_unless_pending()


def _drop_signals(session: Any) -> None:
    session.info.pop(_SIGNALS, None)


on_rollback(_drop_signals)


_STOPPING = threading.Event()


def request_stop() -> None:
    """The worker process was asked to stop (SIGTERM/SIGINT)."""
    _STOPPING.set()


def stop_requested() -> bool:
    """Whether this process is stopping: a long job hands its remaining work back (to a
    fresh job, for another worker) instead of holding the shutdown up."""
    return _STOPPING.is_set()
