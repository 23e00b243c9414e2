"""Metric facts: one row per resolution cycle of a ticket, recorded when it is solved.

A cycle runs from the ticket's creation (or its reopening) to its solve; a reopen marks the
cycle's row and starts the next one. Every value is derived from stored tickets, events,
messages, calls and work sessions, so `helpdesk metrics rebuild` reproduces the rows exactly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime
from helpdesk.models.ticket import Ticket

UNSOLVED = "status IN ('new', 'open', 'pending')"
AUTO_CLOSED = "status = 'closed' AND solved_at IS NULL"
FRT_COUNTED = {"postgresql_where": text("frt_counted"), "sqlite_where": text("frt_counted")}


def _utc_day(column: str) -> str:
    """services/metrics_sql.day_of on PostgreSQL, as an index expression."""
    return f"(CAST(timezone('UTC', {column}) AS DATE))"


class TicketFact(db.Model):
    __tablename__ = "ticket_facts"
    __table_args__ = (
        UniqueConstraint("ticket_id", "cycle"),
        # A span's facts without the table (index-only on PostgreSQL; migration 0008).
        Index("ix_ticket_facts_solved_at", "solved_at", postgresql_include=[
            "ticket_id", "assignee_id", "channel_id", "resolution_seconds",
            "resolution_bucket"]),
        Index("ix_ticket_facts_reopened_at", "reopened_at",
              postgresql_where=text("reopened_at IS NOT NULL"),
              sqlite_where=text("reopened_at IS NOT NULL")),
        # FRT counts each ticket once, on the cycle in which its first response was known.
        Index("ix_ticket_facts_first_response_at", "first_response_at", postgresql_include=[
            "assignee_id", "channel_id", "first_response_seconds", "frt_bucket"],
            **FRT_COUNTED),
        # Resolution times in order, overall and per agent or channel (migration 0007): the
        # percentiles read one bucket's values in order from these (index-only on PostgreSQL).
        Index("ix_ticket_facts_resolution_order", "resolution_seconds",
              postgresql_include=["solved_at"]),
        Index("ix_ticket_facts_agent_resolution_order", "assignee_id", "resolution_seconds",
              postgresql_include=["solved_at"]),
        Index("ix_ticket_facts_channel_resolution_order", "channel_id", "resolution_seconds",
              postgresql_include=["solved_at"]),
        # Per UTC day too (migration 0008; PostgreSQL only: the expression is its own).
        Index("ix_ticket_facts_day_resolution_order", text(_utc_day("solved_at")),
              "resolution_seconds", postgresql_include=["solved_at"]
              ).ddl_if(dialect="postgresql"),
        # The same four orders for first-response times, over the cycles that count them.
        Index("ix_ticket_facts_frt_order", "first_response_seconds",
              postgresql_include=["first_response_at"], **FRT_COUNTED),
        Index("ix_ticket_facts_agent_frt_order", "assignee_id", "first_response_seconds",
              postgresql_include=["first_response_at"], **FRT_COUNTED),
        Index("ix_ticket_facts_channel_frt_order", "channel_id", "first_response_seconds",
              postgresql_include=["first_response_at"], **FRT_COUNTED),
        Index("ix_ticket_facts_day_frt_order", text(_utc_day("first_response_at")),
              "first_response_seconds", postgresql_include=["first_response_at"],
              **FRT_COUNTED).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    cycle: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    solved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Reopened within the first-contact-resolution window (7 days) after this solve.
    reopened: Mapped[bool] = mapped_column(default=False)
    channel_id: Mapped[int] = mapped_column()
    assignee_id: Mapped[int | None] = mapped_column()
    contact_reason: Mapped[str | None] = mapped_column(String(200))
    contact_reason_suggested: Mapped[bool] = mapped_column(default=False)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_seconds: Mapped[float | None] = mapped_column()
    frt_counted: Mapped[bool] = mapped_column(default=False)
    resolution_seconds: Mapped[float] = mapped_column(default=0.0)
    # Value buckets of the two times (services/metrics/buckets.py), for exact percentiles.
    resolution_bucket: Mapped[int] = mapped_column(default=1)
    frt_bucket: Mapped[int | None] = mapped_column()
    pending_seconds: Mapped[float] = mapped_column(default=0.0)
    handle_seconds: Mapped[float] = mapped_column(default=0.0)
    max_level: Mapped[int] = mapped_column(default=1)
    public_replies: Mapped[int] = mapped_column(default=0)
    sla_policy_id: Mapped[int | None] = mapped_column()
    sla_met: Mapped[bool | None] = mapped_column()


# Indexes the metrics need on the tickets table (declared here, created by migration 0006).
Index("ix_tickets_created_at", Ticket.created_at)
Index("ix_tickets_unsolved", Ticket.first_response_at,
      postgresql_where=text(UNSOLVED), sqlite_where=text(UNSOLVED))
Index("ix_tickets_auto_closed", Ticket.created_at,
      postgresql_where=text(AUTO_CLOSED), sqlite_where=text(AUTO_CLOSED))
