"""A solved ticket's last days: it may be reopened within the reopen window, and is closed
once the window has passed (DESIGN.md: `solved` → `closed`, no reopen after the window).

The window is `HELPDESK_REOPEN_WINDOW_SECONDS` (7 days). Within it a customer's reply
reopens the ticket (`ingest.conversations`) and an agent may set it back to open; after it a
customer's reply opens a new ticket linked to this one, an agent's status change is refused,
and the sweeper closes the ticket (`tickets.actions.close_solved_past_window`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Select, select

from helpdesk.models import Ticket


def reopen_window() -> timedelta:
    return timedelta(seconds=current_app.config["REOPEN_WINDOW_SECONDS"])


def can_reopen(ticket: Ticket, now: datetime) -> bool:
    """Whether a reply (or an agent) may still take `ticket` back from where it is."""
    if ticket.status == "closed":
        return False
    if ticket.status != "solved" or ticket.solved_at is None:
        return True
    return ticket.solved_at + reopen_window() >= now


def closing_due(now: datetime, limit: int) -> Select:
    """Solved tickets whose reopen window has passed, oldest solve first (through the
    partial index on solved tickets' `solved_at`)."""
    return (select(Ticket.id)
            .where(Ticket.status == "solved", Ticket.solved_at < now - reopen_window())
            .order_by(Ticket.solved_at, Ticket.id).limit(limit))
