"""Sending agents' public replies through the ticket's channel (the `outbound` job).

The senders in `helpdesk.senders` know nothing of the database: this module builds their
`Outgoing` (recipient, thread headers, the channel's account), stores what they answer
(`external_id`, so the provider's status callbacks find the message, and the new status) and
emits `message.updated` after commit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import String, and_, cast, or_, select

from helpdesk import jobs, queues
from helpdesk.connectors.api import sign
from helpdesk.extensions import db
from helpdesk.models import Channel, Customer, Identity, Message, Ticket
from helpdesk.outbox import events
from helpdesk.redaction import redact
from helpdesk.schemas.resources import customer_message_schema, customer_schema
from helpdesk.senders import callbacks, meta, smtp, telegram, twilio, x
from helpdesk.senders.base import Outgoing, SendError, SendResult, body_of, refused
from helpdesk.services.ingest import identity
from helpdesk.services.outbound import chat, surveys
from helpdesk.transaction import commit

log = logging.getLogger(__name__)

Sender = Callable[[Channel, Ticket, Message], SendResult]

# The configuration key of each provider's base URL (API.md "Operators").
API_BASES = {"twilio": "TWILIO_API_BASE", "meta": "META_GRAPH_API_BASE",
             "telegram": "TELEGRAM_API_BASE", "x": "X_API_BASE"}
EMAIL_PROVIDERS = ("raw_mime", "postmark", "mailgun", "sendgrid")


def _send_api(channel: Channel, ticket: Ticket, message: Message) -> SendResult:
    """The `api` channel: a signed POST to its `callback_url`; `skipped` without one."""
    url = (channel.settings or {}).get("callback_url")
    if not url:
        return SendResult(external_id=None, status="skipped")
    customer = db.session.get(Customer, ticket.customer_id)
    payload = {"event_id": f"msg-{message.id}", "type": "message", "ticket_id": ticket.id,
               "customer": customer_schema.dump(customer),
               "message": customer_message_schema.dump(message)}
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Helpdesk-Timestamp": timestamp,
               "X-Helpdesk-Signature": sign(channel.secrets["signing_secret"], timestamp, body)}
    response = callbacks.post(url, data=body, headers=headers,
                              allow_private=current_app.config["ALLOW_PRIVATE_CALLBACKS"])
    if not 200 <= response.status_code < 300:
        error = body_of(response).get("error")
        raise refused("callback", response, str(error)[:500] if error else None)
    return SendResult(external_id=None)


def _send_widget(channel: Channel, ticket: Ticket, message: Message) -> SendResult:
    """Website chat: live to the visitor's `/chat` room."""
    return SendResult(external_id=None, status=chat.send_reply(channel, ticket, message))


def through(send: Callable[[Outgoing], SendResult]) -> Sender:
    """A database-free sender, fed the `Outgoing` built for this message."""
    def sender(channel: Channel, ticket: Ticket, message: Message) -> SendResult:
        return send(outgoing(channel, ticket, message))
    return sender


# provider → sender(channel, ticket, message) returning what was sent and the new status.
SENDERS: dict[str, Sender] = {
    "api": _send_api, "widget": _send_widget, "twilio": through(twilio.send),
    "meta": through(meta.send), "telegram": through(telegram.send), "x": through(x.send),
    **{provider: through(smtp.send) for provider in EMAIL_PROVIDERS}}


def last_inbound(ticket: Ticket) -> Message | None:
    """The customer's latest message on this ticket through the ticket's channel."""
    return db.session.execute(
        select(Message).where(Message.ticket_id == ticket.id,
                              Message.channel_id == ticket.channel_id,
                              Message.direction == "inbound")
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(1)).scalar_one_or_none()


def customers_last_sender(ticket: Ticket, kind: str) -> str | None:
    """Where the ticket's customer last wrote from on its channel: their own latest message
    (a merge moves a message's author with it), not a bounce or an auto-reply (a mailer
    daemon's), nor a colleague's message in the same thread; and only while that address
    or number is still one of the customer's identities. A ticket whose first message named
    a Reply-To (one address, not ours) is answered there, as a mail client would (a web form
    relaying for a visitor); a later mail's Reply-To is not followed: anyone can write the
    customer's From and our thread's tag, and would turn the agents' replies their way."""
    row = db.session.execute(
        select(Message.sender)
        .join(Identity, and_(Identity.kind == kind, Identity.value == Message.sender,
                             Identity.customer_id == ticket.customer_id))
        .where(Message.ticket_id == ticket.id, Message.channel_id == ticket.channel_id,
               Message.direction == "inbound", Message.author_type == "customer",
               Message.author_id == ticket.customer_id, ~_flagged(("bounce", "auto_reply")))
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(1)).first()
    if row is None:
        return None
    # The first to arrive (ids, not the Date a sender writes: a mail dated 2001 would be
    # "first"), of the customer's own mail on this channel.
    first_reply_to = db.session.execute(
        select(Message.reply_to)
        .where(Message.ticket_id == ticket.id, Message.channel_id == ticket.channel_id,
               Message.direction == "inbound", Message.author_type == "customer",
               Message.author_id == ticket.customer_id, ~_flagged(("bounce", "auto_reply")))
        .order_by(Message.id).limit(1)).scalar_one_or_none()
    if first_reply_to and not _ours(ticket.channel, first_reply_to):
        return first_reply_to
    return row.sender


def _ours(channel: Channel | None, address: str) -> bool:
    """The channel's own address, plus-tagged or not: a reply sent there would come back
    as a new message (a loop), so a Reply-To naming it is not followed."""
    own = str(((channel.settings if channel else None) or {}).get("address") or "").lower()
    local, _, domain = address.lower().rpartition("@")
    own_local, _, own_domain = own.rpartition("@")
    return not own or (domain == own_domain
                       and local.split("+", 1)[0] == own_local.split("+", 1)[0])


def _flagged(flags: tuple[str, ...]):
    """The message carries one of these flags (a JSON list: matched as its text)."""
    text = cast(Message.flags, String)
    return or_(*(text.contains(f'"{flag}"') for flag in flags))


def identity_value(customer_id: int, kind: str) -> str | None:
    """The customer's identity of this kind (verified first, then the oldest)."""
    customer = identity.live_customer(db.session.get(Customer, customer_id))
    return db.session.execute(
        select(Identity.value).where(Identity.customer_id == customer.id, Identity.kind == kind)
        .order_by(Identity.verified.desc(), Identity.id).limit(1)).scalar_one_or_none()


def recipient(channel: Channel, ticket: Ticket, last: Message | None) -> str:
    """Who the reply goes to; a permanent SendError when the customer cannot be reached."""
    if channel.kind == "telegram" and last is not None and last.external_id:
        return last.external_id.split(":", 1)[0]  # `<chat_id>:<message_id>`
    kind = identity.REPLY_KINDS.get(channel.kind)
    # Where they wrote from last on this ticket's channel, else their verified (else
    # oldest) identity of that kind: a customer with two addresses is answered at the one
    # they used (two customers merged into one keep being answered where each wrote).
    value = (customers_last_sender(ticket, kind) or identity_value(ticket.customer_id, kind)
             if kind else None)
    if not value:
        raise SendError(f"the customer has no {kind or channel.kind} identity to reply to",
                        retryable=False)
    return value


def endpoint(channel: Channel) -> str:
    """The provider's base URL, or SMTP_URL for email, read from the config at call time."""
    key = "SMTP_URL" if channel.kind == "email" else API_BASES.get(channel.provider)
    return str(current_app.config.get(key) or "") if key else ""


def status_callback(channel: Channel) -> str | None:
    """The channel's webhook URL for delivery reports, when the public URL is known."""
    base = current_app.config.get("PUBLIC_URL")
    return f"{base}/webhooks/{channel.provider}/{channel.key}" if base else None


def thread_of(last: Message | None) -> tuple[str | None, tuple[str, ...]]:
    """In-Reply-To and References for a reply to `last` (its Message-ID and references)."""
    if last is None or not last.message_id:
        return None, ()
    return last.message_id, (*(last.references or []), last.message_id)


def outgoing(channel: Channel, ticket: Ticket, message: Message) -> Outgoing:
    """The plain-data message a sender needs."""
    last = last_inbound(ticket)
    parent_id, references = thread_of(last)
    return Outgoing(
        message_id=message.id, ticket_id=ticket.id, kind=channel.kind, text=message.text,
        recipient=recipient(channel, ticket, last), endpoint=endpoint(channel),
        settings=dict(channel.settings or {}), secrets=dict(channel.secrets or {}),
        subject=ticket.subject, in_reply_to=parent_id, references=references,
        status_callback=status_callback(channel))


def record_sent(message: Message, result: SendResult) -> None:
    """Store the new status and the ids status callbacks and email replies will name."""
    message.delivery_status, message.delivery_error = result.status, None
    if result.status in ("sent", "delivered", "read"):  # (receipts "up to a time" read it)
        message.sent_at = datetime.now(UTC)
    if result.external_id:
        message.external_id = result.external_id[:255]
    if result.message_id:
        message.message_id = result.message_id[:500]


def record_failed(message: Message, error: SendError) -> None:
    """`failed`, with the provider's error for the agent to read."""
    message.delivery_status, message.delivery_error = "failed", redact(error.message)[:2000]


def sender_for(provider: str) -> Sender:
    """The provider's sender; a permanent SendError for a provider without one."""
    sender = SENDERS.get(provider)
    if sender is None:
        raise SendError(f"no sender for provider {provider}", retryable=False)
    return sender


def attempt(channel: Channel, ticket: Ticket, message: Message, final_attempt: bool) -> None:
    """Call the channel's sender and record the outcome; re-raise what RQ should retry."""
    message_id, provider = message.id, channel.provider
    if channel.deleted_at is not None:  # deleted while the reply waited: its keys are retired
        record_failed(message, SendError("the channel was deleted before the reply went out",
                                         retryable=False))
        return
    try:
        result = sender_for(provider)(channel, ticket, message)
    except SendError as exc:
        if exc.retryable and not final_attempt:
            db.session.rollback()
            log.warning("message %s via %s: %s (will retry)", message_id, provider, exc.message)
            raise
        log.warning("message %s via %s failed: %s", message_id, provider, exc.message)
        record_failed(message, exc)
    except Exception:  # a bug or a malformed record: retried, then visible as `failed`
        db.session.rollback()
        if not final_attempt:
            raise
        log.exception("message %s via %s: sending crashed", message_id, provider)
        record_failed(message, SendError("internal error while sending", retryable=False))
    else:
        record_sent(message, result)


def sweep_stuck(grace_seconds: float, limit: int = 500) -> int:
    """Outbound timers rebuilt from the database: a reply still `queued` a job's run
    (`JOB_TIMEOUT`) plus `grace_seconds` after it was queued (`updated_at`: written, or sent
    again), with no job for it waiting (queued, or scheduled for its next attempt), lost
    its job (Redis down at the commit, or restarted empty): enqueue it again. Only `queued`
    messages are sent. (The wait was the whole retry schedule, 45 minutes by default, though
    a job waiting for its next attempt is seen as waiting.)"""
    budget = queues.JOB_TIMEOUT + grace_seconds
    cutoff = datetime.now(UTC) - timedelta(seconds=budget)
    ids = list(db.session.execute(select(Message.id).where(
        Message.delivery_status == "queued", Message.updated_at <= cutoff,
        Message.direction == "outbound", Message.internal.is_(False))
        .order_by(Message.id).limit(limit)).scalars())
    db.session.rollback()
    if ids:  # (one running now, a later attempt, keeps its job: not a second of the same id)
        running = queues.job_statuses([jobs.SEND_MESSAGE.id_for(i) for i in ids])
        ids = [i for i, status in zip(ids, running, strict=True) if status != b"started"]
        jobs.SEND_MESSAGE.enqueue_each([(message_id,) for message_id in ids])
    return len(ids)


def send(message_id: int, *, final_attempt: bool = True) -> str | None:
    """Send a queued public reply; idempotent (only `queued` messages are sent).

    A retryable failure (or a crash) re-raises for RQ to retry unless this is the last
    attempt; a permanent one, or the last attempt, marks the message `failed` with the error.
    """
    # Locked until the outcome is committed: a second job for the same reply (the sweep's,
    # a resend's) waits, then finds it no longer `queued`, instead of sending it again.
    message = db.session.execute(
        select(Message).where(Message.id == message_id).with_for_update(of=Message)
    ).scalar_one_or_none()
    if message is None or message.delivery_status != "queued" or message.internal:
        db.session.rollback()
        return None
    ticket = db.session.get(Ticket, message.ticket_id)
    attempt(db.session.get(Channel, message.channel_id), ticket, message, final_attempt)
    surveys.follow_message(message)
    events.message_created(message, ticket, updated=True)
    commit()
    return message.delivery_status
