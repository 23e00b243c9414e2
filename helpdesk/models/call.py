"""Phone calls: one row per provider call, built from its (out-of-order) callbacks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow

OUTCOMES = ("answered", "abandoned", "voicemail", "missed")
INBOUND_ABANDONED = "direction = 'inbound' AND outcome = 'abandoned'"


class Call(db.Model):
    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id"),
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_customer", "customer_id"),
        # Short abandons, which the abandoned-call rate leaves out (migration 0008).
        Index("ix_calls_abandoned_wait", "wait_seconds",
              postgresql_include=["started_at", "agent_id", "channel_id"],
              postgresql_where=text(INBOUND_ABANDONED), sqlite_where=text(INBOUND_ABANDONED)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    external_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10), default="inbound")
    status: Mapped[str | None] = mapped_column(String(20))
    status_rank: Mapped[int] = mapped_column(default=-1)
    sequence: Mapped[int] = mapped_column(default=-1)
    outcome: Mapped[str | None] = mapped_column(String(20))
    queue_result: Mapped[str | None] = mapped_column(String(40))
    dial_status: Mapped[str | None] = mapped_column(String(20))
    # Our TwiML ran (the incoming-call webhook was answered): a later unanswered end is an
    # abandon, not a miss.
    reached_us: Mapped[bool] = mapped_column(default=False)
    call_duration: Mapped[float | None] = mapped_column()
    wait_seconds: Mapped[float | None] = mapped_column()
    talk_seconds: Mapped[float | None] = mapped_column()
    recording_url: Mapped[str | None] = mapped_column(Text)
    transcript: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def waited_seconds(self) -> float | None:
        """The time waiting for an agent (API.md "Voice"): the queue time when Twilio gave
        one; a caller who hung up before reaching the queue waited the whole call (as the
        abandoned call rate counts it, services/metrics/parts.short_abandons)."""
        if self.wait_seconds is None and self.outcome == "abandoned":
            return self.call_duration
        return self.wait_seconds
