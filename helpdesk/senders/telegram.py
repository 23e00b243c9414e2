"""Telegram Bot API: `sendMessage` to the customer's chat."""

from __future__ import annotations

from helpdesk.senders.base import Outgoing, SendError, SendResult, body_of, post, refused, secret


def send(out: Outgoing) -> SendResult:
    """Send the reply; `<chat_id>:<message_id>` is our external id, as for inbound messages."""
    url = f"{out.endpoint.rstrip('/')}/bot{secret(out, 'bot_token')}/sendMessage"
    response = post("Telegram", url, json={"chat_id": out.recipient, "text": out.text})
    data = body_of(response)
    if not 200 <= response.status_code < 300 or data.get("ok") is not True:
        if 200 <= response.status_code < 300:
            raise SendError(f"Telegram refused: {data.get('description') or 'not ok'}")
        raise refused("Telegram", response, data.get("description") or None)
    result = data.get("result") if isinstance(data.get("result"), dict) else {}
    chat = result.get("chat") if isinstance(result.get("chat"), dict) else {}
    chat_id, message_id = chat.get("id", out.recipient), result.get("message_id")
    if message_id is None:
        raise SendError("Telegram answered without a message_id")
    return SendResult(external_id=f"{chat_id}:{message_id}")
