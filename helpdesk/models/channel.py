"""Channels: one configured provider endpoint (a mailbox, a number, a page)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow
from helpdesk.models.encrypted import EncryptedJSON

KINDS = ("email", "chat", "voice", "sms", "whatsapp", "messenger", "instagram",
         "telegram", "x", "api")


class Channel(db.Model):
    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    # Write-only through the API; never serialized or logged; encrypted at rest.
    secrets: Mapped[dict] = mapped_column(EncryptedJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:  # secrets stay out of reprs and logs
        return f"<Channel {self.id} {self.provider}/{self.kind}>"
