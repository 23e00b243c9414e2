"""Runtime settings an admin can change through the API (stored, with defaults)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from helpdesk.errors import ApiError
from helpdesk.extensions import db
from helpdesk.models import Setting
from helpdesk.services.transaction import commit

# Capacity an item takes from an agent (1.0 = the whole agent): one live call, three chats,
# ten asynchronous tickets.
DEFAULT_WEIGHTS = {"voice": 1.0, "chat": 1 / 3, "default": 0.1}


def defaults() -> dict[str, Any]:
    return {"routing_mode": current_app.config["ROUTING_MODE"],
            "capacity_weights": dict(DEFAULT_WEIGHTS)}


def _validate(key: str, value: Any) -> None:
    if key == "routing_mode" and value not in ("pull", "push"):
        raise ApiError(400, "routing_mode is pull or push", "validation_error",
                       {"routing_mode": ["one of pull, push"]})
    if key == "capacity_weights":
        if not isinstance(value, dict) or not all(
                isinstance(v, int | float) and 0 < v <= 1 for v in value.values()):
            raise ApiError(400, "capacity_weights maps channel kinds to (0, 1]",
                           "validation_error", {"capacity_weights": ["weights in (0, 1]"]})


def get_all() -> dict[str, Any]:
    values = defaults()
    for row in db.session.execute(select(Setting)).scalars():
        values[row.key] = row.value
    return values


def get(key: str) -> Any:
    row = db.session.get(Setting, key)
    return row.value if row is not None else defaults()[key]


def update(changes: dict[str, Any]) -> dict[str, Any]:
    """Change settings; unknown keys and bad values are 400."""
    known = defaults()
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ApiError(400, "unknown settings", "validation_error",
                       {name: ["unknown setting"] for name in unknown})
    for key, value in changes.items():
        _validate(key, value)
        row = db.session.get(Setting, key)
        if row is None:
            db.session.add(Setting(key=key, value=value))
        else:
            row.value = value
    commit()
    return get_all()
