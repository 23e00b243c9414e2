"""`telegram`: Bot API webhook updates (one `Update` per request)."""

from __future__ import annotations

from helpdesk.connectors import register
from helpdesk.connectors.base import (
    AttachmentIn,
    ChannelConfig,
    Connector,
    IdentityRef,
    InboundEvent,
    MessageEvent,
    PayloadError,
    VerificationError,
    WebhookRequest,
    same,
)
from helpdesk.connectors.payload import child, load_object, media_filename, objects, text, unix_time

# Media a customer can send, with the type to assume when Telegram names none.
_MEDIA = {"document": "application/octet-stream", "video": "video/mp4", "audio": "audio/mpeg",
          "voice": "audio/ogg", "video_note": "video/mp4", "animation": "video/mp4",
          "sticker": "image/webp"}


@register
class TelegramConnector(Connector):
    provider = "telegram"
    kinds = frozenset({"telegram"})
    required_secrets = frozenset({"secret_token", "bot_token"})

    def verify(self, channel: ChannelConfig, request: WebhookRequest) -> None:
        expected = str(channel.secrets.get("secret_token") or "")
        given = request.header("X-Telegram-Bot-Api-Secret-Token")
        if not expected or not given or not same(expected, given):
            raise VerificationError("X-Telegram-Bot-Api-Secret-Token mismatch")

    def dedupe_key(self, channel: ChannelConfig, request: WebhookRequest) -> str:
        return f"update:{_update_id(load_object(request.body))}"

    def parse(self, channel: ChannelConfig, raw: WebhookRequest) -> list[InboundEvent]:
        update = load_object(raw.body)
        _update_id(update)
        if "message" in update:
            event = _message_event(child(update, "message"), edited=False)
        elif "edited_message" in update:
            event = _message_event(child(update, "edited_message"), edited=True)
        else:
            return []  # callback queries, member changes, channel posts: not customer messages
        return [event] if event is not None else []


def _update_id(update: dict) -> int:
    value = update.get("update_id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError("update_id must be an integer")
    return value


def _message_event(message: dict, *, edited: bool) -> MessageEvent | None:
    sender = child(message, "from")
    if not sender:
        raise PayloadError("message.from is required")
    if sender.get("is_bot") is True:
        return None
    user_id = text(sender, "id", required=True)
    body = text(message, "text") or text(message, "caption") or _shared(message, user_id) or ""
    attachments = _attachments(message)
    if not body and not attachments:
        return None  # service messages (members joined, pinned…)
    # message_id is unique per chat only; an edit is a new message with the corrected text.
    external_id = f"{text(child(message, 'chat'), 'id', required=True)}:" + text(
        message, "message_id", required=True)
    if edited:
        external_id += f":edited:{text(message, 'edit_date') or ''}"
    return MessageEvent(
        external_id=external_id,
        identities=_identities(message, user_id),
        text=body,
        sender_name=" ".join(filter(None, (text(sender, "first_name"),
                                           text(sender, "last_name")))) or None,
        sent_at=unix_time(message.get("edit_date") if edited else message.get("date")),
        attachments=attachments,
        flags=["edited"] if edited else [],
    )


def _identities(message: dict, user_id: str) -> list[IdentityRef]:
    identities = [IdentityRef("telegram", user_id)]
    contact = child(message, "contact")
    if contact and text(contact, "user_id") == user_id and text(contact, "phone_number"):
        # The customer shared their own number: Telegram vouches it is theirs.
        identities.append(IdentityRef("phone", text(contact, "phone_number") or ""))
    return identities


def _shared(message: dict, user_id: str) -> str | None:
    """A shared contact or location as text."""
    contact = child(message, "contact")
    if contact:
        name = " ".join(filter(None, (text(contact, "first_name"), text(contact, "last_name"))))
        return f"Contact: {name} {text(contact, 'phone_number') or ''}".strip()
    location = child(message, "location")
    if location:
        latitude, longitude = location.get("latitude"), location.get("longitude")
        if isinstance(latitude, int | float) and isinstance(longitude, int | float):
            return f"Location: {latitude}, {longitude}"
    return None


def _attachments(message: dict) -> list[AttachmentIn]:
    """File references only (`telegram:file/<file_id>`): fetching needs the bot token."""
    found = []
    photos = objects(message, "photo")
    if photos:
        largest = max(photos, key=_photo_size)
        file_id = text(largest, "file_id", required=True)
        found.append(AttachmentIn(
            filename=media_filename(f"photo-{text(largest, 'file_unique_id') or file_id}",
                                    "image/jpeg"),
            content_type="image/jpeg", size=_size(largest), url=f"telegram:file/{file_id}"))
    for kind, default_type in _MEDIA.items():
        media = child(message, kind)
        if media:
            found.append(_media(kind, media, default_type))
    return found


def _media(kind: str, media: dict, default_type: str) -> AttachmentIn:
    file_id = text(media, "file_id", required=True)
    content_type = text(media, "mime_type") or default_type
    filename = text(media, "file_name") or media_filename(
        f"{kind}-{text(media, 'file_unique_id') or file_id}", content_type)
    return AttachmentIn(filename=filename, content_type=content_type, size=_size(media),
                        url=f"telegram:file/{file_id}")


def _size(media: dict) -> int:
    value = media.get("file_size")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _photo_size(photo: dict) -> tuple[int, int]:
    """Pixels, then bytes: Telegram lists one photo in several sizes."""
    width, height = photo.get("width"), photo.get("height")
    pixels = width * height if isinstance(width, int) and isinstance(height, int) else 0
    return pixels, _size(photo)
