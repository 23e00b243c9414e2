"""The audit log: who exported, erased or merged whom (never message bodies or secrets)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from helpdesk.extensions import db
from helpdesk.models import Agent, AuditEntry


def record(actor: Agent | None, action: str, subject_type: str, subject_id: int | None,
           **data: Any) -> AuditEntry:
    """Append one entry in the current transaction (committed with the change it records)."""
    entry = AuditEntry(actor_id=actor.id if actor else None, action=action,
                       subject_type=subject_type, subject_id=subject_id, data=data)
    db.session.add(entry)
    return entry


def search(filters: dict[str, Any]) -> Select:
    """The audit list query for API filters, newest first."""
    query = select(AuditEntry)
    for name in ("action", "subject_type", "subject_id", "actor_id"):
        if filters.get(name) is not None:
            query = query.where(getattr(AuditEntry, name) == filters[name])
    return query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
