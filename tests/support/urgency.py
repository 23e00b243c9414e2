"""A ticket's urgency facts for one first message, as the urgency tests build them."""

from __future__ import annotations

from helpdesk.services.routing.urgency import UrgencyFacts


def facts(text: str, channel: str = "email", tier: str = "standard",
          sender_priority: str | None = None, texts: list[str] | None = None) -> UrgencyFacts:
    """One customer's first message (or `texts`) on `channel`, one contact, no SLA clock."""
    return UrgencyFacts(channel_kind=channel, texts=texts or [text], tier=tier, recent_contacts=1,
                        seconds_to_deadline=None, sla_target_seconds=None,
                        sender_priority=sender_priority)


def reason(result, factor: str):
    """The scored result's reason of `factor` ("intent", "tier", ...), or None."""
    return next((r for r in result.reasons if r.factor == factor), None)
