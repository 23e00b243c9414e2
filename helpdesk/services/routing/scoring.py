"""The routing job's rules: score urgency, set the priority, detect the language.

Tickets are scored in batches: whatever changes what a ticket's urgency depends on (a
customer's message, an unassignment, an escalation) calls `request_routing`, which marks the
ticket (`route_requested_at`) in the same transaction and makes sure a batch job will run.
The batch claims the oldest requests (`FOR UPDATE SKIP LOCKED` on PostgreSQL), loads the
facts of all of them in a few queries, scores each, and commits once, announcing every
changed ticket once and the queue once. A ticket changed while its batch runs is marked
again by that change (on PostgreSQL the change waits for the batch's row lock; on SQLite
for its write transaction), so the next batch scores it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache

from sqlalchemy import Integer, Select, bindparam, func, select, union_all, update
from sqlalchemy.exc import OperationalError

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import QUEUED_STATUSES, Call, Message, Ticket, TicketEvent
from helpdesk.outbox import events
from helpdesk.services import settings
from helpdesk.services.metrics import facts as ticket_facts
from helpdesk.services.routing import assignment, queue_updates
from helpdesk.services.routing.urgency import (
    LANGUAGE_PREFIX_CHARS,
    SENDER_PRIORITIES,
    UrgencyConfig,
    UrgencyFacts,
    bounded_text,
    detect_language,
    load_urgency_config,
    score_urgency,
)
from helpdesk.services.sla import clocks as sla
from helpdesk.services.tickets import history
from helpdesk.transaction import commit

log = logging.getLogger(__name__)

RECENT_TEXTS = 5
TEXT_PREFIX_CHARS = 8000  # per message; the scorer itself reads at most its prefix_chars
SENDER_RANK = {level: rank for rank, level in enumerate(SENDER_PRIORITIES)}
CONTACT_WINDOW = timedelta(hours=24)
BATCH_SIZE = {"postgresql": 500}
DEFAULT_BATCH_SIZE = 200  # SQLite: the batch holds the one write lock while it runs
TIME_BUDGET_SECONDS = 5.0  # then the job hands over to a fresh one
RETRY_FAILED_AFTER = timedelta(minutes=5)  # a ticket the scorer failed on, alone
# A request is stamped with the clock of the process that asks (a web replica, a worker):
# one due within this much of the routing worker's clock is due (a deferral is far later).
CLOCK_SLACK = timedelta(seconds=60)


@lru_cache(maxsize=4)
def urgency_config(path: str | None) -> UrgencyConfig:
    return load_urgency_config(path)


def recent_contacts(customer_ids: Iterable[int], now: datetime) -> dict[int, int]:
    """Contacts in 24 h across channels, per customer: distinct (ticket, channel) with a
    customer message, plus their phone calls (each call one contact: answered, missed or
    abandoned; a voicemail is counted by its message), in one query for all of them."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    counts = dict.fromkeys(ids, 0)
    counts.update(db.session.execute(_contacts_statement(),
                                     {"ids": ids, "since": now - CONTACT_WINDOW}).all())
    return counts


@cache
def _contacts_statement() -> Select:
    """Built once (a lone routing batch spent a tenth of its time building its queries)."""
    ids, since = bindparam("ids", expanding=True), bindparam("since")
    pairs = (select(Ticket.customer_id, Message.ticket_id, Message.channel_id).distinct()
             .join(Ticket, Ticket.id == Message.ticket_id)
             .where(Ticket.customer_id.in_(ids), Message.direction == "inbound",
                    Message.created_at >= since)).subquery()
    calls = (select(Call.customer_id.label("customer_id"), func.count().label("n"))
             .where(Call.customer_id.in_(ids), Call.direction == "inbound",
                    Call.started_at >= since, Call.outcome.is_distinct_from("voicemail"))
             .group_by(Call.customer_id))
    counted = union_all(
        select(pairs.c.customer_id, func.count().label("n")).group_by(pairs.c.customer_id),
        calls).subquery()
    return select(counted.c.customer_id, func.sum(counted.c.n).cast(Integer)).group_by(
        counted.c.customer_id)


def _recent_texts(ticket_ids: list[int]) -> dict[int, list[tuple[str, str | None]]]:
    """Each ticket's last RECENT_TEXTS customer messages, oldest first, as (a prefix of the
    text, the sender's priority flag); one query for all of them. Only a prefix of each
    message leaves the database: scoring reads a bounded prefix."""
    found: dict[int, list[tuple[str, str | None]]] = {ticket_id: [] for ticket_id in ticket_ids}
    for ticket_id, text, flag in db.session.execute(_texts_statement(), {"ids": ticket_ids}):
        found[ticket_id].append((text or "", flag))
    return found


@cache
def _texts_statement() -> Select:
    ranked = (select(Message.ticket_id, func.substr(Message.text, 1, TEXT_PREFIX_CHARS)
                     .label("text"), Message.sender_priority,
                     func.row_number().over(partition_by=Message.ticket_id,
                                            order_by=(Message.created_at.desc(),
                                                      Message.id.desc())).label("n"))
              .where(Message.ticket_id.in_(bindparam("ids", expanding=True)),
                     Message.direction == "inbound")
              .subquery())
    return (select(ranked.c.ticket_id, ranked.c.text, ranked.c.sender_priority)
            .where(ranked.c.n <= RECENT_TEXTS).order_by(ranked.c.ticket_id, ranked.c.n.desc()))


def load_facts(tickets: Sequence[Ticket], now: datetime) -> dict[int, UrgencyFacts]:
    """What the scorer needs to know about each ticket, in two queries for all of them
    (the customer and the channel come with the ticket)."""
    if not tickets:
        return {}
    texts_of = _recent_texts([ticket.id for ticket in tickets])
    contacts = recent_contacts((ticket.customer_id for ticket in tickets), now)
    facts = {}
    for ticket in tickets:
        rows = texts_of[ticket.id]
        texts = [text for text, _ in rows]
        subject = (ticket.subject or "").strip()
        if subject and not any(text.lstrip().startswith(subject) for text in texts):
            texts.insert(0, subject)  # an email's subject often says it first ("Hacked!")
        flags = [flag for _, flag in rows if flag in SENDER_RANK]
        seconds_left = target = None
        due = sla.nearest_due(ticket)
        if due is not None:
            seconds_left = (due - now).total_seconds()
            target = (due - ticket.created_at).total_seconds()
        facts[ticket.id] = UrgencyFacts(
            channel_kind=ticket.channel.kind, texts=texts, tier=ticket.customer.tier,
            recent_contacts=contacts[ticket.customer_id], seconds_to_deadline=seconds_left,
            sla_target_seconds=target,
            sender_priority=max(flags, key=SENDER_RANK.get) if flags else None)
    return facts


def urgency_facts(ticket: Ticket, now: datetime) -> UrgencyFacts:
    return load_facts([ticket], now)[ticket.id]


def score_ticket(ticket: Ticket, config_path: str | None = None,
                 facts: UrgencyFacts | None = None) -> bool:
    """Re-score `ticket` (from `facts` when the caller loaded them with others); True when
    its urgency, priority or language changed."""
    now = datetime.now(UTC)
    if facts is None:
        facts = urgency_facts(ticket, now)
    result = score_urgency(facts, urgency_config(config_path))
    reasons = [{"factor": r.factor, "points": r.points, "detail": r.detail}
               for r in result.reasons]
    language = ticket.language or detect_language(bounded_text(facts.texts,
                                                               LANGUAGE_PREFIX_CHARS))
    changed = (ticket.urgency, ticket.urgency_reasons, ticket.language) != (
        result.score, reasons, language)
    ticket.urgency, ticket.urgency_reasons, ticket.language = result.score, reasons, language
    if not ticket.priority_manual and ticket.priority != result.priority:
        history.record(ticket, "priority.changed", **{"from": ticket.priority,
                                                      "to": result.priority,
                                                      "urgency": result.score})
        ticket.set_priority(result.priority)
        sla.apply_policy(ticket)
        if ticket.solved_at is not None:  # its solve's deadlines moved (a rare re-score)
            ticket_facts.changed(ticket)
        changed = True
    return changed


def request_routing(ticket: Ticket) -> None:
    """Ask for `ticket` to be (re)scored once this transaction commits: the routing batch
    claims it. Always a new value, so the row is written (and, on PostgreSQL, waits for a
    batch scoring it right now: that batch's commit cannot clear this request)."""
    ticket.route_requested_at = datetime.now(UTC)
    jobs.ROUTE_TICKETS.enqueue_unless_pending_after_commit()


def request_routing_of_customers(customer_ids: Iterable[int]) -> None:
    """Ask for these customers' waiting tickets to be scored again (`request_routing`): a
    new contact elsewhere (another ticket, an abandoned call) changed their repeat-contact
    factor, a merge perhaps their tier. One statement."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    db.session.execute(update(Ticket).where(
        Ticket.customer_id.in_(ids), Ticket.status.in_(QUEUED_STATUSES)).values(
        route_requested_at=datetime.now(UTC)), execution_options={"synchronize_session": False})
    jobs.ROUTE_TICKETS.enqueue_unless_pending_after_commit()


def _signal_batch() -> None:
    jobs.ROUTE_TICKETS.enqueue_unless_pending()


def batch_size() -> int:
    return BATCH_SIZE.get(db.session.get_bind().dialect.name, DEFAULT_BATCH_SIZE)


def route_waiting(config_path: str | None = None) -> int:
    """The routing batch job: score the tickets waiting for it until none are left (or the
    time budget is spent, then a fresh job takes over); how many were scored."""
    jobs.ROUTE_TICKETS.started()
    limit, started, total = batch_size(), time.monotonic(), 0
    while True:
        count, more = route_batch(limit, config_path)
        total += count
        if not more:
            return total
        _signal_batch()  # a backlog: another worker may share it
        if time.monotonic() - started >= TIME_BUDGET_SECONDS:
            return total


def due_until() -> datetime:
    """Requests stamped up to this moment are due (CLOCK_SLACK); a later one is deferred."""
    return datetime.now(UTC) + CLOCK_SLACK


def claim(limit: int) -> tuple[list[Ticket], bool]:
    """The oldest routing requests, locked for this batch (`SKIP LOCKED` on PostgreSQL, so
    workers never share a ticket; SQLite's write transaction keeps everyone out), with their
    customer and channel; and whether more may be waiting."""
    waiting = (select(Ticket.id).where(Ticket.route_requested_at <= due_until())
               .order_by(Ticket.route_requested_at, Ticket.id).limit(limit))
    if db.session.get_bind().dialect.name == "postgresql":
        waiting = waiting.with_for_update(skip_locked=True)
    ids = list(db.session.execute(waiting).scalars())
    if not ids:
        return [], False
    tickets = list(db.session.execute(select(Ticket).where(Ticket.id.in_(ids))
                                      .order_by(Ticket.id)).unique().scalars())
    return tickets, len(ids) == limit


def route_batch(limit: int, config_path: str | None = None) -> tuple[int, bool]:
    """Claim up to `limit` tickets waiting to be scored, score them from facts loaded for
    all of them at once, and commit once; every changed ticket is announced once, the
    queue once. A ticket changed while this runs asks again and is scored by the next batch.
    How many were claimed, and whether more may be waiting."""
    # What an earlier batch of this job loaded is not read again from the identity map (it
    # keeps objects past commit): a ticket an agent claimed since would look unassigned.
    db.session.expunge_all()
    tickets, more = claim(limit)
    if not tickets:
        db.session.rollback()
        return 0, False
    ids = [ticket.id for ticket in tickets]
    try:
        for ticket in tickets:
            ticket.route_requested_at = None
        live = [ticket for ticket in tickets if ticket.status != "closed"]
        _route(live, _claimed_facts(live), config_path)
        commit()
    except OperationalError:  # the database (a deadlock, a lost connection): the job retries
        raise
    except Exception:
        # One ticket the scorer cannot take must not hold up every other one (the batch
        # claims the oldest requests first: it would fail on it forever).
        db.session.rollback()
        log.warning("a routing batch of %d tickets failed; scoring them one by one",
                    len(ids), exc_info=True)
        for ticket_id in ids:
            _route_alone(ticket_id, config_path)
    return len(ids), more


def _route_alone(ticket_id: int, config_path: str | None) -> None:
    """`route_ticket`; a ticket that fails even alone keeps its priority and its request,
    put RETRY_FAILED_AFTER ahead (batches claim only requests that are due, so it holds up
    no other ticket), and its history says so the first time (`routing.failed`).
    Nothing is given up: a cause that fails every ticket (a broken urgency configuration)
    leaves them all asking, scored once it is mended."""
    try:
        route_ticket(ticket_id, config_path)
    except OperationalError:
        raise
    except Exception as exc:
        db.session.rollback()
        log.exception("ticket %s could not be scored; trying again in %d s", ticket_id,
                      RETRY_FAILED_AFTER.total_seconds())
        ticket = db.session.get(Ticket, ticket_id)
        if ticket is not None:
            ticket.route_requested_at = datetime.now(UTC) + RETRY_FAILED_AFTER
            recorded = db.session.execute(select(TicketEvent.id).where(
                TicketEvent.ticket_id == ticket_id, TicketEvent.name == "routing.failed")
                .limit(1)).first()
            if recorded is None:  # (once: the log has every attempt)
                history.record(ticket, "routing.failed", error=type(exc).__name__)
        commit()


def _claimed_facts(tickets: Sequence[Ticket]) -> dict[int, UrgencyFacts]:
    """`load_facts` for claimed tickets whose only change so far is their cleared request:
    that change waits for the scores (one UPDATE per ticket, not two)."""
    with db.session.no_autoflush:
        return load_facts(tickets, datetime.now(UTC))


def _route(tickets: Sequence[Ticket], facts: dict[int, UrgencyFacts],
           config_path: str | None) -> None:
    # Reading a policy flushes nothing: each ticket's changes go out in one UPDATE.
    with sla.policies_cached(), db.session.no_autoflush:
        changed = {ticket.id for ticket in tickets
                   if score_ticket(ticket, config_path, facts[ticket.id])}
    if settings.get("routing_mode") == "push":
        # The most urgent first: capacity goes to what matters most.
        for ticket in sorted(tickets, key=lambda t: (-t.priority_rank, -t.urgency, t.id)):
            if assignment.push_assign(ticket):
                changed.discard(ticket.id)  # give() announced it with the new score
    queue_moved = False
    for ticket in tickets:
        if ticket.id in changed:
            events.ticket_changed(ticket)
            queue_moved |= ticket.assignee_id is None and ticket.status in QUEUED_STATUSES
    if queue_moved:
        queue_updates.queue_changed()


def route_ticket(ticket_id: int, config_path: str | None = None) -> None:
    """Score one ticket now and tell everyone watching if anything moved (the routing
    batch's work for a single ticket, for callers that must not wait for a batch)."""
    ticket = db.session.execute(select(Ticket).where(Ticket.id == ticket_id)
                                .with_for_update(of=Ticket)).unique().scalar_one_or_none()
    if ticket is None or ticket.status == "closed":
        db.session.rollback()
        return
    ticket.route_requested_at = None
    _route([ticket], _claimed_facts([ticket]), config_path)
    commit()


def sla_timer(ticket_id: int, clock: str, kind: str, due_iso: str,
              config_path: str | None = None) -> bool:
    """An SLA timer fired: warn, or breach and re-score (a breach raises urgency). Not at
    the warning: its points could raise the priority, whose policy moves the deadlines
    (a stricter one's already past: breached at the warning)."""
    fired = sla.fire(ticket_id, clock, kind, due_iso)
    if fired and kind == "breach":
        ticket = db.session.get(Ticket, ticket_id)
        score_ticket(ticket, config_path)
        events.ticket_changed(ticket)
        queue_updates.queue_changed()
    commit()
    return fired


def sweep_overdue(config_path: str | None = None) -> int:
    """Safety net for lost timers, rebuilt from the stored deadlines: breach running clocks
    already past their deadline, warn those past their warning point (each once)."""
    found = sla.overdue()
    warnings = sla.warnings_due()
    db.session.rollback()
    for ticket_id, clock in found:
        due = sla.open_deadline(db.session.get(Ticket, ticket_id), clock)
        if due is None:  # stopped, or (an earlier breach re-scored it) without a policy now
            continue
        sla_timer(ticket_id, clock, "breach", due.isoformat(), config_path)
    for ticket_id, clock, due in warnings:
        sla_timer(ticket_id, clock, "warning", due.isoformat(), config_path)
    return len(found) + len(warnings)


def sweep_requested() -> bool:
    """Safety net for a lost batch job (Redis was down at the commit), and the retry of a
    ticket the scorer failed on: tickets whose request is due make sure a batch job will
    run; True when some were waiting."""
    waiting = db.session.execute(
        select(Ticket.id).where(Ticket.route_requested_at <= due_until())
        .limit(1)).first() is not None
    db.session.rollback()
    if waiting:
        _signal_batch()
    return waiting
