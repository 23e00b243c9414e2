"""`x`: X (Twitter) Account Activity webhooks: direct messages and mentions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    AttachmentIn,
    ChannelConfig,
    Connector,
    HandshakeResponse,
    IdentityRef,
    InboundEvent,
    MessageEvent,
    VerificationError,
    WebhookRequest,
    body_hash,
    same,
)
from helpdesk.connectors.payload import (
    child,
    ids_key,
    load_object,
    media_filename,
    objects,
    text,
    unix_time,
)

_MEDIA_TYPES = {"photo": "image/jpeg", "video": "video/mp4", "animated_gif": "video/mp4"}


def sign(consumer_secret: str, payload: bytes) -> str:
    """`sha256=` + base64 HMAC-SHA256(consumer secret, payload): CRC answers and signatures."""
    digest = hmac.new(consumer_secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


CRC_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{1,256}")  # base64 (or its URL-safe form); no JSON


@register
class XConnector(Connector):
    provider = "x"
    kinds = frozenset({"x"})
    required_secrets = frozenset({"consumer_secret", "access_token"})
    required_settings = frozenset({"user_id"})

    def handshake(self, channel: ChannelConfig, request: WebhookRequest) -> HandshakeResponse:
        """The CRC check: prove we hold the consumer secret by signing `crc_token`.

        Only a token shaped as X's are (base64 text) is signed: POSTs are signed with the same
        key over their body, so signing anything asked for would sign a forged event (a
        `crc_token` holding a DM event's JSON) for anyone who knows the webhook URL."""
        token = request.query.get("crc_token") or ""
        secret = str(channel.secrets.get("consumer_secret") or "")
        if not CRC_TOKEN.fullmatch(token) or not secret:
            return HandshakeResponse(400, {"error": {
                "code": "validation_error",
                "message": "crc_token is required: base64 text, at most 256 characters",
                "fields": {"crc_token": ["base64 text, at most 256 characters"]}}},
                "application/json")
        return HandshakeResponse(200, {"response_token": sign(secret, token.encode())},
                                 "application/json")

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        secret = str(channel.secrets.get("consumer_secret") or "")
        given = request.header("x-twitter-webhooks-signature").strip()
        if not secret or not given:
            raise VerificationError("missing x-twitter-webhooks-signature")
        if not same(sign(secret, request.body), given):
            raise VerificationError("x-twitter-webhooks-signature mismatch")

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        data = load_object(request.body)
        ids = [f"dm:{text(event, 'id')}" for event in objects(data, "direct_message_events")]
        ids += [f"tweet:{text(tweet, 'id_str')}"
                for tweet in objects(data, "tweet_create_events")]
        # Typing, read, follow and favorite events carry no id of their own.
        return ids_key("x", ids) if ids else body_hash(request.body)

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        data = load_object(raw.body)
        # Every Account Activity delivery names the subscribed account.
        ours = {text(channel.settings, "user_id"),
                text(data, "for_user_id", required=True)} - {None}
        events: list[InboundEvent] = []
        for event in objects(data, "direct_message_events"):
            message = _direct_message(data, event, ours)
            if message is not None:
                events.append(message)
        for tweet in objects(data, "tweet_create_events"):
            mention = _mention(tweet, ours)
            if mention is not None:
                events.append(mention)
        return events


def _user_name(data: dict, user_id: str) -> str | None:
    """The sender's name from the `users` map (X's own docs misplace it under `apps`)."""
    for lookup in (child(data, "users"), child(data, "apps")):
        user = lookup.get(user_id)
        if isinstance(user, dict):
            return text(user, "name") or text(user, "screen_name")
    return None


def _direct_message(data: dict, event: dict, ours: set[str]) -> MessageEvent | None:
    if text(event, "type") != "message_create":
        return None
    create = child(event, "message_create")
    sender_id = text(create, "sender_id", required=True)
    if sender_id in ours:
        return None  # our own reply, echoed back
    content = child(create, "message_data")
    return MessageEvent(
        external_id=text(event, "id", required=True),
        identities=[IdentityRef("x", sender_id)],
        text=text(content, "text") or "",
        sender_name=_user_name(data, sender_id),
        sent_at=unix_time(event.get("created_timestamp"), millis=True),
        attachments=_media(child(child(content, "attachment"), "media")),
    )


def _media(media: dict) -> list[AttachmentIn]:
    url = text(media, "media_url_https") or text(media, "media_url")
    if not url:
        return []
    content_type = _MEDIA_TYPES.get(text(media, "type") or "", "application/octet-stream")
    stem = url.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return [AttachmentIn(filename=media_filename(stem, content_type),
                         content_type=content_type, size=0, url=url)]


def _mention(tweet: dict, ours: set[str]) -> MessageEvent | None:
    """A public tweet to the account (a mention or reply) from someone else."""
    user = child(tweet, "user")
    user_id = text(user, "id_str") or text(user, "id", required=True)
    if user_id in ours or "retweeted_status" in tweet:
        return None
    full = text(child(tweet, "extended_tweet"), "full_text")
    return MessageEvent(
        external_id=text(tweet, "id_str", required=True),
        identities=[IdentityRef("x", user_id)],
        text=full or text(tweet, "text") or "",
        sender_name=text(user, "name") or text(user, "screen_name"),
        sent_at=unix_time(tweet.get("timestamp_ms"), millis=True),
        flags=["public"],
    )
