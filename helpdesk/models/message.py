"""Messages on a ticket (customer's, agents' replies and internal notes) and attachments."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.extensions import db
from helpdesk.models.base import UTCDateTime, utcnow
from helpdesk.models.channel import Channel

if TYPE_CHECKING:
    from helpdesk.models.ticket import Ticket

MESSAGE_DELIVERY_STATUSES = ("received", "queued", "sent", "delivered", "read", "failed", "skipped")


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id"),
        Index("ix_messages_ticket_created", "ticket_id", "created_at"),
        Index("ix_messages_message_id", "message_id"),
        # Replies waiting to be sent, by when they were queued (the sweep's lost sends).
        Index("ix_messages_queued", "updated_at",
              postgresql_where=text("delivery_status = 'queued'"),
              sqlite_where=text("delivery_status = 'queued'")),
        # A person's messages wherever they are (export and erasure).
        Index("ix_messages_customer_author", "author_id",
              postgresql_where=text("author_type = 'customer'"),
              sqlite_where=text("author_type = 'customer'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    direction: Mapped[str] = mapped_column(String(10))
    internal: Mapped[bool] = mapped_column(default=False)
    author_type: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None] = mapped_column()
    author_name: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(255))
    # An inbound message's sender, as the value of their identity of the kind its channel
    # replies to (an address, an E.164 number, a PSID...): where the reply goes.
    sender: Mapped[str | None] = mapped_column(String(320))
    # An email's Reply-To (one address, not its From): a reply to its sender goes there.
    reply_to: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text, default="")
    full_text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(500))
    in_reply_to: Mapped[list] = mapped_column(JSON, default=list)
    references: Mapped[list] = mapped_column(JSON, default=list)
    delivery_status: Mapped[str] = mapped_column(String(20))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list] = mapped_column(JSON, default=list)
    # The sender's own priority flag (low/normal/high/urgent), an urgency factor.
    sender_priority: Mapped[str | None] = mapped_column(String(10))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # handed to the provider

    channel: Mapped[Channel] = relationship(lazy="joined")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id", lazy="selectin")
    # Set where the message and its new ticket are written by one flush (an ingest batch):
    # the flush then inserts the ticket first.
    ticket: Mapped[Ticket] = relationship()


FILE_NOT_KEPT = "storage_path IS NULL"  # a link, or a file the provider only names


class Attachment(db.Model):
    __tablename__ = "attachments"
    __table_args__ = (
        # The media sweep's recent attachments without their bytes (migration 0020).
        Index("ix_attachments_not_kept", "created_at", postgresql_where=text(FILE_NOT_KEPT),
              sqlite_where=text(FILE_NOT_KEPT)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(default=0)
    storage_path: Mapped[str | None] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    message: Mapped[Message] = relationship(back_populates="attachments")
