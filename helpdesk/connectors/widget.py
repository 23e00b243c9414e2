"""`widget`: our website chat. Visitors call the chat API (API.md "Chat"), never a webhook."""

from __future__ import annotations

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    ChannelConfig,
    Connector,
    InboundEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
    hmac_hex,
    same,
)


def email_signature(identity_secret: str, email: str) -> str:
    """What a site sends as `email_hmac`: hex HMAC-SHA256(identity_secret, email)."""
    return hmac_hex(identity_secret, email.encode())


def email_signed(identity_secret: str | None, email: str, email_hmac: str | None) -> bool:
    """Whether the site vouched for `email` (constant-time; False without a secret)."""
    if not identity_secret or not email_hmac:
        return False
    return same(email_signature(identity_secret, email), email_hmac.strip().lower())


@register
class WidgetConnector(Connector):
    provider = "widget"
    kinds = frozenset({"chat"})
    optional_secrets = frozenset({"identity_secret"})
    required_settings = frozenset({"website"})

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        """Always refused (401): visitors are authenticated by their visitor token."""
        raise VerificationError("the widget takes no webhooks: use /api/v1/chat")

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        raise PayloadError("visitor messages arrive through helpdesk.services.outbound.chat")
