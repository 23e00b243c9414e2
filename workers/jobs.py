"""Job entry points: thin, take ids, run inside the worker's one app context."""

from __future__ import annotations

from flask import current_app
from rq import get_current_job

from helpdesk.services.ingest import batches as delivery_batches
from helpdesk.services.ingest import deliveries, media
from helpdesk.services.outbound import sending as outbound
from helpdesk.services.outbound import surveys
from helpdesk.services.routing import queue
from helpdesk.services.routing import scoring as routing


def _final_attempt() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


def process_delivery(delivery_id: int) -> str | None:
    """Parse a stored delivery and apply its events (idempotent)."""
    return deliveries.process(delivery_id, final_attempt=_final_attempt())


def process_deliveries() -> int:
    """Process the stored deliveries waiting for their first processing, in batches."""
    return delivery_batches.process_waiting()


def route_ticket(ticket_id: int) -> None:
    """Score urgency and set priority (idempotent)."""
    routing.route_ticket(ticket_id, current_app.config["URGENCY_CONFIG"])


def route_tickets() -> int:
    """Score the tickets waiting to be routed, in batches."""
    return routing.route_waiting(current_app.config["URGENCY_CONFIG"])


def send_message(message_id: int) -> str | None:
    """Send one queued outbound message through its channel (idempotent)."""
    return outbound.send(message_id, final_attempt=_final_attempt())


def check_sla(ticket_id: int, clock: str, kind: str, due_iso: str) -> bool:
    """An exact SLA timer (warning or breach); a no-op if the deadline moved or was met."""
    return routing.sla_timer(ticket_id, clock, kind, due_iso,
                             current_app.config["URGENCY_CONFIG"])


def fetch_media(attachment_id: int) -> str:
    """Fetch the bytes of a file the provider only named (WhatsApp, Telegram; idempotent)."""
    return media.fetch(attachment_id)


def fill_agent(agent_id: int) -> int:
    """Push mode: give an agent with free capacity what waits in the queue."""
    return queue.fill(agent_id)


def send_survey(survey_id: int, base_url: str = "") -> str | None:
    """Send a scheduled satisfaction survey on its ticket's channel (idempotent)."""
    return surveys.send(survey_id, base_url)
