"""Channels: configured provider endpoints; secrets are write-only."""

from __future__ import annotations

import logging
import secrets as token_source
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from helpdesk.connectors import get_connector, providers
from helpdesk.errors import ApiError, Invalid, NotFound
from helpdesk.extensions import db
from helpdesk.models import Agent, Channel
from helpdesk.queues import redis_connection
from helpdesk.services import audit
from helpdesk.transaction import after_commit, commit

log = logging.getLogger(__name__)
# Bumped after every committed change to a channel: processes that remember channels
# (channel_cache) read them again.
VERSION = "helpdesk:channels:version"


def _invalid(fields: dict[str, Any], message: str = "invalid channel") -> ApiError:
    return Invalid(message, fields)


def _check(provider: str, kind: str, settings: dict, secrets: dict, *, partial: bool,
           checked: set[str] | None = None) -> None:
    """400 naming every problem; the values of the settings named in `checked` only (all
    without it: a change leaves alone a value stored before a rule was made)."""
    connector = get_connector(provider)
    if connector is None:
        raise _invalid({"provider": [f"one of {sorted(providers())}"]}, "unknown provider")
    if kind not in connector.kinds:
        raise _invalid({"kind": [f"{provider} serves {sorted(connector.kinds)}"]})
    errors = _unknown_names(connector, settings, secrets)
    if not partial:
        for name in sorted(connector.required_secrets - set(secrets)):
            errors.setdefault("secrets", {})[name] = ["required"]
        for name in sorted(connector.required_settings - set(settings)):
            errors.setdefault("settings", {})[name] = ["required"]
    for name, value in settings.items():
        problem = _setting_problem(name, value) if checked is None or name in checked else None
        if problem:
            errors.setdefault("settings", {})[name] = [problem]
    for name, value in secrets.items():  # keys, tokens, passwords: text (HMAC keys are bytes)
        if not isinstance(value, str) or not value:
            errors.setdefault("secrets", {})[name] = ["must be a non-empty string"]
    if errors:
        raise _invalid(errors)


def _setting_problem(name: str, value: Any) -> str | None:
    """What is wrong with a setting's value, if anything: URLs are http(s) (a reply to an
    `ftp:` callback was retried for an hour before it failed), the chat's `website` is an
    origin as browsers send it, `address` an email address, the others provider ids (text,
    or a JSON integer)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return "must be a non-empty string"
    if name in ("callback_url", "website"):
        parts = _http_url(value)
        if parts is None:
            return "must be an http:// or https:// URL"
        if name == "website" and (parts.path not in ("", "/") or parts.query or parts.fragment
                                  or parts.username is not None):
            return "must be an origin, such as https://shop.example.com (no path)"
    elif name == "address":
        local, _, domain = value.rpartition("@") if isinstance(value, str) else ("", "", "")
        if not local or not domain.strip(".") or any(c.isspace() for c in value):
            return "must be an email address"
    return None


def _http_url(value: Any) -> SplitResult | None:
    """`value` as an http(s) URL with a host (and a port, if any, that is one), else None.
    No white space or control character anywhere (`http://exa mple.com/` or a CR LF passed,
    and every reply to it was retried for 45 minutes before it failed)."""
    if not isinstance(value, str) or any(c.isspace() or ord(c) < 32 or ord(c) == 127
                                         for c in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:  # "http://[::1": an unclosed address
        return None
    return parts if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def website_origin(channel: Channel) -> str | None:
    """A chat channel's `website` as browsers write it in `Origin` (CORS): the scheme and
    host in lower case, the port only when it is not the scheme's own
    (`HTTPS://Shop.example.com:443/` is `https://shop.example.com`)."""
    parts = _http_url((channel.settings or {}).get("website"))
    if parts is None:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    host = f"[{host}]" if ":" in host else host
    port = parts.port if parts.port not in (None, {"http": 80, "https": 443}[scheme]) else None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _unknown_names(connector: Any, settings: dict, secrets: dict) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    unknown = sorted(set(settings) - connector.required_settings - connector.optional_settings)
    if unknown:
        errors["settings"] = {name: ["unknown setting"] for name in unknown}
    unknown = sorted(set(secrets) - connector.required_secrets - connector.optional_secrets)
    if unknown:
        errors["secrets"] = {name: ["unknown secret"] for name in unknown}
    return errors


def create(name: str, kind: str, provider: str, settings: dict | None = None,
           secrets: dict | None = None, actor: Agent | None = None) -> Channel:
    """A new channel with a fresh unguessable webhook key."""
    settings, secrets = settings or {}, secrets or {}
    _check(provider, kind, settings, secrets, partial=False)
    channel = Channel(name=name, kind=kind, provider=provider, settings=settings,
                      secrets=secrets, key=token_source.token_urlsafe(24))
    db.session.add(channel)
    db.session.flush()
    _audit(actor, "channel.created", channel, settings, secrets)
    after_commit(_bump_version, once=True)
    commit()
    return channel


def _audit(actor: Agent | None, action: str, channel: Channel, settings: dict,
           secrets: dict) -> None:
    """Record the change by setting and secret names: secret values never leave the row."""
    audit.record(actor, action, "channel", channel.id, provider=channel.provider,
                 settings=sorted(settings), secrets=sorted(secrets))


def _bump_version() -> None:
    try:
        redis_connection().incr(VERSION)
    except Exception as exc:  # remembered copies expire within a minute anyway
        log.warning("channel version not bumped: %s", exc)


def get(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None or channel.deleted_at is not None:
        raise NotFound("channel")
    return channel


def by_key(provider: str, key: str) -> Channel | None:
    channel = db.session.execute(select(Channel).where(Channel.key == key)).scalar_one_or_none()
    if channel is None or channel.deleted_at is not None or channel.provider != provider:
        return None
    return channel


def active() -> Any:
    return select(Channel).where(Channel.deleted_at.is_(None)).order_by(Channel.id)


def update(channel_id: int, changes: dict[str, Any], actor: Agent | None = None) -> Channel:
    """Rename, or merge new settings and secrets in (a null value removes one)."""
    channel = get(channel_id)
    # An unknown name is refused even with a null value (which would otherwise just vanish).
    connector = get_connector(channel.provider)  # (None: `_check` below says so)
    unknown = connector and _unknown_names(connector, changes.get("settings", {}),
                                           changes.get("secrets", {}))
    if unknown:
        raise _invalid(unknown)
    settings = {**channel.settings, **changes.get("settings", {})}
    secrets = {**channel.secrets, **changes.get("secrets", {})}
    settings = {k: v for k, v in settings.items() if v is not None}
    secrets = {k: v for k, v in secrets.items() if v is not None}
    _check(channel.provider, channel.kind, settings, secrets, partial=False,
           checked=set(changes.get("settings", {})))
    if "name" in changes:
        channel.name = changes["name"]
    channel.settings, channel.secrets = settings, secrets
    _audit(actor, "channel.updated", channel, changes.get("settings", {}),
           changes.get("secrets", {}))
    after_commit(_bump_version, once=True)
    commit()
    return channel


def delete(channel_id: int, actor: Agent | None = None) -> None:
    """Retire a channel: its webhook stops answering; its history stays."""
    channel = get(channel_id)
    channel.deleted_at = datetime.now(UTC)
    channel.key = f"deleted-{channel.id}-{channel.key}"[:64]
    audit.record(actor, "channel.deleted", "channel", channel.id)
    after_commit(_bump_version, once=True)
    commit()


def rotate_secrets() -> int:
    """Re-encrypt every channel's secrets under the current HELPDESK_SECRET_KEY (read with
    it or any of HELPDESK_OLD_SECRET_KEYS); the number of channels rewritten."""
    channels = list(db.session.execute(select(Channel).order_by(Channel.id)).scalars())
    for channel in channels:
        flag_modified(channel, "secrets")
    commit()
    return len(channels)
