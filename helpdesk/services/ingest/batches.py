"""Processing stored deliveries in batches: many deliveries, one transaction.

Processing one delivery per job pays, for every message, a job's bookkeeping in Redis, a
transaction, the same lookups, single-row writes and a Redis round trip per event. A batch
claims the oldest waiting deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers
never share one), asks its lookups once (`ingest_batch`), applies every event with the same
code as a single delivery, and commits once: one flush, one pipeline of events, one
enqueue per ticket to route.

A batch that fails as a whole (a duplicate that raced in from another worker, a bug) is
rolled back and its deliveries are processed one by one, each in its own transaction; one
that still fails is handed to its own retrying job (`deliveries.process`), so a single bad
delivery never holds up the others and ends `failed` with its error after the last retry.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Row, Select, Update, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import make_transient_to_detached

from helpdesk import jobs
from helpdesk.connectors import get_connector
from helpdesk.connectors.base import CallEvent, InboundEvent, MessageEvent
from helpdesk.extensions import db
from helpdesk.models import Channel, Delivery
from helpdesk.services.ingest import batch_state, deliveries, identity
from helpdesk.services.routing import scoring
from helpdesk.transaction import commit

log = logging.getLogger(__name__)

BATCH_SIZE = {"postgresql": 200}
DEFAULT_BATCH_SIZE = 50  # SQLite: the batch holds the one write lock while it runs
TIME_BUDGET_SECONDS = 5.0  # then the job hands over to a fresh one
BATCH_BYTES = 16 * 1024 * 1024  # raw bodies held (and parsed) at once


def batch_size() -> int:
    return BATCH_SIZE.get(db.session.get_bind().dialect.name, DEFAULT_BATCH_SIZE)


def process_waiting() -> int:
    """The batch job: process waiting deliveries until none are left (or the time budget
    is spent, or tickets it stored wait for their routing batch: then a new job takes
    over); the number of deliveries processed."""
    jobs.PROCESS_DELIVERIES.started()
    limit, started, total = batch_size(), time.monotonic(), 0
    while True:
        count, more = process_batch(limit)
        total += count
        if not more:
            return total
        # A backlog: make sure another job follows (another worker may take it right away).
        deliveries.signal_batch()
        if (time.monotonic() - started >= TIME_BUDGET_SECONDS or jobs.stop_requested()
                or jobs.ROUTE_TICKETS.waiting()):
            # The worker alternates its queues (workers/worker.py): the routing batch for
            # what this batch stored runs before the next ingest job, not after the burst.
            return total


def claim(limit: int) -> tuple[list[Row], bool]:
    """The oldest deliveries waiting for their first processing, claimed for this batch, as
    many as fit in BATCH_BYTES of bodies (always one: an email may take 50 MiB alone); and
    whether more may be waiting.

    The claim is committed before anything is parsed: if the worker dies in the batch (a
    parser's segfault, the OOM killer), its deliveries are left claimed, no batch takes them
    again, and the sweeper hands each to its own job, which quarantines the one that kills
    its worker (`deliveries.claim`) while the others go through.
    """
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    if postgresql and not db.session().in_transaction():
        # One statement: committed by itself (no BEGIN and COMMIT round trips).
        connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    else:
        connection = db.session.connection()
    if postgresql:
        claimed = sorted(connection.execute(_claim_statement(),
                                            {"limit": limit, "bytes": BATCH_BYTES}))
        ids, found = [row.id for row in claimed], claimed[0].found if claimed else 0
    else:
        sizes = connection.execute(_waiting_statement(), {"limit": limit}).all()
        ids, total = [], 0
        for delivery_id, size in sizes:
            total += size or 0
            if ids and total > BATCH_BYTES:
                break  # the rest are unlocked at the commit, for the next batch
            ids.append(delivery_id)
        found = len(sizes)
        if ids:
            connection.execute(_claimed_statement(), {"ids": ids})
    if not ids:
        return [], False
    commit()
    # Held until the batch commits (PostgreSQL): a sweeper's job for one of them waits.
    rows = list(db.session.connection().execute(_rows_statement(), {"ids": ids}))
    return rows, found == limit or len(ids) < found


def _waiting_columns() -> tuple:
    return (Delivery.status == "received", Delivery.attempts == 0, Delivery.claims == 0)


@cache
def _claim_statement() -> Update:
    """PostgreSQL: the oldest waiting deliveries locked (skipping those another batch
    holds), cut at BATCH_BYTES of bodies (the first always taken), claimed in one statement;
    each row with how many waiting rows were found (the rest are unlocked at the commit)."""
    waiting = (select(Delivery.id, func.coalesce(func.length(Delivery.body), 0).label("size"))
               .where(*_waiting_columns()).order_by(Delivery.id).limit(bindparam("limit"))
               .with_for_update(skip_locked=True).cte("waiting"))
    sized = select(waiting.c.id, func.count().over().label("found"),
                   func.row_number().over(order_by=waiting.c.id).label("position"),
                   func.sum(waiting.c.size).over(order_by=waiting.c.id).label("running"),
                   ).subquery("sized")
    return (update(Delivery)
            .where(Delivery.id == sized.c.id,
                   or_(sized.c.position == 1, sized.c.running <= bindparam("bytes")))
            .values(claims=Delivery.claims + 1)
            .returning(Delivery.id, sized.c.found))


@cache
def _waiting_statement() -> Select:
    return (select(Delivery.id, func.length(Delivery.body)).where(*_waiting_columns())
            .order_by(Delivery.id).limit(bindparam("limit")))


@cache
def _claimed_statement() -> Update:
    return (update(Delivery).where(Delivery.id.in_(bindparam("ids", expanding=True)))
            .values(claims=Delivery.claims + 1))


@cache
def _rows_statement() -> Select:
    """The claimed deliveries still waiting, locked, each with its channel's row (a lone
    delivery then costs no query for its channel)."""
    channel = [column.label(f"channel_{column.name}") for column in Channel.__table__.c
               if column.name != "id"]
    rows = (select(Delivery.id, Delivery.channel_id, Delivery.provider, Delivery.method,
                   Delivery.url, Delivery.content_type, Delivery.headers, Delivery.body,
                   Delivery.received_at, *channel)
            .join(Channel, Channel.id == Delivery.channel_id)
            .where(Delivery.id.in_(bindparam("ids", expanding=True)),
                   Delivery.status == "received").order_by(Delivery.id))
    return rows.with_for_update(of=Delivery)  # FOR UPDATE is left out on SQLite


def _channels(rows: list[Row]) -> dict[int, Channel]:
    """The deliveries' channels in the session, as their rows were read with them."""
    found = {}
    for row in rows:
        if row.channel_id not in found:
            channel = Channel(id=row.channel_id, **{
                column.name: getattr(row, f"channel_{column.name}")
                for column in Channel.__table__.c if column.name != "id"})
            make_transient_to_detached(channel)  # as if loaded by this session
            found[row.channel_id] = db.session.merge(channel, load=False)
    return found


def process_batch(limit: int) -> tuple[int, bool]:
    """Claim and process up to `limit` waiting deliveries; how many were claimed, and
    whether more may be waiting."""
    # What an earlier batch of this job loaded is not read again from the session's identity
    # map (it keeps objects past commit): a ticket an agent solved since would look open.
    db.session.expunge_all()
    rows, more = claim(limit)
    if not rows:
        db.session.rollback()
        return 0, False
    parsed, failures = _parse(rows)
    try:
        statuses = _apply(parsed)
        _record(statuses, failures)
        commit()
    except Exception:
        db.session.rollback()
        log.warning("a batch of %d deliveries failed; processing them one by one", len(rows),
                    exc_info=True)
        deliveries.unclaim([row.id for row in rows])
        for row in rows:
            _process_alone(row.id)
    return len(rows), more


def _parse(rows: list[Row]) -> tuple[list[tuple[Row, Channel, list[InboundEvent]]],
                                      dict[int, str]]:
    parsed, failures = [], {}
    channels = _channels(rows)
    for row in rows:
        channel = channels[row.channel_id]
        try:
            events = get_connector(row.provider).parse(deliveries.channel_config(channel),
                                                       deliveries.as_request(row))
        except Exception as exc:  # bad provider payloads are quarantined, never retried
            log.info("delivery %s failed to parse: %s", row.id, deliveries.parse_reason(exc))
            failures[row.id] = deliveries.readable_error(exc)
            continue
        parsed.append((row, channel, events))
    return parsed, failures


def _apply(parsed: list[tuple[Row, Channel, list[InboundEvent]]]) -> dict[int, str]:
    """Apply every delivery's events in this transaction; {delivery id: new status}."""
    messages = [(channel, event) for _row, channel, events in parsed for event in events
                if isinstance(event, MessageEvent)]
    # Callers too: their customers' threading locks are taken with the others', in id
    # order, before any call's row (a call joining a ticket is threading).
    callers = [ref for _row, _channel, events in parsed for event in events
               if isinstance(event, CallEvent) for ref in event.identities]
    statuses = {}
    with batch_state.started() as batch:
        batch.load([(channel.id, event.external_id[:255]) for channel, event in messages],
                   identity.normalize_refs([ref for _, event in messages
                                            for ref in event.identities]),
                   identity.normalize_refs(callers))
        for row, channel, events in parsed:
            created = sum(deliveries.apply_event(channel, row, event) for event in events)
            has_messages = any(isinstance(event, MessageEvent) for event in events)
            statuses[row.id] = "processed" if created or not has_messages else "duplicate"
        scoring.request_routing_of_customers(batch.contacted_again)
        db.session.flush()
    return statuses


def _record(statuses: dict[int, str], failures: dict[int, str]) -> None:
    now = datetime.now(UTC)
    for status in ("processed", "duplicate"):
        ids = [delivery_id for delivery_id, value in statuses.items() if value == status]
        if ids:
            db.session.connection().execute(_recorded_statement(), {
                "ids": ids, "status": status, "processed_at": now})
    for delivery_id, error in failures.items():
        _update(Delivery.id == delivery_id, status="failed", error=error[:2000],
                processed_at=now)


@cache
def _recorded_statement() -> Update:
    return (update(Delivery).where(Delivery.id.in_(bindparam("ids", expanding=True)))
            .values(attempts=Delivery.attempts + 1, status=bindparam("status"),
                    processed_at=bindparam("processed_at")))


def _update(condition, **values) -> None:
    db.session.connection().execute(update(Delivery).where(condition)
                                    .values(attempts=Delivery.attempts + 1, **values))


def _process_alone(delivery_id: int) -> None:
    """Process one delivery of a failed batch in its own transaction; if it fails again,
    its own job retries it with backoff (and batches leave it alone: attempts > 0)."""
    try:
        deliveries.process(delivery_id, final_attempt=False)
    except Exception:
        db.session.rollback()
        log.warning("delivery %s failed; retrying it on its own", delivery_id, exc_info=True)
        _update(and_(Delivery.id == delivery_id, Delivery.status == "received"))
        commit()
        deliveries.enqueue_processing(delivery_id)
