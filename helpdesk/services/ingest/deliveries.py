"""Deliveries: store every verified webhook, then process it exactly once in effect."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import parse_qs, urlsplit

from flask import current_app
from sqlalchemy import Insert, Select, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from helpdesk import jobs, queues
from helpdesk.connectors import get_connector
from helpdesk.connectors.base import (
    CallEvent,
    ChannelConfig,
    InboundEvent,
    MessageEvent,
    PayloadError,
    StatusEvent,
    WebhookRequest,
)
from helpdesk.errors import NotFound, Unprocessable
from helpdesk.extensions import db
from helpdesk.models import Channel, Delivery
from helpdesk.services.ingest import calls, inbound
from helpdesk.transaction import after_commit, commit

log = logging.getLogger(__name__)



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
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization",
                                                                            "cookie")}
    values = {"channel_id": channel.id, "provider": channel.provider,
              "dedupe_key": dedupe_key[:255], "replay_token": replay_token,
              "method": request.method, "url": request.url,
              "content_type": request.content_type, "headers": headers, "body": request.body}
    try:
        delivery_id = db.session.connection().execute(_insert_statement(), values).scalar()
        db.session.commit()
    except IntegrityError:  # a duplicate: the unique (channel, dedupe key) already holds it
        db.session.rollback()
        return None
    if delivery_id is not None:
        signal_batch()
    return delivery_id


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


def replay_token_fresh(channel: ChannelConfig, token: str, dedupe_key: str) -> bool:
    """A one-time token is fresh unless seen before with a different delivery."""
    seen = db.session.execute(
        select(Delivery.dedupe_key).where(Delivery.channel_id == channel.id,
                                          Delivery.replay_token == token)).scalar_one_or_none()
    return seen is None or seen == dedupe_key[:255]


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


def process(delivery_id: int, *, final_attempt: bool = True) -> str | None:
    """Parse a stored delivery and apply its events; returns the delivery's new status.

    Idempotent: the row lock (a write transaction on SQLite) serializes concurrent runs and
    a delivery that is no longer `received` is left alone.
    """
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
        return _fail(delivery, f"{type(exc).__name__}: {exc}")
    try:
        created = sum(apply_event(channel, delivery, event) for event in events)
    except Exception as exc:
        db.session.rollback()
        if not final_attempt:
            raise
        log.exception("delivery %s failed", delivery_id)
        return _fail(_lock(delivery_id), f"{type(exc).__name__}: {exc}")
    delivery.status = "processed" if created or not _has_messages(events) else "duplicate"
    delivery.attempts += 1
    delivery.processed_at = datetime.now(UTC)
    commit()
    return delivery.status


def parse_reason(exc: Exception) -> str:
    """Why a payload did not parse, for the log: the connector's words, never the body
    (they name fields and positions, not values)."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _has_messages(events: list[InboundEvent]) -> bool:
    return any(isinstance(event, MessageEvent) for event in events)


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
    if isinstance(event, CallEvent):
        return int(calls.receive_call(channel, delivery, event))
    raise PayloadError(f"no handler for {type(event).__name__}")


def replay(delivery_id: int) -> Delivery:
    """Put a delivery back to `received` and process it again (after a fix)."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound("delivery")
    if delivery.status == "received":
        raise Unprocessable("the delivery is waiting to be processed", "not_processed")
    delivery.status, delivery.error = "received", None
    commit_with_enqueue(delivery)
    return delivery


def failed_ids() -> list[int]:
    return list(db.session.execute(
        select(Delivery.id).where(Delivery.status == "failed").order_by(Delivery.id)).scalars())


def replay_failed(progress: Callable[[int], object] | None = None) -> int:
    """Replay every failed delivery; `progress(1)` after each (the CLI's progress bar)."""
    count = 0
    for delivery_id in failed_ids():
        replay(delivery_id)
        count += 1
        if progress:
            progress(1)
    return count


def search(status: str | None = None, channel_id: int | None = None) -> Select:
    """Stored deliveries, newest first (the API's and the CLI's listing)."""
    query = select(Delivery).order_by(Delivery.id.desc())
    if status:
        query = query.where(Delivery.status == status)
    if channel_id:
        query = query.where(Delivery.channel_id == channel_id)
    return query


def sweep_unprocessed() -> int:
    """Re-enqueue deliveries stored but still unprocessed after the grace period: a batch
    job for those never tried, their own retrying job for those a batch handed over; the
    number of jobs enqueued."""
    cutoff = datetime.now(UTC) - timedelta(seconds=current_app.config["SWEEP_AFTER_SECONDS"])
    rows = db.session.execute(
        select(Delivery.id, Delivery.attempts)
        .where(Delivery.status == "received", Delivery.received_at < cutoff)
        .order_by(Delivery.id).limit(5000)).all()
    db.session.rollback()
    fresh = sum(1 for _, attempts in rows if not attempts)
    retried = [delivery_id for delivery_id, attempts in rows if attempts]
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
