"""A priority a person set by hand, with what the urgency scorer saw (docs/urgency.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow


class UrgencyCorrection(db.Model):
    __tablename__ = "urgency_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    score: Mapped[int] = mapped_column()  # the ticket's urgency when the person chose
    scored_priority: Mapped[str] = mapped_column(String(10))  # the score's own bucket
    previous_priority: Mapped[str] = mapped_column(String(10))  # the ticket's, before
    chosen_priority: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list] = mapped_column(JSON, default=list)  # urgency_reasons then
    features: Mapped[dict] = mapped_column(JSON, default=dict)  # UrgencyFeatures.as_dict()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
