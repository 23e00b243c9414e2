"""What a transaction processing a batch of deliveries already knows.

Processing messages one by one asks the database the same questions for every message: is
this message stored already, which customer owns this email address, which ticket did this
customer write on last. A batch asks the first two once for all of its messages (two
queries), and remembers the tickets its own messages went to, so the per-message work is in
memory and the writes go out in one flush. The answers hold for the batch's transaction
only: every entry is either read inside it or written by it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value

try:  # SQLAlchemy 2.1 (its select().distinct(column) is deprecated)
    from sqlalchemy.dialects.postgresql import distinct_on
except ImportError:  # SQLAlchemy 2.0
    distinct_on = None

from helpdesk.connectors.base import IdentityRef
from helpdesk.extensions import db
from helpdesk.models import Channel, Customer, Identity, Message, Ticket
from helpdesk.services.sla import clocks as sla

_KEY = "helpdesk.ingest_batch"


class IngestBatch:
    """Known answers, keyed as the lookups in `inbound`, `identity` and `conversations`."""

    def __init__(self) -> None:
        self.messages: dict[tuple[int, str], bool] = {}       # (channel, external id) stored?
        self.identities: dict[tuple[str, str], Identity | None] = {}
        self.customer_tickets: dict[int, Ticket | None] = {}  # customer -> latest activity
        self.written_tickets: dict[int, Ticket | None] = {}  # ... a written message may join
        self.thread_tickets: dict[tuple[int, str], Ticket] = {}
        self.locked_customers: set[int] = set()  # conversations.lock_customers
        self.locked_tickets: set[int] = set()  # lock_ticket, and the recent tickets' query
        self.created_customers: set[int] = set()  # by this batch: no row of theirs before it
        self.contacted_again: set[int] = set()  # customers a new ticket was opened for
        self.identities_locked = False  # identity._claim_unknown_identities
        # Threading by what this batch stored (its rows are written at the end, in one
        # flush): RFC Message-ID -> the ticket of the latest message carrying it, and per
        # ticket customer the names (In-Reply-To, References) of its messages, in order.
        self.message_tickets: dict[str, tuple[int, Ticket]] = {}
        self.named_by_customer: dict[int, list[tuple[frozenset[str], Ticket]]] = {}
        self._ids: dict[str, list[int]] = {}
        self._refills: dict[str, int] = {}
        self._order = itertools.count()

    def load(self, messages: Iterable[tuple[int, str]], refs: Iterable[IdentityRef],
             callers: Iterable[IdentityRef] = ()) -> None:
        """Ask the database once about all of these messages and identities (`callers`:
        the identities of calls, whose customers are locked with the others, in id order,
        but whose tickets are read only by a call that joins one)."""
        message_keys = list(dict.fromkeys(messages))
        writers = {(ref.kind, ref.value) for ref in refs}
        identity_keys = list(dict.fromkeys([(ref.kind, ref.value) for ref in refs]
                                           + [(ref.kind, ref.value) for ref in callers]))
        self.messages.update(dict.fromkeys(message_keys, False))
        self.identities.update(dict.fromkeys(identity_keys))
        if message_keys:
            groups = _groups(message_keys)
            if len(groups) == 1:  # one channel: the statement built once
                (channel_id, values), = groups.items()
                found = db.session.connection().execute(
                    _stored_messages(), {"channel": channel_id, "values": values})
            else:
                found = db.session.connection().execute(
                    select(Message.channel_id, Message.external_id).where(_pairs_in(
                        Message.channel_id, Message.external_id, message_keys)))
            self.messages.update((tuple(row), True) for row in found)
        locked, waited = (self._load_identities(identity_keys) if identity_keys
                          else (False, False))
        customer_ids = self._owners()
        # Before reading their latest tickets: a batch on another worker holding one of
        # these customers commits first, and its tickets are read here.
        if locked:  # by the identities' statement itself
            self.locked_customers.update(customer_ids)
        else:
            waited = lock_customers(customer_ids)
        if waited:
            # The identities were read before a lock another transaction held: a merge or
            # an erasure that committed meanwhile moved or removed some. Read them again
            # (their owners as now committed) and lock a new owner without waiting: this
            # transaction holds other customers' locks now, out of id order (waiting could
            # deadlock with a batch holding the new owner and waiting for one of ours).
            self._load_identities(identity_keys, again=True)
            lock_customers_or_give_up(self._owners())
        self._load_recent_tickets({
            found.customer.merged_into_id or found.customer_id
            for key, found in self.identities.items() if found and key in writers})

    def _owners(self) -> set[int]:
        return {found.customer.merged_into_id or found.customer_id
                for found in self.identities.values() if found}

    def _load_identities(self, keys: list[tuple[str, str]],
                         again: bool = False) -> tuple[bool, bool]:
        """The stored identities among `keys`, with their customers and each customer's
        every identity (what its events carry), in one query; whether that query also took
        their customers' threading locks (`lock_customers`), and whether it waited for one
        of them. `again`: read as last committed, over what the session holds, and without
        locks."""
        owned: dict[Customer, list[Identity]] = {}
        groups = _groups(keys)
        locking = waited = False
        options = {"populate_existing": True} if again else {}
        if again:
            self.identities.update(dict.fromkeys(keys))  # an erasure removes identities
        if len(groups) == 1:  # one kind (a batch of emails): the statement built once
            (kind, values), = groups.items()
            locking = not again and db.session.get_bind().dialect.name == "postgresql"
            found_rows = db.session.execute(_identities_of_one_kind(locking),
                                            {"kind": kind, "values": values},
                                            execution_options=options)
        else:
            owners = select(Identity.customer_id).where(
                _pairs_in(Identity.kind, Identity.value, keys))
            found_rows = db.session.execute(_IDENTITIES.where(
                Identity.customer_id.in_(owners.scalar_subquery())), execution_options=options)
        for found, customer, *lock_waits in found_rows:
            waited = waited or bool(lock_waits and lock_waits[0])
            owned.setdefault(customer, []).append(found)
            set_committed_value(found, "customer", customer)
            if (found.kind, found.value) in self.identities:
                self.identities[(found.kind, found.value)] = found
        for customer, identities in owned.items():
            set_committed_value(customer, "identities", identities)
        return locking, waited

    def _load_recent_tickets(self, customer_ids: set[int]) -> None:
        """Each known customer's latest ticket active within the threading window (what
        `conversations.recent_ticket` asks), or None."""
        if not customer_ids:
            return
        since = datetime.now(UTC) - timedelta(
            seconds=current_app.config["THREADING_WINDOW_SECONDS"])
        self.customer_tickets.update(dict.fromkeys(customer_ids))
        self.written_tickets.update(dict.fromkeys(customer_ids))
        found = db.session.execute(_recent_tickets(db.session.get_bind().dialect.name),
                                   {"ids": sorted(customer_ids), "since": since}).all()
        self.locked_tickets.update(ticket.id for ticket, _by_phone in found)
        # In THREADING_ORDER per customer, phone tickets and others apart: the first of
        # either is the latest of its part; the better of the two firsts the latest of all.
        for ticket, by_phone in found:  # their customers and channels are in the session
            if ticket.customer_id not in self.customer_tickets:
                continue  # merged away to another customer while the lock was awaited
            latest = self.customer_tickets[ticket.customer_id]
            if latest is None or threading_key(ticket) < threading_key(latest):
                self.customer_tickets[ticket.customer_id] = ticket
            if not by_phone and self.written_tickets[ticket.customer_id] is None:
                self.written_tickets[ticket.customer_id] = ticket

    def message_stored(self, channel_id: int, external_id: str) -> bool | None:
        """True or False when known, None when this batch was not told about it."""
        return self.messages.get((channel_id, external_id))

    def stored_message(self, channel_id: int, external_id: str) -> None:
        self.messages[(channel_id, external_id)] = True

    def identity(self, kind: str, value: str) -> tuple[bool, Identity | None]:
        """(known, identity): known False when this batch was not told about it."""
        key = (kind, value)
        return key in self.identities, self.identities.get(key)

    def added_identity(self, identity: Identity) -> None:
        self.identities[(identity.kind, identity.value)] = identity

    def new_customer(self, customer_id: int) -> None:
        """A customer this transaction created: no ticket to continue (no query for it)."""
        self.customer_tickets.setdefault(customer_id, None)
        self.written_tickets.setdefault(customer_id, None)

    def threaded(self, message: Message, ticket: Ticket) -> None:
        """A customer message this batch stored on `ticket` (see `message_tickets`)."""
        if message.message_id:
            self.message_tickets[message.message_id] = (next(self._order), ticket)
        names = frozenset((message.in_reply_to or []) + (message.references or []))
        if names:
            self.named_by_customer.setdefault(ticket.customer_id, []).append((names, ticket))

    def ticket_of_message_ids(self, ids: list[str]) -> Ticket | None:
        """The ticket of the latest message this batch stored carrying one of `ids`."""
        found = [self.message_tickets[value] for value in ids if value in self.message_tickets]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def ticket_naming(self, customer_id: int, ids: list[str]) -> Ticket | None:
        """The ticket of the first message this batch stored on a ticket of `customer_id`
        that names one of `ids` in In-Reply-To or References."""
        wanted = set(ids)
        for names, ticket in self.named_by_customer.get(customer_id, ()):
            if names & wanted:
                return ticket
        return None

    def next_id(self, model: type, reserve: int = 1) -> int | None:
        """A primary key for a row of `model` this batch will insert, from its sequence
        (PostgreSQL; None elsewhere: the caller flushes the row for its id). Rows created
        with their id need no flush of their own: the batch writes them all at its end.
        At least `reserve` ids are taken at once, and each time the batch runs out, twice
        as many as the time before, up to IDS_AHEAD: a burst's batch creating 180 tickets
        asks 10 times, not 180 (~5% of the worker's CPU in the 1,000-mail import). Ids taken
        and not used are a gap in the numbering, smaller than what the batch inserted and
        at most IDS_AHEAD - 1; a lone message takes exactly one."""
        if db.session.get_bind().dialect.name != "postgresql":
            return None
        table = model.__tablename__
        pool = self._ids.setdefault(table, [])
        if not pool:
            refills = self._refills[table] = self._refills.get(table, 0) + 1
            count = max(reserve, min(2 ** (refills - 1), IDS_AHEAD), 1)
            pool.extend(db.session.connection().execute(_NEXT_IDS, {
                "table": table, "count": count}).scalars())
            pool.sort(reverse=True)
        return pool.pop()

    def ticket_active(self, ticket: Ticket) -> None:
        """The ticket just got a message: now its customer's latest (unless it is settled
        further than their latest, solved or closed beside one open: THREADING_ORDER), and
        its thread's."""
        latest_of = [self.customer_tickets]
        if ticket.channel.kind not in NOT_JOINED_BY_WRITING:
            latest_of.append(self.written_tickets)
        for known in latest_of if ticket.identity_verified else ():  # (JOINABLE)
            latest = known.get(ticket.customer_id)
            if latest is None or _settled(ticket) <= _settled(latest):
                known[ticket.customer_id] = ticket
        if ticket.thread_key:
            self.thread_tickets[(ticket.channel_id, ticket.thread_key)] = ticket


IDS_AHEAD = 32  # the most ids of one table a batch takes ahead of its rows
_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                 "FROM generate_series(1, :count)")

# Every identity of the customers owning some of the batch's (the owners' condition is added
# per batch).
_IDENTITIES = (select(Identity, Customer).join(Customer, Customer.id == Identity.customer_id)
               .order_by(Identity.id).options(lazyload(Customer.identities)))


@cache
def _identities_of_one_kind(locking: bool) -> Select:
    """`_IDENTITIES` for the owners of identities of one `kind` among `values` (built once:
    building an ORM select per batch cost ~0.2 ms of a lone message). `locking`
    (PostgreSQL): the statement first takes its customers' threading locks
    (`lock_customers`: the same keys, in id order), in a subquery evaluated once, whose
    value (how many of the locks it waited for) each row carries: one round trip less than
    a statement of their own. The identities are read from the statement's snapshot, taken
    before the locks: when it waited, `IngestBatch.load` reads them again; the recent
    tickets are read by the next statement, after the locks."""
    owners = select(Identity.customer_id).where(
        Identity.kind == bindparam("kind"), Identity.value.in_(bindparam("values", expanding=True)))
    found = _IDENTITIES.where(Identity.customer_id.in_(owners.scalar_subquery()))
    if not locking:
        return found
    wanted = (select(func.coalesce(Customer.merged_into_id, Customer.id).label("id"))
              .where(Customer.id.in_(owners.scalar_subquery())).distinct()
              .order_by("id").subquery("wanted"))
    space = literal(CUSTOMER_LOCK_SPACE, Integer)
    waited = case((func.pg_try_advisory_xact_lock(space, wanted.c.id), 0),
                  (func.pg_advisory_xact_lock(space, wanted.c.id).is_(None), 1), else_=1)
    return found.add_columns(
        select(func.coalesce(func.sum(waited), 0)).scalar_subquery().label("lock_waits"))


@cache
def _stored_messages() -> Select:
    """Which of one channel's external ids are stored (built once; several channels: see
    `_pairs_in`)."""
    return select(Message.channel_id, Message.external_id).where(
        Message.channel_id == bindparam("channel"),
        Message.external_id.in_(bindparam("values", expanding=True)))


def _groups(pairs: list[tuple]) -> dict[object, list]:
    groups: dict[object, list] = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    return groups


def _pairs_in(first, second, pairs: list[tuple]) -> ColumnElement[bool]:
    """(first, second) IN pairs, written `first = a AND second IN (...)` per value of `first`
    (a batch has one or a few channels, two or three identity kinds). PostgreSQL plans a
    row-value IN list as one OR branch per pair: for a batch of 200, ~8 ms of planning and a
    scan of the whole channel's index range when its statistics lag behind a burst (31 ms
    at 12k messages, growing with the table); per group it is one index probe per value."""
    return or_(*(and_(first == key, second.in_(values))
                 for key, values in _groups(pairs).items()))


# Which of a customer's recently active tickets a message threads to
# (`conversations.recent_ticket`): one still open before one solved (a WhatsApp message
# joined, and reopened, the email ticket solved a minute before, beside the open WhatsApp
# one), before one closed (an out-of-office reply's), then the latest activity.
THREADING_ORDER = (Ticket.status == "closed", Ticket.status == "solved",
                   Ticket.last_activity_at.desc(), Ticket.id.desc())
# A phone ticket takes no written reply: a customer's SMS or WhatsApp message does not join
# it (a call may join any of their tickets).
NOT_JOINED_BY_WRITING = ("voice",)
# A chat whose visitor only claimed the customer's email (unsigned) is joined by nothing
# from another channel: the real customer's WhatsApp message joined the impostor's chat,
# and the agent's answer to it went out to the impostor's browser.
JOINABLE = Ticket.identity_verified.is_(True)


def threading_key(ticket: Ticket) -> tuple:
    """THREADING_ORDER in Python: smaller first."""
    return (*_settled(ticket), -ticket.last_activity_at.timestamp(), -ticket.id)


def _settled(ticket: Ticket) -> tuple[bool, bool]:
    return ticket.status == "closed", ticket.status == "solved"



@cache
def _recent_tickets(dialect: str) -> Select:
    """Each customer's tickets active since `since`, with whether they are phone tickets,
    in THREADING_ORDER per customer and kind of ticket (PostgreSQL: the first of each only).
    Their customer and channel are not loaded with them (channels are joined for their kind
    only): the batch has them in its session."""
    by_phone = Channel.kind.in_(NOT_JOINED_BY_WRITING)
    if dialect != "postgresql":  # no DISTINCT ON: the first row per customer and kind
        return (select(Ticket, by_phone.label("by_phone"))
                .join(Channel, Channel.id == Ticket.channel_id)
                .where(Ticket.customer_id.in_(bindparam("ids", expanding=True)),
                       Ticket.last_activity_at >= bindparam("since"), JOINABLE)
                .order_by(Ticket.customer_id, by_phone, *THREADING_ORDER)
                .options(lazyload(Ticket.customer), lazyload(Ticket.channel)))
    # PostgreSQL: the first of each only, and locked (`lock_ticket`): FOR UPDATE cannot sit
    # beside DISTINCT ON, so the choice is a subquery and the lock is on the tickets it names.
    first = (select(Ticket.id, by_phone.label("by_phone"))
             .join(Channel, Channel.id == Ticket.channel_id)
             .where(Ticket.customer_id.in_(bindparam("ids", expanding=True)),
                    Ticket.last_activity_at >= bindparam("since"), JOINABLE)
             .order_by(Ticket.customer_id, by_phone, *THREADING_ORDER))
    first = (first.distinct(Ticket.customer_id, by_phone) if distinct_on is None  # SA 2.0
             else first.ext(distinct_on(Ticket.customer_id, by_phone))).subquery()
    return (select(Ticket, first.c.by_phone).join(first, first.c.id == Ticket.id)
            .order_by(Ticket.customer_id, first.c.by_phone, *THREADING_ORDER)
            .with_for_update(of=Ticket)
            .options(lazyload(Ticket.customer), lazyload(Ticket.channel)))


CUSTOMER_LOCK_SPACE = 0x4844  # "HD": the first key of our advisory locks, per customer


class ThreadingBusy(RuntimeError):
    """A customer's threading lock another transaction holds, needed after this one took
    others (a merge moved a message's sender meanwhile): retried rather than waited for."""


_TRY_LOCK_CUSTOMERS = text(
    "SELECT coalesce(bool_and(pg_try_advisory_xact_lock(:space, id)), true) "
    "FROM (SELECT unnest(CAST(:ids AS integer[])) AS id ORDER BY 1) AS wanted")
# Each lock tried first, then waited for (in id order all the same): how many it waited for.
_LOCK_CUSTOMERS = text(
    "SELECT coalesce(sum(CASE WHEN pg_try_advisory_xact_lock(:space, id) THEN 0 "
    "WHEN pg_advisory_xact_lock(:space, id) IS NULL THEN 1 ELSE 1 END), 0) "
    "FROM (SELECT unnest(CAST(:ids AS integer[])) AS id ORDER BY 1) AS wanted")


def lock_customers(customer_ids: set[int], wait: bool = True) -> bool:
    """Serialise threading per customer: until this transaction ends, no other one decides
    which ticket these customers' messages join (PostgreSQL: transaction-level advisory
    locks, taken in id order so two batches cannot deadlock on them; SQLite's BEGIN
    IMMEDIATE already serialises every writing transaction). Ask which ticket a customer
    wrote on last only after this: a transaction that held the lock has committed by then,
    and its ticket is visible (READ COMMITTED). Whether it waited for another transaction
    holding one of them: what was read before may have changed (a merge moves a customer's
    identities and tickets to another). `wait=False`: only try; whether all were taken."""
    batch = current()
    wanted = set(customer_ids) - (batch.locked_customers if batch else set())
    if not wanted or db.session.get_bind().dialect.name != "postgresql":
        return not wait
    params = {"space": CUSTOMER_LOCK_SPACE, "ids": sorted(wanted)}
    if not wait:
        taken = db.session.connection().execute(_TRY_LOCK_CUSTOMERS, params).scalar_one()
        if taken and batch:
            batch.locked_customers.update(wanted)
        return bool(taken)
    waits = db.session.connection().execute(_LOCK_CUSTOMERS, params).scalar_one()
    if batch:
        batch.locked_customers.update(wanted)
    return bool(waits)


def lock_customers_or_give_up(customer_ids: set[int]) -> None:
    """After a wait (a merge moved a message's sender meanwhile): lock these customers
    without waiting, since this transaction holds others' locks out of id order now;
    ThreadingBusy when another transaction holds one (the caller's work is retried)."""
    if not lock_customers(customer_ids, wait=False):
        raise ThreadingBusy("a customer merged into another one is being threaded by "
                            "another transaction: retried")


def lock_ticket(ticket: Ticket) -> None:
    """Before a message or a call changes an existing ticket: hold its row until this
    transaction ends and read it as last committed (PostgreSQL). An agent's change that
    committed meanwhile (a close, a solve) is what the message sees, and one in flight
    waits for this transaction: ingest decides from a ticket no one else is changing, as
    agents' changes do (`actions.get_for_change`). Once per ticket in a batch (the recent
    tickets' query takes the lock with its read); a ticket this transaction has changed
    already is locked by its own write and not read again. SQLite's BEGIN IMMEDIATE
    serialises writers already."""
    state = inspect(ticket)
    batch = current()
    if (not state.persistent or (batch is not None and ticket.id in batch.locked_tickets)
            or db.session.get_bind().dialect.name != "postgresql"):
        return
    # (read: an ORM result fills its objects as its rows are fetched, not when it executes)
    db.session.execute(_LOCK_TICKET.execution_options(populate_existing=not state.modified),
                       {"id": ticket.id}).scalar_one_or_none()
    if batch is not None:
        batch.locked_tickets.add(ticket.id)


_LOCK_TICKET = (select(Ticket).where(Ticket.id == bindparam("id")).with_for_update()
                .options(lazyload(Ticket.customer), lazyload(Ticket.channel)))


def unflushed(row: object, reserve: int = 1) -> bool:
    """Inside a batch on PostgreSQL: give this new row its id (`IngestBatch.next_id`) and
    its columns' Python defaults now, as its INSERT would, so that it needs no flush of its
    own (the batch writes its rows in one flush at its end; an object referring to it must
    set the relationship too, for that flush to insert it first). False otherwise: the
    caller flushes it for its id."""
    batch = current()
    row_id = batch.next_id(type(row), reserve) if batch is not None else None
    if row_id is None:
        return False
    for column in type(row).__table__.c:
        default = column.default
        if default is None or column.key in row.__dict__:  # set, even to None: as given
            continue
        if default.is_scalar:
            setattr(row, column.key, default.arg)
        elif default.is_callable:
            setattr(row, column.key, default.arg(None))
    row.id = row_id
    return True


def current() -> IngestBatch | None:
    """The batch this transaction is processing, if any."""
    return db.session.info.get(_KEY)


@contextmanager
def started() -> Iterator[IngestBatch]:
    """Process a batch in the current transaction; its knowledge ends with the block (and
    each priority's SLA policy is read once in it)."""
    batch = db.session.info[_KEY] = IngestBatch()
    try:
        with sla.policies_cached():
            yield batch
    finally:
        db.session.info.pop(_KEY, None)
