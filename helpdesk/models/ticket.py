"""Tickets and their append-only event log."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow
from helpdesk.models.channel import Channel
from helpdesk.models.customer import Customer

STATUSES = ("new", "open", "pending", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_RANK = {name: rank for rank, name in enumerate(PRIORITIES)}
QUEUED_STATUSES = ("new", "open")  # waiting in the queue while unassigned
# Statuses that take an assignee's capacity: the same ones (pending waits on the customer).
WORKING_STATUSES = QUEUED_STATUSES
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        # The queue: unassigned new/open tickets in queue order, walked from the top.
        Index("ix_tickets_queue_order", text("priority_rank DESC"), "sla_due_at", "created_at",
              "id",
              postgresql_where=text("assignee_id IS NULL AND status IN ('new', 'open')"),
              sqlite_where=text("assignee_id IS NULL AND status IN ('new', 'open')")),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_customer_activity", "customer_id", "last_activity_at"),
        Index("ix_tickets_thread", "channel_id", "thread_key"),
        # Solved tickets by their solve: the sweeper closes them after the reopen window.
        Index("ix_tickets_solved_at", "solved_at",
              postgresql_where=text("status = 'solved'"),
              sqlite_where=text("status = 'solved'")),
        # Tickets waiting for the routing batch to (re)score them, oldest request first.
        Index("ix_tickets_route_requested", "route_requested_at", "id",
              postgresql_where=text("route_requested_at IS NOT NULL"),
              sqlite_where=text("route_requested_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="new")
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    priority_rank: Mapped[int] = mapped_column(default=PRIORITY_RANK["normal"])
    priority_manual: Mapped[bool] = mapped_column(default=False)
    level: Mapped[int] = mapped_column(default=1)
    max_level: Mapped[int] = mapped_column(default=1)
    urgency: Mapped[int] = mapped_column(default=0)
    urgency_reasons: Mapped[list] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(10))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    contact_reason: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    identity_verified: Mapped[bool] = mapped_column(default=True)
    thread_key: Mapped[str | None] = mapped_column(String(255))
    previous_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The queue's deadline key; NO_DEADLINE (not NULL) sorts last and keeps the index usable.
    sla_due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=lambda: NO_DEADLINE)
    sla_breached: Mapped[bool] = mapped_column(default=False)
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id"))
    first_response_breached: Mapped[bool] = mapped_column(default=False)
    resolution_breached: Mapped[bool] = mapped_column(default=False)
    # The resolution clock stops while the ticket waits on the customer.
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_seconds: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    route_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # to (re)score

    customer: Mapped[Customer] = relationship(lazy="joined")
    channel: Mapped[Channel] = relationship(lazy="joined")

    def set_priority(self, priority: str) -> None:
        self.priority = priority
        self.priority_rank = PRIORITY_RANK[priority]


class TicketEvent(db.Model):
    """Append-only: who changed what on a ticket, and when."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    actor_type: Mapped[str] = mapped_column(String(20), default="system")
    actor_id: Mapped[int | None] = mapped_column()
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Set where the event and its new ticket are written by one flush (an ingest batch).
    ticket: Mapped[Ticket] = relationship()
