"""Per-ticket metric facts: one row per resolution cycle, derived from the stored history.

Hooks (`changed`) mark a ticket when it is solved, reopened or its handle time grows; just
before the transaction commits, its facts are recomputed from its events, messages, calls and
work sessions. `rebuild` runs the same computation over every ticket, so the stored facts are
always what the history says (DESIGN.md "Metric definitions").
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from sqlalchemy import func, null, select
from sqlalchemy.orm import Session

from helpdesk.extensions import db
from helpdesk.models import Call, Message, Ticket, TicketEvent, TicketFact, WorkSession
from helpdesk.models.base import ERASED
from helpdesk.services import settings
from helpdesk.services.metrics.cycles import FACT_EVENTS, History, build_facts
from helpdesk.services.tickets import contact_reasons
from helpdesk.transaction import listen, on_rollback

log = logging.getLogger(__name__)
_DIRTY = "helpdesk.ticket_facts.dirty"
CHUNK = 500


def changed(ticket: Ticket | int) -> None:
    """Hook: recompute this ticket's facts just before the current transaction commits."""
    ticket_id = ticket if isinstance(ticket, int) else ticket.id
    db.session.info.setdefault(_DIRTY, set()).add(ticket_id)


def _refresh_marked(session: Session) -> None:
    if session.in_nested_transaction():  # (a savepoint's commit: the transaction's own comes)
        return
    ids = session.info.pop(_DIRTY, None)
    if not ids:
        return
    try:
        with session.begin_nested():  # a failure here must not lose the ticket change itself
            refresh(sorted(ids), session)
    except Exception:
        log.exception("ticket facts not refreshed for %s (run `helpdesk metrics rebuild`)",
                      sorted(ids))


def _drop_marked(session: Session) -> None:
    session.info.pop(_DIRTY, None)


def refresh(ticket_ids: list[int], session: Session | None = None) -> int:
    """Recompute and store the facts of these tickets; the number of fact rows written."""
    session = session or db.session
    reasoner, has_rules = _reasoner()
    histories = load_histories(session, ticket_ids, texts=has_rules)
    existing: dict[int, dict[int, TicketFact]] = defaultdict(dict)
    for fact in session.execute(select(TicketFact).where(
            TicketFact.ticket_id.in_(ticket_ids))).scalars():
        existing[fact.ticket_id][fact.cycle] = fact
    written = 0
    for ticket_id in ticket_ids:
        history = histories.get(ticket_id)
        rows = build_facts(history, reasoner) if history else []
        if history and _erased(history):
            _keep_suggested_reasons(rows, existing[ticket_id])
        written += _store(session, ticket_id, rows, existing[ticket_id])
    session.flush()
    return written


def _erased(history: History) -> bool:
    return history.subject == ERASED or ERASED in history.texts


def _keep_suggested_reasons(rows: list[dict], existing: dict[int, TicketFact]) -> None:
    """A ticket whose customer was erased: its texts are gone, and with them what a reason
    was suggested from; the facts keep the reason suggested before (erasure keeps the
    anonymous metric facts), or a later recompute (the sweeper closing the ticket, a work
    session ending, a rebuild) would move its solve out of the Pareto of its period."""
    for row in rows:
        before = existing.get(row["cycle"])
        if (row["contact_reason"] is None and before is not None
                and before.contact_reason_suggested):
            row["contact_reason"] = before.contact_reason
            row["contact_reason_suggested"] = True


def _store(session: Session, ticket_id: int, rows: list[dict],
           existing: dict[int, TicketFact]) -> int:
    for row in rows:
        fact = existing.pop(row["cycle"], None)
        if fact is None:
            session.add(TicketFact(ticket_id=ticket_id, **row))
            continue
        for name, value in row.items():
            if getattr(fact, name) != value:
                setattr(fact, name, value)
    for stale in existing.values():
        session.delete(stale)
    return len(rows)


def _reasoner() -> tuple[Callable[[list[str]], str | None], bool]:
    """suggest(texts) → a configured reason for a ticket solved without one; any rules?"""
    rules = settings.get("contact_reason_rules") or {}
    allowed = settings.get("contact_reasons") or []
    if allowed:
        rules = {reason: words for reason, words in rules.items() if reason in allowed}

    def suggest(texts: Iterable[str]) -> str | None:
        return contact_reasons.suggest("\n".join(texts), rules) if rules else None

    return suggest, bool(rules)


def load_histories(session: Session, ticket_ids: list[int],
                   texts: bool = True) -> dict[int, History]:
    """Everything the facts of these tickets depend on, in a handful of queries."""
    histories = {t.id: History.of(t) for t in session.execute(
        select(Ticket).where(Ticket.id.in_(ticket_ids))).scalars()}
    for row in session.execute(
            select(TicketEvent.ticket_id, TicketEvent.name, TicketEvent.created_at,
                   TicketEvent.data)
            .where(TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.name.in_(FACT_EVENTS))
            .order_by(TicketEvent.id)):
        histories[row.ticket_id].events.append((row.name, row.created_at, row.data or {}))
    _load_messages(session, ticket_ids, histories, texts)
    _load_calls(session, ticket_ids, histories)
    for row in session.execute(
            select(WorkSession.ticket_id, WorkSession.started_at, WorkSession.ended_at)
            .where(WorkSession.ticket_id.in_(ticket_ids), WorkSession.ended_at.is_not(None))):
        histories[row.ticket_id].sessions.append((row.started_at, row.ended_at))
    return histories


def _load_messages(session: Session, ticket_ids: list[int], histories: dict[int, History],
                   texts: bool) -> None:
    # Bodies only to suggest reasons, and only their first lines (bounded work per message).
    text = (func.substr(Message.text, 1, contact_reasons.SUGGESTED_FROM_CHARS).label("text")
            if texts else null().label("text"))
    for row in session.execute(
            select(Message.ticket_id, Message.created_at, Message.direction,
                   Message.author_type, text)
            .where(Message.ticket_id.in_(ticket_ids), Message.internal.is_(False))
            .order_by(Message.created_at, Message.id)):
        history = histories[row.ticket_id]
        if row.direction == "outbound" and row.author_type == "agent":
            history.replies.append(row.created_at)
        elif row.direction == "inbound" and row.author_type == "customer":
            history.contacts.append(row.created_at)
            history.texts.append(row.text or "")


def _load_calls(session: Session, ticket_ids: list[int],
                histories: dict[int, History]) -> None:
    for row in session.execute(
            select(Call.ticket_id, Call.direction, Call.outcome, Call.started_at,
                   Call.answered_at, Call.wait_seconds)
            .where(Call.ticket_id.in_(ticket_ids))):
        history = histories[row.ticket_id]
        if row.direction == "inbound":
            history.contacts.append(row.started_at)
        if row.outcome == "answered":
            history.add_answer(row.started_at, row.answered_at, row.wait_seconds)


def rebuild(progress: Callable[[int], object] | None = None) -> int:
    """Recompute every ticket's facts from its history (`helpdesk metrics rebuild`);
    `progress(n)` after each chunk of n tickets."""
    session = db.session
    last_id, written = 0, 0
    while True:
        ids = list(session.execute(
            select(Ticket.id).where(Ticket.id > last_id).order_by(Ticket.id).limit(CHUNK)
        ).scalars())
        if not ids:
            break
        written += refresh(ids, session)
        session.commit()
        last_id = ids[-1]
        if progress:
            progress(len(ids))
    session.commit()
    return written


def init_app(_app: object) -> None:
    """Wire the hooks: marked tickets' facts are recomputed just before a commit, and
    forgotten when it rolls back."""
    listen(Session, "before_commit", _refresh_marked)
    on_rollback(_drop_marked)
