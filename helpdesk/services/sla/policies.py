"""SLA policies (admin): one per priority, optional business-hours calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from helpdesk.errors import Conflict, Invalid, NotFound
from helpdesk.extensions import db
from helpdesk.models import PRIORITIES, Agent, SlaPolicy, Ticket
from helpdesk.services import audit
from helpdesk.services.sla.business_hours import Calendar, add_business_seconds, check_input
from helpdesk.transaction import commit, lock_name


def _lock(priority: str) -> None:
    """One change to a priority's policy at a time (`transaction.lock_name`)."""
    lock_name(f"sla_policy:{priority}")


def all_policies() -> list[SlaPolicy]:
    rows = db.session.execute(select(SlaPolicy)).scalars().all()
    return sorted(rows, key=lambda p: PRIORITIES.index(p.priority))


def put(priority: str, data: dict[str, Any], actor: Agent | None = None) -> SlaPolicy:
    """Create or replace the policy for `priority`; applies to tickets from now on."""
    if priority not in PRIORITIES:
        raise NotFound("priority")
    if data.get("calendar") is not None:
        try:
            calendar = Calendar.from_dict(data["calendar"])
            check_input(data["calendar"])
            # Its deadlines must fall within reach (a minute a week and a ten-year target
            # would not): the targets from now, as a ticket opened now gets them.
            for seconds in (data.get("first_response_seconds"), data.get("resolution_seconds")):
                if seconds:
                    add_business_seconds(datetime.now(UTC), seconds, calendar)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise Invalid(f"calendar: {exc}", {"calendar": [str(exc)]}) from exc
    if data.get("first_response_seconds") is None and data.get("resolution_seconds") is None:
        raise Invalid("set first_response_seconds or resolution_seconds",
                      {"first_response_seconds": ["one target required"]})
    _lock(priority)  # (two first PUTs at once: a key violation, a 500)
    policy = db.session.execute(
        select(SlaPolicy).where(SlaPolicy.priority == priority)).scalar_one_or_none()
    if policy is None:
        policy = SlaPolicy(priority=priority)
        db.session.add(policy)
    for key, value in data.items():
        setattr(policy, key, value)
    audit.record(actor, "sla_policy.saved", "sla_policy", None, priority=priority, **data)
    commit()
    return policy


def delete(priority: str, actor: Agent | None = None) -> None:
    """Delete an unused policy. One that tickets use (solved ones too: their metrics are
    measured against it) is a 409 `policy_in_use`; PUT changes its targets instead."""
    _lock(priority)  # (a PUT meanwhile updated a row gone: a 500)
    policy = db.session.execute(
        select(SlaPolicy).where(SlaPolicy.priority == priority)).scalar_one_or_none()
    if policy is None:
        raise NotFound("SLA policy")
    using = db.session.execute(select(func.count()).select_from(Ticket).where(
        Ticket.sla_policy_id == policy.id)).scalar_one()
    if using:
        raise Conflict(f"{using} tickets use this policy; PUT changes its targets",
                       "policy_in_use")
    db.session.delete(policy)
    audit.record(actor, "sla_policy.deleted", "sla_policy", None, priority=priority)
    commit()
