"""From a ticket's stored history to its resolution cycles' facts (a pure computation).

A cycle runs from the ticket's creation, or from a reopen, to a solve (`solved`, or `closed`
from an unsolved status). Work sessions belong to the cycle in which they started (a session
after a solve and before the reopen still counts for the solved cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from helpdesk.models import Ticket
from helpdesk.services.metrics.buckets import bucket_of

FACT_EVENTS = ("status.changed", "ticket.reopened", "assigned", "escalated", "sla.breached")
FCR_REOPEN_WINDOW = timedelta(days=7)
DONE = ("solved", "closed")


@dataclass
class History:
    """What one ticket's facts are computed from."""

    ticket_id: int
    channel_id: int
    created_at: datetime
    status: str
    solved_at: datetime | None
    contact_reason: str | None
    sla_policy_id: int | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    subject: str | None
    events: list[tuple[str, datetime, dict]] = field(default_factory=list)
    replies: list[datetime] = field(default_factory=list)  # public agent replies
    contacts: list[datetime] = field(default_factory=list)  # customer messages, inbound calls
    answers: list[datetime] = field(default_factory=list)  # answered calls
    sessions: list[tuple[datetime, datetime]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, ticket: Ticket) -> History:
        return cls(ticket.id, ticket.channel_id, ticket.created_at, ticket.status,
                   ticket.solved_at, ticket.contact_reason, ticket.sla_policy_id,
                   ticket.first_response_due_at, ticket.resolution_due_at, ticket.subject)

    def add_answer(self, started_at: datetime, answered_at: datetime | None,
                   wait_seconds: float | None) -> None:
        self.answers.append(answered_at or started_at + timedelta(seconds=wait_seconds or 0))


@dataclass
class Cycle:
    started_at: datetime
    solved_at: datetime
    assignee_id: int | None
    max_level: int
    pending_seconds: float
    reopened_at: datetime | None = None


@dataclass
class _Walk:
    """The state of a ticket while its events are replayed in order."""

    status: str
    start: datetime
    cycles: list[Cycle] = field(default_factory=list)
    assignee_id: int | None = None
    level: int = 1
    pending: float = 0.0
    pending_since: datetime | None = None
    first_breach: datetime | None = None


def cycles_of(history: History) -> list[Cycle]:
    """Replay the ticket's events into its resolution cycles."""
    first_change = next((data for name, _, data in history.events
                         if name == "status.changed"), None)
    walk = _Walk(status=(first_change or {}).get("from", history.status),
                 start=history.created_at)
    if walk.status == "pending":
        walk.pending_since = history.created_at
    for name, at, data in history.events:
        _STEPS[name](walk, at, data)
    last = walk.cycles[-1] if walk.cycles else None
    if last is not None and last.reopened_at is None and history.solved_at is not None:
        last.solved_at = history.solved_at  # the ticket's own moment, to the microsecond
    return walk.cycles


def _assigned(walk: _Walk, _at: datetime, data: dict) -> None:
    walk.assignee_id = data.get("to")


def _escalated(walk: _Walk, _at: datetime, data: dict) -> None:
    walk.level = max(walk.level, int(data.get("to") or 1))


def _breached(walk: _Walk, at: datetime, _data: dict) -> None:
    walk.first_breach = walk.first_breach or at


def _reopened(walk: _Walk, at: datetime, _data: dict) -> None:
    if walk.status != "solved" or not walk.cycles:
        return
    walk.cycles[-1].reopened_at = at
    walk.status, walk.start, walk.pending, walk.pending_since = "open", at, 0.0, None


def _status_changed(walk: _Walk, at: datetime, data: dict) -> None:
    new = data.get("to")
    if walk.status == "pending" and new != "pending" and walk.pending_since is not None:
        walk.pending += (at - max(walk.pending_since, walk.start)).total_seconds()
        walk.pending_since = None
    if new == "pending" and walk.status != "pending":
        walk.pending_since = at
    if new == "solved" or (new == "closed" and walk.status not in DONE):
        walk.cycles.append(Cycle(walk.start, at, walk.assignee_id, walk.level, walk.pending))
    walk.status = new


_STEPS: dict[str, Callable[[_Walk, datetime, dict], None]] = {
    "status.changed": _status_changed, "ticket.reopened": _reopened, "assigned": _assigned,
    "escalated": _escalated, "sla.breached": _breached}


def build_facts(history: History, suggest: Callable[[list[str]], str | None]
                ) -> list[dict[str, Any]]:
    """The fact rows (column values) of every resolution cycle of the ticket."""
    cycles = cycles_of(history)
    if not cycles:
        return []
    reason, suggested = history.contact_reason, False
    if reason is None:
        reason = suggest([history.subject or "", *history.texts])
        suggested = reason is not None
    breach = _first_breach(history)
    contact = min(history.contacts, default=history.created_at)
    response = min(history.replies[:1] + history.answers, default=None)
    rows = []
    for index, cycle in enumerate(cycles):
        previous = cycles[index - 1].solved_at if index else None
        # A response after the last solve (a ticket solved unanswered, then answered while
        # still solved) is the last cycle's: FRT counts it by its time, solved or not. Once
        # reopened, the response is the next cycle's (live until that one is solved).
        known = response is not None and (
            response <= cycle.solved_at
            or (index == len(cycles) - 1 and cycle.reopened_at is None))
        first_response = (response - contact).total_seconds() if known else None
        resolution = (cycle.solved_at - cycle.started_at).total_seconds()
        rows.append({
            "cycle": index + 1, "started_at": cycle.started_at, "solved_at": cycle.solved_at,
            "reopened_at": cycle.reopened_at,
            "reopened": cycle.reopened_at is not None
            and cycle.reopened_at - cycle.solved_at <= FCR_REOPEN_WINDOW,
            "channel_id": history.channel_id, "assignee_id": cycle.assignee_id,
            "contact_reason": reason, "contact_reason_suggested": suggested,
            "first_response_at": response if known else None,
            "first_response_seconds": first_response, "frt_bucket": bucket_of(first_response),
            "frt_counted": known and (previous is None or response > previous),
            "resolution_seconds": resolution, "resolution_bucket": bucket_of(resolution),
            "pending_seconds": cycle.pending_seconds,
            "handle_seconds": _handle_seconds(history, cycle, first=not index),
            "max_level": cycle.max_level,
            # (its replies until the reopen that ended it: one sent after the solve, the
            # ticket still solved, is a second reply all the same)
            "public_replies": sum(1 for at in history.replies
                                  if cycle.reopened_at is None or at < cycle.reopened_at),
            "sla_policy_id": history.sla_policy_id,
            "sla_met": _sla_met(history, cycle, response, breach),
        })
    return rows


def _first_breach(history: History) -> datetime | None:
    return min((at for name, at, _ in history.events if name == "sla.breached"), default=None)


def _handle_seconds(history: History, cycle: Cycle, first: bool) -> float:
    """The work sessions that started in the cycle (from its start to the reopen that ended
    it); the first cycle also takes those that started before the ticket did: a phone call
    answered by an agent is a session from the moment it was answered, and the ticket it
    opens is created once the call is bridged."""
    return sum((ended - started).total_seconds() for started, ended in history.sessions
               if (first or started >= cycle.started_at)
               and (cycle.reopened_at is None or started < cycle.reopened_at))


def _sla_met(history: History, cycle: Cycle, response: datetime | None,
             breach: datetime | None) -> bool | None:
    """Both clocks met: the first response (or the solve, if sooner) and the resolution."""
    if history.sla_policy_id is None:
        return None
    if breach is not None and breach <= cycle.solved_at:
        return False
    answered = min(response, cycle.solved_at) if response else cycle.solved_at
    due = history.first_response_due_at
    if due is not None and answered > due:
        return False
    due = history.resolution_due_at
    return due is None or cycle.solved_at <= due
