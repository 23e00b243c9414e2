"""Satisfaction surveys (CSAT, CES, NPS) sent after a ticket is solved."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow

SURVEY_KINDS = {"csat": (1, 5), "ces": (1, 7), "nps": (0, 10)}


class Survey(db.Model):
    __tablename__ = "surveys"
    __table_args__ = (Index("ix_surveys_customer_status", "customer_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    kind: Mapped[str] = mapped_column(String(10), default="csat")
    token: Mapped[str] = mapped_column(String(64), unique=True)
    # scheduled | sent | answered | skipped | failed
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    score: Mapped[int | None] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    answered_via: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
