"""Website chat (`widget`): visitor sessions, their messages, and agents' replies to them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Select, select, update

from helpdesk.connectors.base import IdentityRef, MessageEvent
from helpdesk.connectors.widget import email_signed
from helpdesk.errors import Invalid, NotFound, Unauthorized
from helpdesk.extensions import db
from helpdesk.models import Channel, ChatSession, Identity, Message, Ticket
from helpdesk.outbox import CHAT, emit, events
from helpdesk.schemas.resources import customer_message_schema
from helpdesk.services import channels
from helpdesk.services.auth import hash_token
from helpdesk.services.ingest import identity, inbound
from helpdesk.transaction import after_commit, commit

PROVIDER = "widget"


def visitor_room(public_id: str) -> str:
    """The `/chat` room of one session's visitor."""
    return f"chat:{public_id}"


def widget_channel(channel_key: str) -> Channel:
    """The live `widget` channel with this key; 404 otherwise."""
    channel = channels.by_key(PROVIDER, channel_key)
    if channel is None:
        raise NotFound("chat channel")
    return channel


def start_session(channel_key: str, name: str | None = None, email: str | None = None,
                  email_hmac: str | None = None) -> tuple[ChatSession, str]:
    """Open a visitor session; the plain visitor token is returned once, stored hashed."""
    channel = widget_channel(channel_key)
    if email:
        try:
            identity.normalize_email(email)
        except identity.InvalidIdentity as exc:  # an address the form check let through
            raise Invalid("invalid input", {"email": ["Not a valid email address."]}) from exc
    public_id, token = secrets.token_urlsafe(18), "hv_" + secrets.token_urlsafe(32)
    verified = _claim_verified(channel, email, email_hmac)
    refs = [IdentityRef("chat_visitor", public_id)]
    if email:
        refs.insert(0, IdentityRef("email", email, verified))
    customer = identity.resolve_customer(refs, name or None)
    if email and verified:
        _vouch_for_email(email)
    chat = ChatSession(public_id=public_id, channel_id=channel.id, customer_id=customer.id,
                       token_hash=hash_token(token), name=name or None,
                       email=identity.normalize_email(email) if email else None,
                       identity_verified=verified)
    db.session.add(chat)
    commit()
    return chat, token


def _claim_verified(channel: Channel, email: str | None, email_hmac: str | None) -> bool:
    """False for an email the site did not sign; an anonymous visitor claims nothing."""
    if not email:
        return True
    return email_signed((channel.secrets or {}).get("identity_secret"), email, email_hmac)


def _vouch_for_email(email: str) -> None:
    """The site signed this address: its email identity is verified from now on."""
    db.session.execute(update(Identity).where(
        Identity.kind == "email", Identity.value == identity.normalize_email(email))
        .values(verified=True))


def session_for_token(token: str | None, *, lock: bool = False) -> ChatSession | None:
    """The session a visitor token opens, on a channel that still exists."""
    if not token:
        return None
    query = (select(ChatSession).join(Channel, Channel.id == ChatSession.channel_id)
             .where(ChatSession.token_hash == hash_token(token), Channel.deleted_at.is_(None)))
    if lock:
        query = query.with_for_update(of=ChatSession)
    return db.session.execute(query).scalar_one_or_none()


def authorize(public_id: str, token: str | None, *, lock: bool = False) -> ChatSession:
    """401 without a valid visitor token; 404 when the token opens another session."""
    chat = session_for_token(token, lock=lock)
    if chat is None:
        raise Unauthorized("a valid visitor token is required",
                           headers={"WWW-Authenticate": "Bearer"})
    if chat.public_id != public_id:
        raise NotFound("chat session")
    return chat


def _message(channel_id: int, external_id: str) -> Message | None:
    return db.session.execute(select(Message).where(
        Message.channel_id == channel_id, Message.external_id == external_id)
    ).scalar_one_or_none()


def post_message(session_public_id: str, visitor_token: str | None, text: str,
                 client_message_id: str) -> tuple[Message, bool]:
    """Store a visitor's message (idempotent on client_message_id); True when it is new."""
    # The row lock serializes a session's messages, so its first two cannot open two tickets.
    chat = authorize(session_public_id, visitor_token, lock=True)
    channel = db.session.get(Channel, chat.channel_id)
    external_id = f"{chat.public_id}:{client_message_id}"
    existing = _message(channel.id, external_id)
    if existing is not None:
        db.session.rollback()
        return existing, False
    event = MessageEvent(external_id=external_id, text=text, sender_name=chat.name,
                         identities=[IdentityRef("chat_visitor", chat.public_id)],
                         thread_key=chat.public_id, identity_verified=chat.identity_verified)
    message = inbound.receive_message(channel, None, event)
    if message is None:  # the same client_message_id won a race
        db.session.rollback()
        return _message(chat.channel_id, external_id), False
    chat.ticket_id = message.ticket_id
    chat.last_seen_at = datetime.now(UTC)
    commit()
    return message, True


def session_messages(session_public_id: str, visitor_token: str | None) -> Select:
    """The session's public messages, oldest first: the visitor's and the replies sent to
    the chat. Never internal notes, nor the customer's messages on other channels that
    joined the ticket (the visitor may only claim to be that customer)."""
    chat = authorize(session_public_id, visitor_token)
    return (select(Message).join(Ticket, Ticket.id == Message.ticket_id)
            .where(Ticket.channel_id == chat.channel_id, Ticket.thread_key == chat.public_id,
                   Message.channel_id == chat.channel_id, Message.internal.is_(False))
            .order_by(Message.created_at, Message.id))


def allowed_origin(origin: str | None, channel_key: str | None = None,
                   session_id: str | None = None) -> str | None:
    """The chat channel's `website` when `origin` is it (CORS), else None."""
    if not origin:
        return None
    if channel_key is not None:
        channel = channels.by_key(PROVIDER, channel_key)
    else:
        channel = db.session.execute(
            select(Channel).join(ChatSession, ChatSession.channel_id == Channel.id)
            .where(ChatSession.public_id == session_id, Channel.deleted_at.is_(None))
        ).scalar_one_or_none()
    website = channels.website_origin(channel) if channel else None
    return website if website and origin == website else None


def get_session(chat_session_id: int) -> ChatSession | None:
    """A chat session by its row id (what a `/chat` connection remembers)."""
    return db.session.get(ChatSession, chat_session_id)


def visitor_room_of_ticket(ticket_id: int) -> str | None:
    """The visitor's Socket.IO room when the ticket is a website chat, else None."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or not ticket.thread_key or ticket.channel.provider != PROVIDER:
        return None
    return visitor_room(ticket.thread_key)


def send_reply(channel: Channel, ticket: Ticket, message: Message) -> str:
    """Outbound sender for `widget`: the agent's public reply, live to the visitor's room."""
    if not ticket.thread_key:
        return "skipped"
    data = {**events.message_event(message, customer_message_schema),
            "delivery_status": "sent"}
    after_commit(partial(emit, "message.created", data, visitor_room(ticket.thread_key), CHAT))
    return "sent"
