"""The routing job's rules: score urgency, set the priority, detect the language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import QUEUED_STATUSES, Customer, Message, Ticket
from helpdesk.outbox import events
from helpdesk.services import settings
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

RECENT_TEXTS = 5
TEXT_PREFIX_CHARS = 8000  # per message; the scorer itself reads at most its prefix_chars
SENDER_RANK = {level: rank for rank, level in enumerate(SENDER_PRIORITIES)}
CONTACT_WINDOW = timedelta(hours=24)


@lru_cache(maxsize=4)
def urgency_config(path: str | None) -> UrgencyConfig:
    return load_urgency_config(path)


def recent_contacts(customer_id: int, now: datetime) -> int:
    """Contacts in 24 h across channels: distinct (ticket, channel) with a customer message."""
    pairs = (select(Message.ticket_id, Message.channel_id).distinct()
             .join(Ticket, Ticket.id == Message.ticket_id)
             .where(Ticket.customer_id == customer_id, Message.direction == "inbound",
                    Message.created_at >= now - CONTACT_WINDOW))
    return db.session.execute(select(func.count()).select_from(pairs.subquery())).scalar_one()


def urgency_facts(ticket: Ticket, now: datetime) -> UrgencyFacts:
    # Only a prefix of each message leaves the database: scoring reads a bounded prefix.
    rows = db.session.execute(
        select(func.substr(Message.text, 1, TEXT_PREFIX_CHARS), Message.sender_priority)
        .where(Message.ticket_id == ticket.id, Message.direction == "inbound")
        .order_by(Message.created_at.desc()).limit(RECENT_TEXTS)).all()
    texts = list(reversed([text or "" for text, _ in rows]))
    subject = (ticket.subject or "").strip()
    if subject and not any(text.lstrip().startswith(subject) for text in texts):
        texts.insert(0, subject)  # an email's subject often says it first ("Hacked!")
    flags = [flag for _, flag in rows if flag in SENDER_RANK]
    customer = db.session.get(Customer, ticket.customer_id)
    seconds_left = target = None
    due = sla.nearest_due(ticket)
    if due is not None:
        seconds_left = (due - now).total_seconds()
        target = (due - ticket.created_at).total_seconds()
    return UrgencyFacts(channel_kind=ticket.channel.kind, texts=texts,
                        tier=customer.tier, recent_contacts=recent_contacts(customer.id, now),
                        seconds_to_deadline=seconds_left, sla_target_seconds=target,
                        sender_priority=max(flags, key=SENDER_RANK.get) if flags else None)


def score_ticket(ticket: Ticket, config_path: str | None = None) -> bool:
    """Re-score `ticket`; True when its urgency, priority or language changed."""
    now = datetime.now(UTC)
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
        changed = True
    return changed


def route_ticket(ticket_id: int, config_path: str | None = None) -> None:
    """Score a ticket and tell everyone watching if anything moved."""
    ticket = db.session.execute(select(Ticket).where(Ticket.id == ticket_id)
                                .with_for_update(of=Ticket)).scalar_one_or_none()
    if ticket is None or ticket.status == "closed":
        db.session.rollback()
        return
    changed = score_ticket(ticket, config_path)
    if settings.get("routing_mode") == "push" and assignment.push_assign(ticket):
        changed = False  # give() announced the assignment with the new score
    if changed:
        events.ticket_changed(ticket)
        if ticket.assignee_id is None and ticket.status in QUEUED_STATUSES:
            queue_updates.queue_changed()
    commit()


def sla_timer(ticket_id: int, clock: str, kind: str, due_iso: str,
              config_path: str | None = None) -> bool:
    """An SLA timer fired: warn, or breach and re-score (a breach raises urgency)."""
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
        sla_timer(ticket_id, clock, "breach", due.isoformat(), config_path)
    for ticket_id, clock, due in warnings:
        sla_timer(ticket_id, clock, "warning", due.isoformat(), config_path)
    return len(found) + len(warnings)
