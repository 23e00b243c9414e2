"""Channels remembered per process for the hot paths: by key for webhooks, by id for the
ingest batches.

A webhook needs its channel (provider, kind, settings, secrets) before anything else, and
reading it costs a query per request, as much as storing the delivery itself. Each process
keeps the channels it has served, stamped with the channels' version: a counter in Redis
bumped after every committed change to a channel. The webhook reads the version in the round
trip its rate limit makes anyway, and uses an entry only while its stamp is the current
version; with Redis unreachable, an entry is trusted for a few seconds only. An ingest batch
reads the version once (one GET) and takes the channels of its deliveries from memory while
their stamps are current: a lone delivery then costs no channel query nor decryption.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import make_transient_to_detached

from helpdesk.connectors.base import ChannelConfig
from helpdesk.extensions import db
from helpdesk.models import Channel
from helpdesk.queues import redis_connection
from helpdesk.services import channels
from helpdesk.services.channels import VERSION

log = logging.getLogger(__name__)
TRUST_WITHOUT_VERSION_SECONDS = 5.0  # Redis unreachable: how long an entry is trusted
MAX_AGE_SECONDS = 60.0  # in any case (a change made while Redis was down bumped nothing)
_CACHE = "helpdesk.channel_cache"
_BY_ID = "helpdesk.channel_cache.by_id"


@dataclass(frozen=True)
class Entry:
    config: ChannelConfig
    version: bytes | None   # the channels' version it was read under
    loaded_at: float


def _entries() -> dict[tuple[str, str], Entry]:
    return current_app.extensions.setdefault(_CACHE, {})


def lookup(provider: str, key: str) -> ChannelConfig | None:
    """The live channel with this key, from this process's memory when it has it."""
    entry = _entries().get((provider, key))
    if entry is not None:
        return entry.config
    try:
        version = redis_connection().get(VERSION)
    except Exception as exc:  # unstamped: trusted briefly, then read again
        log.warning("channel version unavailable: %s", exc)
        version = None
    return _load(provider, key, version)


def confirm(provider: str, key: str, version: object) -> ChannelConfig | None:
    """The channel again if `version` (read from Redis now) says it may have changed since
    it was remembered: None when it is gone. `version` is rate_limit.UNAVAILABLE or the
    counter's value."""
    entry = _entries().get((provider, key))
    if entry is not None:
        age = time.monotonic() - entry.loaded_at
        known = isinstance(version, bytes | None)
        if (known and version == entry.version and age < MAX_AGE_SECONDS) or (
                not known and age < TRUST_WITHOUT_VERSION_SECONDS):
            return entry.config
    return _load(provider, key, version if isinstance(version, bytes) else None)


def _load(provider: str, key: str, version: bytes | None) -> ChannelConfig | None:
    channel = channels.by_key(provider, key)
    if channel is None:
        _entries().pop((provider, key), None)
        return None
    config = ChannelConfig(id=channel.id, kind=channel.kind, provider=channel.provider,
                           key=channel.key, settings=dict(channel.settings or {}),
                           secrets=dict(channel.secrets or {}))
    _entries()[(provider, key)] = Entry(config, version, time.monotonic())
    return config


@dataclass(frozen=True)
class Loaded:
    channel: Channel        # detached: never in a session, never expired
    version: bytes | None
    loaded_at: float


def in_session(channel_ids: set[int]) -> dict[int, Channel]:
    """These channels, in the current session (as if read now), from this process's memory
    while the channels' version says they did not change; read (one query) otherwise."""
    entries: dict[int, Loaded] = current_app.extensions.setdefault(_BY_ID, {})
    try:
        version = redis_connection().get(VERSION)
        known = True
    except Exception as exc:  # unstamped: trusted briefly, then read again
        log.warning("channel version unavailable: %s", exc)
        version, known = None, False
    now = time.monotonic()
    stale = {channel_id for channel_id in channel_ids if not _fresh(
        entries.get(channel_id), version, known, now)}
    if stale:
        for row in db.session.connection().execute(_CHANNELS, {"ids": sorted(stale)}):
            channel = Channel(**row._mapping)
            make_transient_to_detached(channel)  # as if loaded, and in no session
            entries[channel.id] = Loaded(channel, version, now)
    return {channel_id: db.session.merge(entries[channel_id].channel, load=False)
            for channel_id in channel_ids if channel_id in entries}


def _fresh(entry: Loaded | None, version: bytes | None, known: bool, now: float) -> bool:
    if entry is None:
        return False
    age = now - entry.loaded_at
    if known:
        return version == entry.version and age < MAX_AGE_SECONDS
    return age < TRUST_WITHOUT_VERSION_SECONDS


_CHANNELS = select(*Channel.__table__.c).where(
    Channel.__table__.c.id.in_(bindparam("ids", expanding=True)))
