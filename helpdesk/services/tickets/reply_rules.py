"""Rules for agents' public replies, checked before anything is stored: a closed ticket, a
deleted channel's or a phone channel's takes none (422), and the providers' own limits (409)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from helpdesk.errors import Conflict, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import Channel, Message, Ticket

# WhatsApp (Twilio or Meta), Messenger and Instagram take free-form replies only within 24 h
# of the customer's last message on that channel; after it, only approved templates.
REPLY_WINDOW = timedelta(hours=24)
WINDOW_KINDS = {"whatsapp": "WhatsApp", "messenger": "Messenger", "instagram": "Instagram"}
# The longest text each channel accepts in one message.
MAX_LENGTH = {"whatsapp": 4096, "messenger": 2000, "instagram": 1000, "telegram": 4096,
              "x": 10000, "sms": 1600}
TWILIO_MAX_LENGTH = 1600


def check_reply(ticket: Ticket, text: str, internal: bool) -> None:
    """Raise a 422 when the ticket is closed or its channel deleted or a phone's, a 409 when
    its channel would refuse this public reply."""
    if internal:
        return
    if ticket.status == "closed":
        raise Unprocessable("a closed ticket takes no replies", "ticket_closed")
    channel = ticket.channel
    if channel.deleted_at is not None:  # (its keys were retired with it)
        raise Unprocessable("the ticket's channel was deleted: it takes no replies; add an "
                            "internal note, or reach the customer another way",
                            "channel_deleted")
    if channel.kind == "voice":  # (an impossible action, not the provider refusing it now)
        raise Unprocessable("a phone channel takes no written replies: call the customer "
                            "back, or add an internal note", "no_written_replies")
    check_length(channel, text)
    if channel.kind in WINDOW_KINDS:
        check_window(ticket, channel)


def check_length(channel: Channel, text: str) -> None:
    """409 `message_too_long` over the channel's limit."""
    limit = TWILIO_MAX_LENGTH if channel.provider == "twilio" else MAX_LENGTH.get(channel.kind)
    if limit is not None and len(text) > limit:
        raise Conflict(f"{channel.kind} messages take at most {limit} characters; this reply "
                       f"has {len(text)}", "message_too_long")


def last_inbound_at(ticket: Ticket, channel: Channel) -> datetime | None:
    """When the ticket's customer last wrote on this channel (any of their tickets)."""
    return db.session.execute(
        select(func.max(Message.created_at)).join(Ticket, Ticket.id == Message.ticket_id)
        .where(Ticket.customer_id == ticket.customer_id, Message.channel_id == channel.id,
               Message.direction == "inbound")).scalar()


def check_window(ticket: Ticket, channel: Channel) -> None:
    """409 `outside_reply_window` 24 h after the customer's last message on the channel."""
    last = last_inbound_at(ticket, channel)
    if last is not None and datetime.now(UTC) - last <= REPLY_WINDOW:
        return
    since = f"the customer last wrote at {last.isoformat()}" if last else \
        "the customer has not written on this channel"
    raise Conflict(f"{WINDOW_KINDS[channel.kind]} accepts free-form replies only within 24 "
                   f"hours of the customer's last message; {since}", "outside_reply_window")
