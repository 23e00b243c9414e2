"""Deliveries: every verified webhook, stored raw before it is acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow

DELIVERY_STATUSES = ("received", "processed", "duplicate", "failed")
WAITING = "status = 'received' AND attempts = 0"  # stored, never tried yet


class Delivery(db.Model):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("channel_id", "dedupe_key"),
        # Providers that sign a one-time token (Mailgun): a token is accepted once.
        UniqueConstraint("channel_id", "replay_token"),
        Index("ix_deliveries_status_received_at", "status", "received_at"),
        # What batch jobs claim, oldest first (migration 0009).
        Index("ix_deliveries_waiting", "id", postgresql_where=text(WAITING),
              sqlite_where=text(WAITING)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), index=True)
    provider: Mapped[str] = mapped_column(String(30))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    replay_token: Mapped[str | None] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10), default="POST")
    url: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255), default="")
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="received")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    # Runs that started processing it, committed before each run begins: a worker that dies
    # mid-run (SIGKILL, segfault, OOM) leaves its claim behind, and after
    # HELPDESK_DELIVERY_MAX_CLAIMS of them the delivery is quarantined as `failed`.
    claims: Mapped[int] = mapped_column(default=0, server_default="0")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The body's size, read only where asked for (the admins' listing): a page of 200
    # deliveries must not read 200 raw bodies of up to 50 MiB each.
    size: Mapped[int] = column_property(func.length(body), deferred=True)
