"""X API v2: a direct message to the customer (`/2/dm_conversations/with/{id}/messages`)."""

from __future__ import annotations

from helpdesk.senders.base import Outgoing, SendError, SendResult, body_of, post, refused, secret

PATH = "/2/dm_conversations/with/{participant_id}/messages"


def send(out: Outgoing) -> SendResult:
    """Send the DM with the channel's user-context token; `dm_event_id` is our external id."""
    url = out.endpoint.rstrip("/") + PATH.format(participant_id=out.recipient)
    response = post("X", url, json={"text": out.text},
                    headers={"Authorization": f"Bearer {secret(out, 'access_token')}"})
    data = body_of(response)
    if not 200 <= response.status_code < 300:
        raise refused("X", response, _error(data))
    result = data.get("data") if isinstance(data.get("data"), dict) else {}
    if not result.get("dm_event_id"):
        raise SendError("X answered without a dm_event_id")
    return SendResult(external_id=str(result["dm_event_id"]))


def _error(data: dict) -> str | None:
    """X's problem documents (`title`, `detail`) or the older `errors[].message`."""
    if data.get("detail") or data.get("title"):
        return str(data.get("detail") or data.get("title"))
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or "") or None
    return None
