"""Deliveries: store every verified webhook, then process it exactly once in effect."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import parse_qs, urlsplit

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import Insert, Select, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import defer, undefer

from helpdesk import jobs, queues
from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    CallEvent,
    ChannelConfig,
    InboundEvent,
    MessageEvent,
    PayloadError,
    StatusEvent,
    WatermarkEvent,
    WebhookRequest,
)
from helpdesk.errors import NotFound, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import Channel, Delivery
from helpdesk.redaction import redact
from helpdesk.services.ingest import calls, identity, inbound
from helpdesk.transaction import after_commit, commit

log = logging.getLogger(__name__)
# Headers that carry a credential itself (not a signature of the body): verified at the
# door, never stored with the delivery.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie",
                            "x-telegram-bot-api-secret-token"})



def channel_config(channel: Channel) -> ChannelConfig:
    return ChannelConfig(id=channel.id, kind=channel.kind, provider=channel.provider,
                         key=channel.key, settings=channel.settings or {},
                         secrets=channel.secrets or {})


def as_request(delivery: Delivery) -> WebhookRequest:
    """The stored delivery as the request the connector verified (query from its URL)."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(delivery.url).query).items()}
    return WebhookRequest(method=delivery.method, url=delivery.url, headers=delivery.headers,
                          body=delivery.body, content_type=delivery.content_type, query=query)


def store(channel: ChannelConfig, request: WebhookRequest, dedupe_key: str,
          replay_token: str | None = None) -> int | None:
    """Store a verified delivery, commit, then make sure a batch job will process it;
    the new delivery's id, or None for a duplicate (already stored)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS}
    values = {"channel_id": channel.id, "provider": channel.provider,
              "dedupe_key": storable_key(dedupe_key), "replay_token": storable_key(replay_token),
              "method": request.method, "url": request.url,
              "content_type": _storable_text(request.content_type)[:255],
              "headers": {k: _storable_text(v) for k, v in headers.items()},
              "body": request.body}
    engine = db.session.get_bind()
    if engine.dialect.name == "postgresql" and not db.session().in_transaction():
        delivery_id = _insert_autocommit(engine, values)
    else:
        try:
            delivery_id = db.session.connection().execute(_insert_statement(), values).scalar()
            db.session.commit()
        except IntegrityError:  # a duplicate: the unique (channel, dedupe key) holds it
            db.session.rollback()
            return None
    if delivery_id is not None:
        signal_batch()
    return delivery_id


def _insert_autocommit(engine: Engine, values: dict) -> int | None:
    """The INSERT as a transaction of its own (PostgreSQL, autocommit): one round trip
    instead of three (BEGIN, INSERT, COMMIT), and the server answers only once the row
    is flushed to its WAL, as a COMMIT would (the ack still follows a durable store). A
    duplicate returns no row (ON CONFLICT DO NOTHING)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(_insert_for("postgresql"), values).scalar()


def signal_batch() -> bool:
    """Make sure a batch job will process what is waiting (one round trip when one is)."""
    return jobs.PROCESS_DELIVERIES.enqueue_unless_pending()


@cache
def _insert_for(dialect: str) -> Insert:
    table = Delivery.__table__
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing().returning(table.c.id)
    return insert(table).returning(table.c.id)


def _insert_statement() -> Insert:
    """INSERT … RETURNING id, built once; on PostgreSQL a duplicate returns nothing instead
    of failing (the transaction stays usable without a round trip to roll it back)."""
    return _insert_for(db.session.get_bind().dialect.name)


REPLAY_MEMORY_SECONDS = 900  # longer than any signature window (Mailgun: 5 minutes)


def replay_token_fresh(channel: ChannelConfig, token: str, dedupe_key: str) -> bool:
    """A one-time token is fresh unless seen before with a different delivery.

    The database keeps the token of each stored delivery. Redis also remembers, for longer
    than the signature stays valid, every token presented: those of duplicates too (a
    provider's retry of a stored mail, whose token no row keeps), and one that a concurrent
    request presents first. Without Redis the database's answer stands."""
    key = storable_key(dedupe_key)
    seen = db.session.execute(
        select(Delivery.dedupe_key).where(Delivery.channel_id == channel.id,
                                          Delivery.replay_token == storable_key(token))
    ).scalar_one_or_none()
    if seen is not None and seen != key:
        return False
    name = f"helpdesk:replay:{channel.id}:{hashlib.sha256(token.encode()).hexdigest()}"
    try:
        with queues.redis_connection().pipeline(transaction=True) as pipe:
            pipe.set(name, key, nx=True, ex=REPLAY_MEMORY_SECONDS)
            pipe.get(name)
            _, first = pipe.execute()
    except RedisError as exc:
        log.warning("replay tokens: redis unavailable (%s); the database's record stands", exc)
        return True
    return first is None or first.decode() == key


def storable_key(key: str | None) -> str | None:
    """A provider's id as a key column can hold it: one longer than the column, or with
    characters the database refuses (NUL, lone surrogates), is stored as its hash."""
    if key is None:
        return None
    if len(key) <= 255 and "\x00" not in key:
        try:
            key.encode("utf-8")
            return key
        except UnicodeEncodeError:
            pass
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _storable_text(text: str | None) -> str:
    return (text or "").replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def commit_with_enqueue(delivery: Delivery) -> None:
    db.session.flush()
    delivery_id = delivery.id
    after_commit(lambda: enqueue_processing(delivery_id))
    commit()


def enqueue_processing(delivery_id: int) -> bool:
    return jobs.PROCESS_DELIVERY.enqueue(delivery_id)


def _lock(delivery_id: int) -> Delivery | None:
    return db.session.execute(
        select(Delivery).where(Delivery.id == delivery_id).with_for_update()).scalar_one_or_none()


def claim(delivery_id: int) -> bool:
    """Record, in a commit of its own, that a run starts processing this delivery; False
    when there is nothing to do: gone, no longer `received`, or quarantined now because as
    many runs before this one died without finishing it."""
    delivery = _lock(delivery_id)
    if delivery is None or delivery.status != "received":
        db.session.rollback()
        return False
    if delivery.claims >= current_app.config["DELIVERY_MAX_CLAIMS"]:
        log.warning("delivery %s quarantined: %d runs died processing it", delivery_id,
                    delivery.claims)
        _fail(delivery, f"worker died while processing (claimed {delivery.claims} times "
                        "without finishing); replay it after a fix")
        return False
    delivery.claims += 1
    commit()
    return True


def unclaim(delivery_ids: list[int]) -> None:
    """These runs end in order (to be retried): their claims are not deaths."""
    db.session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids),
                                              Delivery.claims > 0)
                       .values(claims=Delivery.claims - 1)
                       .execution_options(synchronize_session=False))
    commit()


def process(delivery_id: int, *, final_attempt: bool = True) -> str | None:
    """Parse a stored delivery and apply its events; returns the delivery's new status.

    Idempotent: the row lock (a write transaction on SQLite) serializes concurrent runs and
    a delivery that is no longer `received` is left alone. Whatever fails, the final commit
    included, ends `failed` with a readable error on the last attempt.
    """
    if not claim(delivery_id):
        return None
    delivery = _lock(delivery_id)
    if delivery is None or delivery.status != "received":
        db.session.rollback()
        return None
    channel = db.session.get(Channel, delivery.channel_id)
    connector = get_connector(delivery.provider)
    try:
        events = connector.parse(channel_config(channel), as_request(delivery))
    except Exception as exc:  # bad provider payloads are quarantined, never retried forever
        log.info("delivery %s failed to parse: %s", delivery_id, parse_reason(exc))
        return _fail(delivery, readable_error(exc))
    try:
        created = sum(apply_event(channel, delivery, event) for event in events)
        delivery.status = "processed" if created or not _has_messages(events) else "duplicate"
        delivery.attempts += 1
        delivery.processed_at = datetime.now(UTC)
        commit()
    except Exception as exc:
        db.session.rollback()
        # A sender no identity can be made of (an SMS from "INFO", a short code) fails the
        # same way every time: quarantined at once, like a payload that does not parse.
        permanent = isinstance(exc, identity.InvalidIdentity)
        if not final_attempt and not permanent:
            unclaim([delivery_id])
            raise
        if permanent:
            log.info("delivery %s failed: %s", delivery_id, parse_reason(exc))
        else:
            log.exception("delivery %s failed", delivery_id)
        failed = _lock(delivery_id)
        return _fail(failed, readable_error(exc)) if failed is not None else None
    return delivery.status


def parse_reason(exc: Exception) -> str:
    """Why a payload did not parse, for the log: the connector's words, never the body
    (they name fields and positions, not values)."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _has_messages(events: list[InboundEvent]) -> bool:
    return any(isinstance(event, MessageEvent) for event in events)


def readable_error(exc: BaseException) -> str:
    """What an admin reads on a failed delivery: the cause, never the SQL statement or its
    parameters (a database error names the driver's error and its first line only); no
    NULs or lone surrogates (which the database would refuse); no secrets."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else None
    if cause is not None:
        text = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
    else:
        text = f"{type(exc).__name__}: {exc}".split("\n[SQL:", 1)[0].strip()
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
    return redact(text)[:2000]


def _fail(delivery: Delivery, error: str) -> str:
    delivery.status = "failed"
    delivery.error = error[:2000]
    delivery.attempts += 1
    delivery.processed_at = datetime.now(UTC)
    commit()
    return "failed"


def apply_event(channel: Channel, delivery: Delivery, event: InboundEvent) -> int:
    """Apply one normalized event; 1 when it changed something, 0 for a duplicate."""
    if isinstance(event, MessageEvent):
        return int(inbound.receive_message(channel, delivery, event) is not None)
    if isinstance(event, StatusEvent):
        return int(inbound.receive_status(channel, event))
    if isinstance(event, WatermarkEvent):
        return int(inbound.receive_watermark(channel, event))
    if isinstance(event, CallEvent):
        return int(calls.receive_call(channel, delivery, event))
    raise PayloadError(f"no handler for {type(event).__name__}")


def replay(delivery_id: int, only_failed: bool = False) -> Delivery:
    """Put a delivery back to `received` and process it again (after a fix); with
    `only_failed`, only while it is still `failed`."""
    # Locked: a job processing it right now commits first, and its outcome is what is
    # weighed here (read unlocked, a racing replay wrote `received` over `processed`).
    delivery = _lock(delivery_id)
    if delivery is None:
        db.session.rollback()
        raise NotFound("delivery")
    if delivery.status == "received" or (only_failed and delivery.status != "failed"):
        db.session.rollback()
        raise Unprocessable("the delivery is waiting to be processed", "not_processed")
    channel = db.session.get(Channel, delivery.channel_id)
    if channel is None or channel.deleted_at is not None:
        db.session.rollback()  # (its tickets would be answered with a retired channel's keys)
        raise Unprocessable("the delivery's channel was deleted", "channel_deleted")
    delivery.status, delivery.error, delivery.claims = "received", None, 0
    commit_with_enqueue(delivery)
    return delivery


def failed_ids() -> list[int]:
    return list(db.session.execute(
        select(Delivery.id).where(Delivery.status == "failed").order_by(Delivery.id)).scalars())


def replay_failed(progress: Callable[[int], object] | None = None) -> int:
    """Replay every failed delivery; `progress(1)` after each (the CLI's progress bar)."""
    count = 0
    for delivery_id in failed_ids():
        try:
            replay(delivery_id, only_failed=True)
            count += 1
        except (Unprocessable, NotFound):  # a deleted channel's, or replayed meanwhile
            pass
        if progress:
            progress(1)
    return count


def search(status: str | None = None, channel_id: int | None = None) -> Select:
    """Stored deliveries, newest first (the API's and the CLI's listing)."""
    query = (select(Delivery).order_by(Delivery.id.desc())
             .options(defer(Delivery.body), undefer(Delivery.size)))
    if status:
        query = query.where(Delivery.status == status)
    if channel_id:
        query = query.where(Delivery.channel_id == channel_id)
    return query


def _not_being_processed(delivery_ids: list[int]) -> list[int]:
    """Of these claimed deliveries, those no live run holds. A batch keeps its deliveries'
    rows locked until it commits (batches.claim), and so does a delivery's own job: on
    PostgreSQL a row locked by another transaction is being processed right now, by a run
    that has not died. Handing it to its own job anyway (every sweep during a backlog older
    than the grace period: up to a batch's 200 jobs a pass) made that job wait for the
    batch's commit, holding its worker up, only to find nothing to do. SQLite has no row
    locks (a batch holds the database's write lock): every claimed one is handed over."""
    if not delivery_ids or db.session.get_bind().dialect.name != "postgresql":
        return delivery_ids
    # `received` again: a batch that committed since the sweeper's first look has released
    # its locks, and its deliveries are processed, not orphaned.
    return list(db.session.execute(
        select(Delivery.id).where(Delivery.id.in_(delivery_ids),
                                  Delivery.status == "received").order_by(Delivery.id)
        .with_for_update(read=True, key_share=True, skip_locked=True)).scalars())


def sweep_unprocessed() -> int:
    """Re-enqueue deliveries stored but still unprocessed after the grace period: a batch
    job for those never tried, their own retrying job for those a batch handed over; the
    number of jobs enqueued."""
    cutoff = datetime.now(UTC) - timedelta(seconds=current_app.config["SWEEP_AFTER_SECONDS"])
    rows = db.session.execute(
        select(Delivery.id, Delivery.attempts + Delivery.claims)
        .where(Delivery.status == "received", Delivery.received_at < cutoff)
        .order_by(Delivery.id).limit(5000)).all()
    # Never tried: a batch takes them. Tried, or claimed by a run that died: their own job,
    # which counts its claims and quarantines a delivery that keeps killing its worker.
    fresh = sum(1 for _, tried in rows if not tried)
    retried = _not_being_processed([delivery_id for delivery_id, tried in rows if tried])
    db.session.rollback()
    try:
        waiting = queues.jobs_waiting([f"delivery-{i}" for i in retried])
    except Exception as exc:  # Redis still down: the next pass tries again
        log.warning("sweeper: redis unavailable: %s", exc)
        return 0
    lost = [i for i in retried if jobs.PROCESS_DELIVERY.id_for(i) not in waiting]
    enqueued = sum(enqueue_processing(delivery_id) for delivery_id in lost)
    if fresh and signal_batch():
        enqueued += 1
    if lost or fresh:
        log.info("sweeper re-enqueued %d jobs for %d of %d unprocessed deliveries", enqueued,
                 fresh + len(lost), len(rows))
    return enqueued
