"""Learning from people: hand-set priorities stored with what the scorer saw (issue 16).

`record` runs when a person sets a ticket's priority (PATCH /tickets/<id>); `samples` turns
the stored rows back into tuning samples for `helpdesk urgency evaluate` and `tune`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Agent, Ticket, UrgencyCorrection
from helpdesk.services.routing.tuning import LEVELS, Sample
from helpdesk.services.routing.urgency import (
    UrgencyConfig,
    UrgencyFeatures,
    extract_features,
    priority_for,
)


def record(ticket: Ticket, chosen: str, actor: Agent | None,
           config: UrgencyConfig) -> UrgencyCorrection:
    """Store a correction row: the ticket's score and reasons now, the features the scorer
    extracts from it now, and the priority the person chose."""
    from helpdesk.services.routing import scoring as routing  # routing imports the ticket services

    features = extract_features(routing.urgency_facts(ticket, datetime.now(UTC)), config)
    row = UrgencyCorrection(
        ticket_id=ticket.id, agent_id=actor.id if actor else None, score=ticket.urgency or 0,
        scored_priority=priority_for(ticket.urgency or 0, config),
        previous_priority=ticket.priority, chosen_priority=chosen,
        reasons=list(ticket.urgency_reasons or []), features=features.as_dict())
    db.session.add(row)
    return row


def latest_per_ticket() -> list[UrgencyCorrection]:
    """Each ticket's last correction (a person changing their mind counts once)."""
    rows = db.session.execute(select(UrgencyCorrection).order_by(
        UrgencyCorrection.ticket_id, UrgencyCorrection.id)).scalars()
    latest: dict[int, UrgencyCorrection] = {}
    for row in rows:
        latest[row.ticket_id] = row
    return list(latest.values())


def samples(rows: list[UrgencyCorrection]) -> list[Sample]:
    return [Sample(UrgencyFeatures.from_dict(row.features), row.chosen_priority, None,
                   {"ticket_id": str(row.ticket_id)})
            for row in rows if row.chosen_priority in LEVELS and row.features]
