"""Runtime settings an admin can change through the API (stored, with defaults)."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, select

from helpdesk.extensions import db
from helpdesk.models import Agent, Setting
from helpdesk.services import audit
from helpdesk.transaction import commit, lock_name

# Capacity an item takes from an agent (1.0 = the whole agent): one live call, three chats,
# ten asynchronous tickets.
DEFAULT_WEIGHTS = {"voice": 1.0, "chat": 1 / 3, "default": 0.1}
# Which satisfaction surveys follow a solved ticket, after how long, and how often at most.
SURVEY_DEFAULTS = {"csat": True, "ces": False, "nps": False, "delay_seconds": 3600,
                   "min_days_between": 30}


def defaults() -> dict[str, Any]:
    return {"routing_mode": current_app.config["ROUTING_MODE"],
            "capacity_weights": dict(DEFAULT_WEIGHTS), "surveys": dict(SURVEY_DEFAULTS),
            "contact_reasons": [], "contact_reason_rules": {}}


def get_all() -> dict[str, Any]:
    values = defaults()
    for row in db.session.execute(select(Setting)).scalars():
        values[row.key] = row.value
    return values


@cache
def _value_of() -> Select:
    """Built once: routing and claims read a setting every time."""
    return select(Setting.value).where(Setting.key == bindparam("key"))


def get(key: str) -> Any:
    found = db.session.connection().execute(_value_of(), {"key": key}).first()
    return found[0] if found is not None else defaults()[key]


def surveys() -> dict[str, Any]:
    """The survey options, stored ones over the defaults."""
    return {**SURVEY_DEFAULTS, **(get("surveys") or {})}


def update(changes: dict[str, Any], actor: Agent | None = None) -> dict[str, Any]:
    """Change settings (audited), as loaded by `SettingsUpdateSchema`. One change at a time:
    a first value is inserted (two at once: a key violation, a 500) and a partial change
    merges into what it read (two at once: one lost)."""
    lock_name("settings")
    for key, value in changes.items():
        if key == "surveys":  # a partial change keeps the other survey options
            value = {**surveys(), **value}
        elif key == "capacity_weights":  # ... and the other kinds' weights (null: dropped)
            value = {kind: weight for kind, weight in {**get(key), **value}.items()
                     if weight is not None}
        row = db.session.get(Setting, key)
        if row is None:
            db.session.add(Setting(key=key, value=value))
        else:
            row.value = value
    audit.record(actor, "settings.changed", "settings", None, changes=changes)
    commit()
    return get_all()
