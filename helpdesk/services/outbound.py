"""Sending agents' public replies through the ticket's channel."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import requests
from sqlalchemy import select

from helpdesk.connectors.api import sign
from helpdesk.extensions import db
from helpdesk.models import Channel, Customer, Message, Ticket
from helpdesk.realtime import events
from helpdesk.schemas.resources import customer_schema, message_schema
from helpdesk.services.transaction import commit

log = logging.getLogger(__name__)


class SendError(Exception):
    """The provider refused or could not be reached; retried, then `failed`."""


def _send_api(channel: Channel, ticket: Ticket, message: Message) -> str:
    url = (channel.settings or {}).get("callback_url")
    if not url:
        return "skipped"
    customer = db.session.get(Customer, ticket.customer_id)
    payload = {"event_id": f"msg-{message.id}", "type": "message", "ticket_id": ticket.id,
               "customer": customer_schema.dump(customer),
               "message": message_schema.dump(message)}
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Helpdesk-Timestamp": timestamp,
               "X-Helpdesk-Signature": sign(channel.secrets["signing_secret"], timestamp, body)}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        raise SendError(f"callback unreachable: {type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise SendError(f"callback answered {response.status_code}")
    return "sent"


# provider → sender(channel, ticket, message) returning the new delivery_status.
SENDERS: dict[str, Callable[[Channel, Ticket, Message], str]] = {"api": _send_api}


def send(message_id: int, *, final_attempt: bool = True) -> str | None:
    """Send a queued public reply; idempotent (only `queued` messages are sent)."""
    message = db.session.execute(
        select(Message).where(Message.id == message_id)).scalar_one_or_none()
    if message is None or message.delivery_status != "queued" or message.internal:
        db.session.rollback()
        return None
    channel = db.session.get(Channel, message.channel_id)
    ticket = db.session.get(Ticket, message.ticket_id)
    sender = SENDERS.get(channel.provider)
    if sender is None:
        log.info("no sender for provider %s yet; message %s stays queued", channel.provider,
                 message_id)
        db.session.rollback()
        return None
    try:
        status = sender(channel, ticket, message)
    except SendError as exc:
        if not final_attempt:
            db.session.rollback()
            raise
        message.delivery_status, message.delivery_error = "failed", str(exc)
        status = "failed"
    else:
        message.delivery_status = status
    events.message_created(message, ticket, updated=True)
    commit()
    return status
