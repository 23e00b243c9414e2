"""Meta Graph API send: WhatsApp Cloud, Messenger and Instagram messaging."""

from __future__ import annotations

from helpdesk.senders.base import (
    Outgoing,
    SendError,
    SendResult,
    bare_address,
    body_of,
    post,
    refused,
    secret,
    setting,
)

GRAPH_VERSION = "v21.0"
# The channel setting naming the sending account, per kind.
ACCOUNT_SETTINGS = {"whatsapp": "phone_number_id", "messenger": "page_id",
                    "instagram": "instagram_account_id"}


def payload(out: Outgoing) -> dict:
    """A text message: WhatsApp's shape, or Messenger/Instagram's (a reply, `RESPONSE`)."""
    if out.kind == "whatsapp":
        return {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": bare_address(out.recipient).lstrip("+"), "type": "text",
                "text": {"preview_url": False, "body": out.text}}
    return {"recipient": {"id": out.recipient}, "messaging_type": "RESPONSE",
            "message": {"text": out.text}}


def send(out: Outgoing) -> SendResult:
    """POST `/{id}/messages`; the `wamid` (WhatsApp) or `mid` is our external id."""
    name = ACCOUNT_SETTINGS.get(out.kind)
    if name is None:
        raise SendError(f"Meta has no {out.kind} channel", retryable=False)
    url = f"{out.endpoint.rstrip('/')}/{GRAPH_VERSION}/{setting(out, name)}/messages"
    response = post("Meta", url, json=payload(out),
                    headers={"Authorization": f"Bearer {secret(out, 'access_token')}"})
    data = body_of(response)
    if not 200 <= response.status_code < 300:
        error = refused("Meta", response, _error(data))
        error.retryable = error.retryable or _transient(data)
        raise error
    external_id = _message_id(data)
    if not external_id:
        raise SendError("Meta answered without a message id")
    return SendResult(external_id=external_id)


def _message_id(data: dict) -> str | None:
    """WhatsApp's `messages[0].id`, or Messenger/Instagram's `message_id`."""
    messages = data.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return str(messages[0].get("id") or "") or None
    return str(data.get("message_id") or "") or None


# Graph answers throttling and passing trouble with HTTP 400 too: these codes (rate limits
# of the app, the page, the WhatsApp number or pair, "service unavailable") and any error
# marked `is_transient` are worth retrying; other 400s are final.
_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131016, 131048,
                              131056})


def _transient(data: dict) -> bool:
    error = data.get("error")
    return isinstance(error, dict) and (error.get("is_transient") is True
                                        or error.get("code") in _TRANSIENT_CODES)


def _error(data: dict) -> str | None:
    """Graph errors: `{"error": {"message", "type", "code", "error_subcode", …}}`."""
    error = data.get("error")
    if not isinstance(error, dict) or not error.get("message"):
        return None
    return f"Meta error {error.get('code') or 'unknown'}: {error['message']}"
