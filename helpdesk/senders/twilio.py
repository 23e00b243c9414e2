"""Twilio Programmable Messaging: SMS and WhatsApp through the Messages API."""

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

PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"


def address(kind: str, number: str) -> str:
    """SMS uses the E.164 number, WhatsApp `whatsapp:+E164`."""
    number = bare_address(number)
    return f"whatsapp:{number}" if kind == "whatsapp" else number


def send(out: Outgoing) -> SendResult:
    """POST the reply to the Messages API; the message `sid` is our external id."""
    if out.kind not in ("sms", "whatsapp"):
        raise SendError(f"a Twilio {out.kind} channel takes no written replies",
                        retryable=False)
    account_sid = setting(out, "account_sid")
    form = {"To": address(out.kind, out.recipient),
            "From": address(out.kind, setting(out, "phone_number")), "Body": out.text}
    if out.status_callback:
        form["StatusCallback"] = out.status_callback
    response = post("Twilio", out.endpoint.rstrip("/") + PATH.format(account_sid=account_sid),
                    data=form, auth=(account_sid, secret(out, "auth_token")))
    data = body_of(response)
    if not 200 <= response.status_code < 300:
        raise refused("Twilio", response, _error(data))
    if not data.get("sid"):
        raise SendError("Twilio answered without a message sid")
    return SendResult(external_id=str(data["sid"]))


def _error(data: dict) -> str | None:
    """Twilio's error body: `{"code": 21211, "message": "…", "more_info": …}`."""
    if not data.get("message"):
        return None
    return f"Twilio error {data.get('code') or 'unknown'}: {data['message']}"
