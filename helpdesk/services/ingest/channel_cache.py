"""Webhook channels by key, remembered per process for the hot path.

A webhook needs its channel (provider, kind, settings, secrets) before anything else, and
reading it costs a query per request, as much as storing the delivery itself. Each process
keeps the channels it has served, stamped with the channels' version: a counter in Redis
bumped after every committed change to a channel. The webhook reads the version in the round
trip its rate limit makes anyway, and uses an entry only while its stamp is the current
version; with Redis unreachable, an entry is trusted for a few seconds only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app

from helpdesk.connectors.base import ChannelConfig
from helpdesk.queues import redis_connection
from helpdesk.services import channels
from helpdesk.services.channels import VERSION

log = logging.getLogger(__name__)
TRUST_WITHOUT_VERSION_SECONDS = 5.0  # Redis unreachable: how long an entry is trusted
MAX_AGE_SECONDS = 60.0  # in any case (a change made while Redis was down bumped nothing)
_CACHE = "helpdesk.channel_cache"


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
