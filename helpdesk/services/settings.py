"""Runtime settings an admin can change through the API (stored, with defaults)."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, select

from helpdesk.errors import ApiError
from helpdesk.extensions import db
from helpdesk.models import Agent, Setting
from helpdesk.services import audit, contact_reasons
from helpdesk.services.transaction import commit

# Capacity an item takes from an agent (1.0 = the whole agent): one live call, three chats,
# ten asynchronous tickets.
DEFAULT_WEIGHTS = {"voice": 1.0, "chat": 1 / 3, "default": 0.1}
# Which satisfaction surveys follow a solved ticket, after how long, and how often at most.
SURVEY_DEFAULTS = {"csat": True, "ces": False, "nps": False, "delay_seconds": 3600,
                   "min_days_between": 30}
SURVEY_LIMITS = {"delay_seconds": 30 * 24 * 3600, "min_days_between": 3650}


def defaults() -> dict[str, Any]:
    return {"routing_mode": current_app.config["ROUTING_MODE"],
            "capacity_weights": dict(DEFAULT_WEIGHTS), "surveys": dict(SURVEY_DEFAULTS),
            "contact_reasons": [], "contact_reason_rules": {}}


def _validate(key: str, value: Any) -> None:
    if key == "routing_mode" and value not in ("pull", "push"):
        raise ApiError(400, "routing_mode is pull or push", "validation_error",
                       {"routing_mode": ["one of pull, push"]})
    if key == "capacity_weights":
        if not isinstance(value, dict) or not all(
                isinstance(v, int | float) and 0 < v <= 1 for v in value.values()):
            raise ApiError(400, "capacity_weights maps channel kinds to (0, 1]",
                           "validation_error", {"capacity_weights": ["weights in (0, 1]"]})
    if key == "surveys":
        _validate_surveys(value)
    if key in ("contact_reasons", "contact_reason_rules"):
        contact_reasons.validate_setting(key, value)


def _survey_option_error(name: str, value: Any) -> str | None:
    if name not in SURVEY_DEFAULTS:
        return "unknown survey option"
    if name in SURVEY_LIMITS:
        if isinstance(value, bool) or not isinstance(value, int):
            return "a whole number"
        if not 0 <= value <= SURVEY_LIMITS[name]:
            return f"between 0 and {SURVEY_LIMITS[name]}"
    elif not isinstance(value, bool):
        return "true or false"
    return None


def _validate_surveys(value: Any) -> None:
    if not isinstance(value, dict):
        raise ApiError(400, "surveys is an object", "validation_error",
                       {"surveys": ["an object"]})
    errors = {name: [error] for name, item in value.items()
              if (error := _survey_option_error(name, item))}
    if errors:
        raise ApiError(400, "invalid survey settings", "validation_error", {"surveys": errors})


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
    found = db.session.execute(_value_of(), {"key": key}).first()
    return found[0] if found is not None else defaults()[key]


def surveys() -> dict[str, Any]:
    """The survey options, stored ones over the defaults."""
    return {**SURVEY_DEFAULTS, **(get("surveys") or {})}


def update(changes: dict[str, Any], actor: Agent | None = None) -> dict[str, Any]:
    """Change settings (audited); unknown keys and bad values are 400."""
    known = defaults()
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ApiError(400, "unknown settings", "validation_error",
                       {name: ["unknown setting"] for name in unknown})
    for key, value in changes.items():
        _validate(key, value)
        if key == "surveys":  # a partial change keeps the other survey options
            value = {**surveys(), **value}
        row = db.session.get(Setting, key)
        if row is None:
            db.session.add(Setting(key=key, value=value))
        else:
            row.value = value
    audit.record(actor, "settings.changed", "settings", None, changes=changes)
    commit()
    return get_all()
