"""What every sender shares: the message to send, the result, the error, HTTP helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

TIMEOUT = 15  # seconds, per provider call


class SendError(Exception):
    """The provider refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Outgoing:
    """One public reply, as plain data: what to send, to whom, through which account."""

    message_id: int  # our message's id
    ticket_id: int
    kind: str  # the channel's kind: email, sms, whatsapp, messenger, …
    text: str = field(repr=False)
    recipient: str  # the customer's identity value for this channel
    endpoint: str  # the provider's base URL (API.md "Operators"), or SMTP_URL for email
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict, repr=False)
    subject: str | None = None
    in_reply_to: str | None = None  # email: the customer's last Message-ID (no brackets)
    references: tuple[str, ...] = ()
    status_callback: str | None = None  # where the provider should post delivery reports


@dataclass(frozen=True)
class SendResult:
    """The provider's id for what we sent (status callbacks name it) and the new status."""

    external_id: str | None
    status: str = "sent"
    message_id: str | None = None  # email: our RFC Message-ID, without brackets


def setting(out: Outgoing, name: str) -> str:
    """A channel setting the sender needs; a permanent error when it is missing."""
    value = str(out.settings.get(name) or "")
    if not value:
        raise SendError(f"the channel has no {name} setting", retryable=False)
    return value


def secret(out: Outgoing, name: str) -> str:
    """A channel secret the sender needs; a permanent error when it is missing."""
    value = str(out.secrets.get(name) or "")
    if not value:
        raise SendError(f"the channel has no {name} secret", retryable=False)
    return value


def post(provider: str, url: str, **kwargs: Any) -> requests.Response:
    """POST to a provider; unreachable (connection, timeout) is a retryable SendError."""
    try:
        return requests.post(url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        # The URL may hold a token (Telegram's /bot<token>/): name the type only, and drop
        # the chained exception, whose text names the URL, from every traceback.
        error = SendError(f"{provider} unreachable: {type(exc).__name__}")
    raise error from None


def body_of(response: requests.Response) -> dict:
    """The response's JSON object, or {} when it is not one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def refused(provider: str, response: requests.Response, detail: str | None) -> SendError:
    """A non-2xx answer: 5xx, 408 and 429 are worth retrying, other 4xx are final."""
    status = response.status_code
    retryable = status >= 500 or status in (408, 429)
    text = f"{provider} answered {status}" + (f": {detail}" if detail else "")
    return SendError(text[:2000], retryable=retryable)


def bare_address(value: str) -> str:
    """A phone number without a `whatsapp:` prefix."""
    return value.split(":", 1)[1] if value.lower().startswith("whatsapp:") else value
