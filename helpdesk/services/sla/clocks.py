"""SLA clocks: deadlines from the policy of the ticket's priority, exact timers, pauses.

First response: from creation to the first public agent reply. Resolution: from creation to
solved, paused while the ticket is `pending` (waiting on the customer) and, once reopened,
for the time it was solved. Both count business time when the policy has a calendar.
Deadlines are stored on the ticket; a timer job is scheduled for the warning point and for
the deadline, and does nothing if, when it fires, the deadline has moved or been met.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, or_, select

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import SlaPolicy, Ticket, TicketEvent
from helpdesk.models.ticket import NO_DEADLINE
from helpdesk.outbox import emit, rooms
from helpdesk.schemas.resources import ticket_schema
from helpdesk.services.sla.business_hours import (
    Calendar,
    add_business_seconds,
    business_seconds_between,
)
from helpdesk.services.tickets import history
from helpdesk.transaction import after_commit

CLOCKS = ("first_response", "resolution")
_POLICIES = "helpdesk.sla_policies"
_POLICY_FOR = select(SlaPolicy).where(SlaPolicy.priority == bindparam("priority"))  # built once


def _now() -> datetime:
    return datetime.now(UTC)


def calendar_of(policy: SlaPolicy) -> Calendar | None:
    return Calendar.from_dict(policy.calendar) if policy.calendar else None


def policy_for(priority: str) -> SlaPolicy | None:
    cache = db.session.info.get(_POLICIES)
    if cache is not None and priority in cache:
        return cache[priority]
    policy = db.session.execute(_POLICY_FOR, {"priority": priority}).scalar_one_or_none()
    if cache is not None:
        cache[priority] = policy
    return policy


@contextmanager
def policies_cached() -> Iterator[None]:
    """Within the block (one transaction applying policies to many tickets: the routing
    batch) each priority's policy is read once."""
    db.session.info[_POLICIES] = {}
    try:
        yield
    finally:
        db.session.info.pop(_POLICIES, None)


def nearest_due(ticket: Ticket) -> datetime | None:
    """The deadline the queue orders by: the first open clock's."""
    if ticket.status in ("solved", "closed"):
        return None
    if ticket.first_response_at is None and ticket.first_response_due_at is not None:
        return ticket.first_response_due_at
    if ticket.sla_paused_at is not None:
        return None
    return ticket.resolution_due_at


def apply_policy(ticket: Ticket) -> None:
    """(Re)compute the ticket's deadlines from its priority's policy and schedule timers."""
    if ticket.id is None or ticket.created_at is None:
        db.session.flush()  # a new ticket: its id and creation time
    policy = policy_for(ticket.priority)
    ticket.sla_policy_id = policy.id if policy else None
    if policy is None:
        ticket.first_response_due_at = ticket.resolution_due_at = None
    else:
        calendar = calendar_of(policy)
        ticket.first_response_due_at = _due(ticket.created_at, policy.first_response_seconds,
                                            calendar)
        ticket.resolution_due_at = _due(ticket.created_at, policy.resolution_seconds, calendar,
                                        ticket.sla_paused_seconds)
    ticket.sla_due_at = nearest_due(ticket) or NO_DEADLINE
    schedule_timers(ticket, policy)


def _due(start: datetime, seconds: int | None, calendar: Calendar | None,
         paused: float = 0.0) -> datetime | None:
    if seconds is None:
        return None
    return add_business_seconds(start, seconds + paused, calendar)


def schedule_timers(ticket: Ticket, policy: SlaPolicy | None) -> None:
    if policy is None:
        return
    plans = []
    for clock in CLOCKS:
        due = open_deadline(ticket, clock)
        target = getattr(policy, f"{clock}_seconds")
        if due is None or not target:
            continue
        plans += [(warning_point(ticket, clock, policy), clock, "warning", due),
                  (due, clock, "breach", due)]
    ticket_id = ticket.id
    for at, clock, kind, due in plans:
        after_commit(lambda at=at, clock=clock, kind=kind, due=due: jobs.CHECK_SLA.enqueue(
            ticket_id, clock, kind, due.isoformat(), at=at))


def warning_point(ticket: Ticket, clock: str, policy: SlaPolicy) -> datetime:
    """When `warning_ratio` of the clock's target has run, counted as its deadline is (in
    business hours under a calendar, after the time paused): a warning at 80% of an 8-hour
    target comes after 6.4 working hours, not 1.6 wall-clock hours before the deadline.
    The target is the one the stored deadline was computed from: a policy changed since
    applies to tickets created or re-prioritised after the change (its new target gave a
    ticket due at 18:00 a warning at 10:48)."""
    calendar = calendar_of(policy)
    paused = ticket.sla_paused_seconds if clock == "resolution" else 0.0
    due = getattr(ticket, f"{clock}_due_at")
    target = (business_seconds_between(ticket.created_at, due, calendar) - paused
              if due is not None else getattr(policy, f"{clock}_seconds"))
    return _due(ticket.created_at, target * policy.warning_ratio, calendar, paused)


def open_deadline(ticket: Ticket, clock: str) -> datetime | None:
    """The deadline of a clock that is still running (not met, not paused, not done)."""
    if ticket.status in ("solved", "closed"):
        return None
    if clock == "first_response":
        return ticket.first_response_due_at if ticket.first_response_at is None else None
    return None if ticket.sla_paused_at is not None else ticket.resolution_due_at


def refresh(ticket: Ticket) -> None:
    """Recompute the queue's deadline key after a reply or a status change."""
    ticket.sla_due_at = nearest_due(ticket) or NO_DEADLINE


def pause(ticket: Ticket, now: datetime | None = None) -> None:
    """Waiting on the customer: the resolution clock stops."""
    if ticket.sla_paused_at is None:
        ticket.sla_paused_at = now or _now()
        ticket.sla_due_at = nearest_due(ticket) or NO_DEADLINE


def resume(ticket: Ticket, now: datetime | None = None) -> None:
    """The customer answered (or an agent reopened): the resolution clock runs again."""
    if ticket.sla_paused_at is None:
        return
    now = now or _now()
    policy = db.session.get(SlaPolicy, ticket.sla_policy_id) if ticket.sla_policy_id else None
    calendar = calendar_of(policy) if policy else None
    paused = business_seconds_between(ticket.sla_paused_at, now, calendar)
    ticket.sla_paused_seconds += paused
    ticket.sla_paused_at = None
    if ticket.resolution_due_at is not None and paused > 0:
        # The deadline moves by the time paused; the target it was computed from stays (a
        # policy changed since applies to tickets created or re-prioritised after it: a
        # shorter target breached a ticket the moment its customer answered).
        ticket.resolution_due_at = add_business_seconds(ticket.resolution_due_at, paused,
                                                        calendar)
    ticket.sla_due_at = nearest_due(ticket) or NO_DEADLINE
    if policy is not None:
        schedule_timers(ticket, policy)


def reopened(ticket: Ticket, solved_at: datetime | None, now: datetime | None = None) -> None:
    """A solved ticket is open again: the time it spent solved waited on nobody, so, like
    time pending, it does not count against the resolution target (a ticket reopened after
    its original deadline is not breached on the spot)."""
    if solved_at is not None and ticket.sla_paused_at is None:
        ticket.sla_paused_at = solved_at
    if ticket.sla_paused_at is not None:
        resume(ticket, now)
    else:
        apply_policy(ticket)


def fire(ticket_id: int, clock: str, kind: str, due_iso: str) -> bool:
    """A timer: warn or breach unless the deadline moved or the clock stopped."""
    ticket = db.session.execute(select(Ticket).where(Ticket.id == ticket_id)
                                .with_for_update(of=Ticket)).scalar_one_or_none()
    if ticket is None:
        return False
    due = open_deadline(ticket, clock)
    if due is None or due != datetime.fromisoformat(due_iso):
        return False
    if kind == "breach":
        if _now() < due:
            # Early: RQ keeps a job's time to the whole second (a deadline at .7 s ran up
            # to a second before it), or another process's clock is ahead. Again once due.
            ticket_id = ticket.id
            after_commit(lambda: jobs.CHECK_SLA_AGAIN.enqueue(
                ticket_id, clock, kind, due_iso, at=due + EARLY_AGAIN_AFTER))
            return False
        return breach(ticket, clock)
    return warn(ticket, clock, due)


EARLY_AGAIN_AFTER = timedelta(seconds=1)


def stopping(ticket: Ticket, clock: str, now: datetime) -> None:
    """A clock is about to stop (the first response, a solve): a deadline already passed is
    breached now, whether or not its timer has fired (behind a backlog, lost with Redis,
    or a reply a few seconds late): the ticket says so, as the metrics do."""
    due = open_deadline(ticket, clock)
    if due is not None and now > due:  # (at the deadline itself: met, as the metrics say)
        breach(ticket, clock, at=now)


def responded(ticket: Ticket, at: datetime) -> None:
    """The ticket's first response (an agent's public reply, an answered call), at `at`: its
    clock stops (breached now if its deadline passed unnoticed) and the queue's deadline
    key moves to the resolution's."""
    stopping(ticket, "first_response", at)
    ticket.first_response_at = at
    refresh(ticket)


def warn(ticket: Ticket, clock: str, due: datetime) -> bool:
    """The warning before `due`: once per deadline, and only before the breach. A late one
    (its timer lost with Redis, or its worker busy) whose deadline has passed is dropped:
    the breach says more, and a warning after it would say the wrong thing."""
    if getattr(ticket, f"{clock}_breached") or _now() >= due or warned(ticket.id, clock, due):
        return False
    history.record(ticket, "sla.warning", clock=clock, due_at=due.isoformat())
    data = {"ticket": ticket_schema.dump(ticket), "clock": clock, "due_at": due.isoformat()}
    after_commit(lambda: emit("sla.warning", data, _rooms(ticket)))
    return True


def warned(ticket_id: int, clock: str, due: datetime) -> bool:
    """Whether the warning for this deadline was sent (the ticket's history says)."""
    for data in db.session.execute(select(TicketEvent.data).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.name == "sla.warning")).scalars():
        if data.get("clock") == clock and data.get("due_at") == due.isoformat():
            return True
    return False


def breach(ticket: Ticket, clock: str, at: datetime | None = None) -> bool:
    flag = f"{clock}_breached"
    if getattr(ticket, flag):
        return False
    setattr(ticket, flag, True)
    ticket.sla_breached = True
    history.record(ticket, "sla.breached", at=at, clock=clock)
    data = {"ticket": ticket_schema.dump(ticket), "clock": clock,
            "due_at": open_deadline(ticket, clock).isoformat()}
    after_commit(lambda: emit("sla.breached", data, _rooms(ticket)))
    return True


def _rooms(ticket: Ticket) -> list[str]:
    return [rooms.SUPERVISORS, *rooms.assignee(ticket)]


CALENDAR_STRETCH_SECONDS = 14 * 24 * 3600


def warnings_due() -> list[tuple[int, str, datetime]]:
    """The timers rebuilt from stored deadlines: running clocks past their warning point,
    before their deadline, not warned yet (a warning timer lost with Redis fires late)."""
    now = _now()
    policies = {policy.id: policy for policy in db.session.execute(select(SlaPolicy)).scalars()}
    horizon = max((max(p.first_response_seconds or 0, p.resolution_seconds or 0)
                   for p in policies.values()), default=0)
    if any(p.calendar for p in policies.values()):  # working hours stretch over nights,
        horizon += CALENDAR_STRETCH_SECONDS          # weekends and holidays
    until = now + timedelta(seconds=horizon)
    rows = db.session.execute(select(Ticket).where(
        Ticket.status.notin_(("solved", "closed")), Ticket.sla_policy_id.is_not(None),
        or_(Ticket.first_response_due_at.between(now, until),
            Ticket.resolution_due_at.between(now, until)))).scalars()
    found = []
    for ticket in rows:
        policy = policies.get(ticket.sla_policy_id)
        for clock in CLOCKS:
            due = open_deadline(ticket, clock)
            target = getattr(policy, f"{clock}_seconds") if policy else None
            if due is None or not target or due <= now or getattr(ticket, f"{clock}_breached"):
                continue
            if warning_point(ticket, clock, policy) <= now and \
                    not warned(ticket.id, clock, due):
                found.append((ticket.id, clock, due))
    return found


def overdue() -> list[tuple[int, str]]:
    """The safety net: running clocks past their deadline but not yet marked breached."""
    now = _now()
    rows = db.session.execute(select(Ticket).where(
        Ticket.status.notin_(("solved", "closed")),
        or_(Ticket.first_response_due_at < now, Ticket.resolution_due_at < now))).scalars()
    found = []
    for ticket in rows:
        for clock in CLOCKS:
            due = open_deadline(ticket, clock)
            if due is not None and due < now and not getattr(ticket, f"{clock}_breached"):
                found.append((ticket.id, clock))
    return found
