"""A customer's data: merging two records of one person, exporting it all, erasing it.

Erasure keeps the metric facts (tickets, message rows with their times and directions,
calls' outcomes and durations, survey scores) and removes what names or describes the person.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Text, and_, bindparam, case, cast, func, or_, select, update

from helpdesk.errors import NotFound, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import (
    Agent,
    Attachment,
    Call,
    ChatSession,
    Customer,
    Delivery,
    Identity,
    Message,
    Survey,
    Ticket,
    TicketEvent,
    base,
)
from helpdesk.outbox import event_log
from helpdesk.schemas.resources import (
    call_schema,
    customer_schema,
    message_schema,
    ticket_schema,
    without_survey_tokens,
)
from helpdesk.schemas.surveys import survey_schema
from helpdesk.services import audit
from helpdesk.services.ingest import attachments, batch_state, identity
from helpdesk.services.routing import scoring
from helpdesk.transaction import after_commit, commit

ERASED = base.ERASED
ERASED_ID = "erased:"  # + a digest: an erased message's provider id
# Rows that belong to a customer and move with a merge.
OWNED = (Identity, Ticket, Call, ChatSession, Survey)


def _customer(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None or customer.erased_at is not None:  # as every other route has it
        raise NotFound("customer")
    return customer


def _lock(*ids: int) -> None:
    """Lock the customers in id order (PostgreSQL; SQLite serializes writers): their
    threading first, as ingest takes it before their tickets' rows (a batch mid-way commits
    before a merge or an erasure starts, and the next one waits for it), then their rows."""
    batch_state.lock_customers(set(ids))
    db.session.execute(select(Customer.id).where(Customer.id.in_(sorted(ids)))
                       .order_by(Customer.id).with_for_update())


def _mergeable(customer: Customer) -> None:
    if customer.erased_at is not None:
        raise Unprocessable(f"customer {customer.id} was erased", "customer_erased")
    if customer.merged_into_id is not None:
        raise Unprocessable(f"customer {customer.id} was merged into customer "
                            f"{customer.merged_into_id}; use that one", "customer_merged")


def merge(survivor_id: int, other_id: int, actor: Agent | None) -> Customer:
    """Move `other`'s identities, tickets, calls, chats and surveys to the survivor."""
    # `other` then points to the survivor (`merged_into`); itself, erased or merged-away: 422.
    survivor = _customer(survivor_id)
    if other_id == survivor_id:
        raise Unprocessable("a customer cannot be merged into itself", "same_customer")
    other = db.session.get(Customer, other_id)
    if other is None:
        raise Unprocessable(f"customer {other_id} does not exist", "unknown_customer")
    _lock(survivor_id, other_id)
    db.session.refresh(survivor)
    db.session.refresh(other)
    _mergeable(survivor)
    _mergeable(other)
    moved = _move_everything(other.id, survivor.id)
    other.merged_into_id = survivor.id
    survivor.name = survivor.name or other.name
    if other.tier == "vip":
        survivor.tier = "vip"
    audit.record(actor, "customer.merged", "customer", survivor.id, other_id=other.id,
                 moved=moved)
    # One person now: their contacts count together, and a VIP record made them a VIP.
    scoring.request_routing_of_customers({survivor.id})
    commit()
    db.session.refresh(survivor)
    return survivor


def _move_everything(from_id: int, to_id: int) -> dict[str, int]:
    moved = {}
    for model in OWNED:
        result = db.session.execute(
            update(model).where(model.customer_id == from_id).values(customer_id=to_id),
            execution_options={"synchronize_session": False})
        moved[model.__tablename__] = result.rowcount
    db.session.execute(update(Message).where(
        Message.author_type == "customer", Message.author_id == from_id)
        .values(author_id=to_id), execution_options={"synchronize_session": False})
    db.session.execute(update(Customer).where(Customer.merged_into_id == from_id)
                       .values(merged_into_id=to_id),
                       execution_options={"synchronize_session": False})
    db.session.expire_all()
    return moved


def export(customer_id: int, actor: Agent | None) -> dict[str, Any]:
    """Everything held on the person (a merged-away id exports its survivor), audited."""
    customer = identity.live_customer(_customer(customer_id))
    tickets = _all(select(Ticket).where(Ticket.customer_id == customer.id).order_by(Ticket.id))
    ticket_ids = [ticket.id for ticket in tickets]
    data = {
        "exported_at": datetime.now(UTC).isoformat(),
        "customer": customer_schema.dump(customer),
        "merged_customers": [{"id": c.id, "name": c.name, "created_at": c.created_at.isoformat()}
                             for c in _merged_into(customer.id)],
        "tickets": ticket_schema.dump(tickets, many=True),
        # (`text` is a mail without its quoted history and signature: the whole is kept too)
        "messages": [{**message_schema.dump(message), "sender": message.sender,
                      "reply_to": message.reply_to,
                      "full_text": without_survey_tokens(message.full_text)}
                     for message in _all(select(Message).where(
                         _exported([customer.id], ticket_ids))
                         .order_by(Message.created_at, Message.id))],
        "ticket_events": [_event(event) for event in _all(select(TicketEvent).where(
            TicketEvent.ticket_id.in_(ticket_ids)).order_by(TicketEvent.id))],
        "calls": call_schema.dump(_owned(Call, customer.id), many=True),
        "chat_sessions": [_chat(chat) for chat in _owned(ChatSession, customer.id)],
        "surveys": survey_schema.dump(_owned(Survey, customer.id), many=True),
    }
    audit.record(actor, "customer.exported", "customer", customer.id)
    commit()
    return data


def _all(query) -> list:
    return list(db.session.execute(query).scalars())


def _owned(model, customer_id: int) -> list:
    return _all(select(model).where(model.customer_id == customer_id).order_by(model.id))


def _merged_into(customer_id: int) -> list[Customer]:
    return _all(select(Customer).where(Customer.merged_into_id == customer_id)
                .order_by(Customer.id))


def _event(event: TicketEvent) -> dict[str, Any]:
    return {"ticket_id": event.ticket_id, "name": event.name, "data": event.data,
            "note": event.note, "actor": {"type": event.actor_type, "id": event.actor_id},
            "at": event.created_at.isoformat()}


def _chat(chat: ChatSession) -> dict[str, Any]:
    return {"id": chat.public_id, "channel_id": chat.channel_id, "ticket_id": chat.ticket_id,
            "name": chat.name, "email": chat.email, "identity_verified": chat.identity_verified,
            "created_at": chat.created_at.isoformat(),
            "last_seen_at": chat.last_seen_at.isoformat()}


def erase(customer_id: int, actor: Agent | None) -> None:
    """Erase the person and the records merged into them; anonymous metric facts stay."""
    # A merged-away id is 422: erasure is asked of the surviving record, by its own id.
    customer = _customer(customer_id)
    if customer.merged_into_id is not None:
        raise Unprocessable(f"customer {customer.id} was merged into customer "
                            f"{customer.merged_into_id}; erase that one", "customer_merged")
    _lock(customer.id)
    db.session.refresh(customer)  # as last committed: a merge or erasure it waited for
    if customer.erased_at is not None:
        raise NotFound("customer")
    if customer.merged_into_id is not None:
        raise Unprocessable(f"customer {customer.id} was merged into customer "
                            f"{customer.merged_into_id}; erase that one", "customer_merged")
    people = [customer.id] + [c.id for c in _merged_into(customer.id)]
    ticket_ids = list(db.session.execute(
        select(Ticket.id).where(Ticket.customer_id.in_(people))).scalars())
    messages = _theirs(people, ticket_ids)
    raw = _erase_deliveries(customer, people, messages)
    counts = {"identities": _delete_identities(people),
              "messages": _erase_messages(messages),
              "attachments": _erase_attachments(messages), "deliveries": raw}
    _erase_facts(people, ticket_ids)
    now = datetime.now(UTC)
    db.session.execute(update(Customer).where(Customer.id.in_(people))
                       .values(name=None, erased_at=now),
                       execution_options={"synchronize_session": False})
    audit.record(actor, "customer.erased", "customer", customer.id,
                 merged_customers=people[1:], **counts)
    after_commit(event_log.forget)  # recent events held their texts and identities
    commit()


# Provider ids shorter than this are not searched for in raw bodies (an `api` message id
# such as "m-1" would match unrelated deliveries); Twilio's SIDs, Meta's ids and the like
# are longer.
_MIN_SEARCHED = 16


def _theirs(people: list[int], ticket_ids: list[int]) -> Any:
    """The person's messages: every message on their tickets, and theirs on anyone else's
    (a reply in another customer's mail thread joins that thread's ticket)."""
    return or_(Message.ticket_id.in_(ticket_ids),
               and_(Message.author_type == "customer", Message.author_id.in_(people)))


def _exported(people: list[int], ticket_ids: list[int]) -> Any:
    """What an export holds of `_theirs`: not another customer's message on their ticket
    (someone who wrote into their thread: it is that person's data, in that person's
    export). Erasure takes those too: a reply in a mail thread quotes the person."""
    return and_(_theirs(people, ticket_ids),
                or_(Message.author_type != "customer", Message.author_id.is_(None),
                    Message.author_id.in_(people)))


def _erase_deliveries(customer: Customer, people: list[int], messages: Any) -> int:
    """Blank the raw webhook bodies that carry the person beyond those their messages were
    made from (`_erase_messages` blanks those): processed or duplicate deliveries on the
    channels they used, since they became a customer, holding one of their messages' or
    calls' provider ids (voice callbacks, recordings and transcriptions, delivery reports,
    repeats). Only such long, unique ids are looked for, never names, addresses or numbers
    (`jo@x.com` is inside `mojo@x.com`), and never in a delivery still to be processed or
    replayed: another customer's message must not be lost to a false match."""
    rows = db.session.execute(select(Message.channel_id, Message.external_id).where(
        messages, Message.external_id.is_not(None))).all()
    rows += db.session.execute(select(Call.channel_id, Call.external_id).where(
        Call.customer_id.in_(people))).all()
    searched = sorted({external_id for _channel, external_id in rows
                       if len(external_id) >= _MIN_SEARCHED})
    if not searched:
        return 0
    if db.engine.dialect.name == "sqlite":  # (its LIKE finds nothing in a blob)
        holds = or_(*(cast(Delivery.body, Text).like(f"%{_escaped(value)}%", escape="\\")
                      for value in searched))
    else:  # PostgreSQL's LIKE takes bytea as it is (backslash escapes by default)
        holds = or_(*(Delivery.body.op("LIKE")(f"%{_escaped(value)}%".encode())
                      for value in searched))
    return db.session.execute(update(Delivery).where(
        Delivery.channel_id.in_({channel for channel, _id in rows}),
        Delivery.status.in_(("processed", "duplicate")),
        Delivery.received_at >= _earliest(customer, people),
        func.length(Delivery.body) > 0, holds).values(body=b"", headers={}),
        execution_options={"synchronize_session": False}).rowcount


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _earliest(customer: Customer, people: list[int]) -> datetime:
    """A day before the first of them became a customer (the delivery that made them one
    was received before)."""
    first = db.session.execute(select(func.min(Customer.created_at)).where(
        Customer.id.in_(people))).scalar() or customer.created_at
    return first - timedelta(days=1)


def _delete_identities(people: list[int]) -> int:
    rows = _all(select(Identity).where(Identity.customer_id.in_(people)))
    for row in rows:
        db.session.delete(row)
    return len(rows)


def _blank_unless_null(column) -> Any:
    return case((column.is_(None), None), else_=ERASED)


def _erase_messages(theirs: Any) -> int:
    """Texts, subjects, senders (names, addresses, numbers) and mail ids go; rows, times and
    directions stay. A provider's id of the message may name the person (an email's
    Message-ID, Telegram's chat id: the person's user id): it becomes a keyed digest, still
    one per message, so the row stays unique and nothing of the id is left."""
    # (Their deliveries' dedupe keys stay: a provider retrying one must still find it a
    # duplicate, or the erased message would be stored again; docs/api.md says so.)
    _digest_external_ids(theirs)
    db.session.execute(update(Delivery).where(Delivery.id.in_(
        select(Message.delivery_id).where(theirs, Message.delivery_id.is_not(None))))
        .values(body=b"", headers={}), execution_options={"synchronize_session": False})
    result = db.session.execute(update(Message).where(theirs).values(
        text=ERASED, html=_blank_unless_null(Message.html),
        full_text=_blank_unless_null(Message.full_text),
        subject=_blank_unless_null(Message.subject), delivery_error=None,
        # Mail ids would thread a later message from the same address into these tickets.
        message_id=None, in_reply_to=[], references=[], sender=None, reply_to=None,
        author_name=case((Message.author_type == "customer", None),
                         else_=Message.author_name)),
        execution_options={"synchronize_session": False})
    return result.rowcount


def _digest_external_ids(theirs: Any) -> None:
    """Their messages' provider ids (not erased yet) become ERASED_ID + a digest keyed with
    the secret key of the row's id and value: nothing of the id is left, and each row's is
    its own (the id stays unique, however often a message comes back and is erased)."""
    found = db.session.execute(select(Message.id, Message.external_id).where(
        theirs, Message.external_id.is_not(None),
        ~Message.external_id.startswith(ERASED_ID, autoescape=True))).all()
    if not found:
        return
    key = current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    table = Message.__table__
    db.session.connection().execute(
        update(table).where(table.c.id == bindparam("row_id"))
        .values(external_id=bindparam("digest")),
        [{"row_id": row_id, "digest": ERASED_ID + hmac.new(
            key, f"{row_id}:{value}".encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()} for row_id, value in found])


def _erase_attachments(theirs: Any) -> int:
    """Anonymize the rows; delete each stored file (after commit) no one else still uses."""
    # Locked (PostgreSQL): a media fetch finishing meanwhile (`ingest.media`) either commits
    # first, and its file is deleted here, or finds its reference blanked and keeps nothing.
    rows = _all(select(Attachment).join(Message, Message.id == Attachment.message_id)
                .where(theirs).with_for_update(of=Attachment))
    paths = {row.storage_path for row in rows if row.storage_path}
    for row in rows:
        row.filename, row.storage_path, row.url, row.sha256 = ERASED, None, None, None
    db.session.flush()
    shared = set(db.session.execute(select(Attachment.storage_path).where(
        Attachment.storage_path.in_(paths))).scalars()) if paths else set()
    orphaned = sorted(paths - shared)
    after_commit(lambda: _delete_files(orphaned))
    return len(rows)


def _delete_files(relative_paths: list[str]) -> None:
    for relative in relative_paths:
        attachments.data_path(relative).unlink(missing_ok=True)


def _erase_facts(people: list[int], ticket_ids: list[int]) -> None:
    """What else names the person: subjects, thread keys, chat names, transcripts, comments."""
    quiet = {"synchronize_session": False}
    db.session.execute(update(Ticket).where(Ticket.id.in_(ticket_ids)).values(
        subject=_blank_unless_null(Ticket.subject), thread_key=None), execution_options=quiet)
    db.session.execute(update(ChatSession).where(ChatSession.customer_id.in_(people))
                       .values(name=None, email=None), execution_options=quiet)
    db.session.execute(update(Call).where(Call.customer_id.in_(people))
                       .values(transcript=None, recording_url=None), execution_options=quiet)
    db.session.execute(update(Survey).where(Survey.customer_id.in_(people))
                       .values(comment=None), execution_options=quiet)
    # An escalation's reason is an agent's free text about the person, as a note is.
    for event in db.session.execute(select(TicketEvent).where(
            TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.note.is_not(None))).scalars():
        event.note = ERASED
        if "reason" in (event.data or {}):
            event.data = {**event.data, "reason": ERASED}
