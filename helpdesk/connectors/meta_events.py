"""Meta's update objects as events: WhatsApp Cloud `value`s, Messenger/Instagram `messaging[]`.

Media is never fetched here: WhatsApp gives a media id (kept as `meta:media/<id>`, resolved
later with the access token), Messenger and Instagram a CDN URL.
"""

from __future__ import annotations

from datetime import datetime

from helpdesk.connectors.base import (
    AttachmentIn,
    IdentityRef,
    InboundEvent,
    MessageEvent,
    StatusEvent,
    WatermarkEvent,
    location_text,
)
from helpdesk.connectors.payload import child, media_filename, objects, strings, text, unix_time

_WHATSAPP_STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read",
                      "played": "read", "failed": "failed"}
_WHATSAPP_MEDIA = ("image", "audio", "video", "document", "sticker")
# Messenger/Instagram attachments name a kind, not a MIME type: the usual format of each.
_ATTACHMENT_TYPES = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg",
                     "ig_reel": "video/mp4", "reel": "video/mp4"}


def whatsapp_events(value: dict) -> list[InboundEvent]:
    """The messages and statuses of one WhatsApp `changes[].value`."""
    names = {text(contact, "wa_id"): text(child(contact, "profile"), "name")
             for contact in objects(value, "contacts")}
    events: list[InboundEvent] = []
    for message in objects(value, "messages"):
        event = _whatsapp_message(message, names)
        if event is not None:
            events.append(event)
    for status in objects(value, "statuses"):
        update = _whatsapp_status(status)
        if update is not None:
            events.append(update)
    return events


def _whatsapp_message(message: dict, names: dict) -> MessageEvent | None:
    body, attachments = _whatsapp_content(message, text(message, "type") or "")
    if not body and not attachments:
        return None  # reactions, system notices, unsupported types: nothing to show
    sender = text(message, "from", required=True)
    return MessageEvent(
        external_id=text(message, "id", required=True),
        identities=[IdentityRef("phone", "+" + sender if sender.isdigit() else sender)],
        text=body,
        sender_name=names.get(sender) or (next(iter(names.values())) if len(names) == 1
                                          else None),
        sent_at=unix_time(message.get("timestamp")),
        attachments=attachments,
    )


def _whatsapp_content(message: dict, kind: str) -> tuple[str, list[AttachmentIn]]:
    if kind == "text":
        return text(child(message, "text"), "body") or "", []
    if kind in _WHATSAPP_MEDIA:
        media = child(message, kind)
        media_id = text(media, "id", required=True)
        content_type = text(media, "mime_type") or "application/octet-stream"
        filename = text(media, "filename") or media_filename(f"{kind}-{media_id}", content_type)
        return text(media, "caption") or "", [AttachmentIn(
            filename=filename, content_type=content_type, size=0, url=f"meta:media/{media_id}")]
    if kind == "location":
        return _location(child(message, "location")), []
    if kind == "interactive":
        choice = child(message, "interactive")
        reply = child(choice, "button_reply") or child(choice, "list_reply")
        if text(reply, "title"):
            return text(reply, "title"), []
        kind = f"interactive {text(choice, 'type') or ''}".strip()  # (a flow's answer...)
    if kind == "button":
        return text(child(message, "button"), "text") or "", []
    if kind == "contacts":
        return _shared_contacts(objects(message, "contacts")), []
    if kind in _WHATSAPP_SILENT:
        return "", []
    # A kind we do not read (`unsupported`, `order`, a flow's answer, a newer one): the
    # customer wrote; the agent is told so rather than nothing at all.
    return ("[The customer sent a WhatsApp message of a kind this helpdesk cannot show: "
            f"{kind or 'unknown'}]"), []


# Reactions, system notices and the welcome request (a chat opened, nothing written) are
# not the customer writing: nothing to show, no ticket.
_WHATSAPP_SILENT = frozenset({"reaction", "system", "ephemeral", "request_welcome"})


def _shared_contacts(contacts: list[dict]) -> str:
    people = []
    for contact in contacts:
        name = text(child(contact, "name"), "formatted_name") or ""
        phones = ", ".join(filter(None, (text(p, "phone") for p in objects(contact, "phones"))))
        people.append(f"{name} ({phones})" if name and phones else name or phones)
    shown = "; ".join(filter(None, people))
    return f"Shared a contact: {shown}" if shown else "Shared a contact"


def _location(place: dict) -> str:
    latitude, longitude = place.get("latitude"), place.get("longitude")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool)
                  for v in (latitude, longitude))
    return location_text(text(place, "name"), text(place, "address"),
                         latitude if numbers else None, longitude if numbers else None)


def _whatsapp_status(status: dict) -> StatusEvent | None:
    mapped = _WHATSAPP_STATUSES.get(text(status, "status") or "")
    if mapped is None:
        return None
    error = None
    if mapped == "failed":
        first = (objects(status, "errors") or [{}])[0]
        error = f"WhatsApp error {text(first, 'code') or 'unknown'}: " + (
            text(first, "title") or text(first, "message") or "")
    return StatusEvent(external_id=text(status, "id", required=True), status=mapped,
                       error=error, at=unix_time(status.get("timestamp")))


def messaging_events(item: dict, identity_kind: str) -> list[InboundEvent]:
    """One Messenger/Instagram `messaging[]` item: a message, postback or receipt."""
    if "message" in item:
        return _messaging_message(item, child(item, "message"), identity_kind)
    if "postback" in item:
        return _postback(item, child(item, "postback"), identity_kind)
    if "delivery" in item:
        delivery = child(item, "delivery")
        at = unix_time(delivery.get("watermark"), millis=True)
        mids = strings(delivery, "mids")
        if not mids:  # (optional: the watermark alone says up to when)
            return _watermark(item, identity_kind, "delivered", at)
        return [StatusEvent(external_id=mid, status="delivered", at=at) for mid in mids]
    read = child(item, "read")
    mid = text(read, "mid")  # Instagram names the message; Messenger gives a watermark
    if mid:
        return [StatusEvent(external_id=mid, status="read")]
    return _watermark(item, identity_kind, "read",
                      unix_time(read.get("watermark"), millis=True)) if read else []


def _watermark(item: dict, identity_kind: str, status: str,
               at: datetime | None) -> list[InboundEvent]:
    if at is None:
        return []
    [sender] = _sender(item, identity_kind)
    return [WatermarkEvent(recipient=sender, status=status, up_to=at)]


def _sender(item: dict, identity_kind: str) -> list[IdentityRef]:
    return [IdentityRef(identity_kind, text(child(item, "sender"), "id", required=True))]


def _messaging_message(item: dict, message: dict, identity_kind: str) -> list[InboundEvent]:
    if message.get("is_echo") or message.get("is_deleted"):
        return []  # our own replies coming back, or a message the customer unsent
    attachments = [found for index, attachment in enumerate(objects(message, "attachments"))
                   if (found := _attachment(attachment, index)) is not None]
    body = text(message, "text") or ""
    if not body and not attachments:
        return []
    return [MessageEvent(external_id=text(message, "mid", required=True),
                         identities=_sender(item, identity_kind), text=body,
                         sent_at=unix_time(item.get("timestamp"), millis=True),
                         attachments=attachments)]


def _postback(item: dict, postback: dict, identity_kind: str) -> list[InboundEvent]:
    sender = _sender(item, identity_kind)
    mid = text(postback, "mid") or f"postback:{sender[0].value}:{text(item, 'timestamp')}"
    body = text(postback, "title") or text(postback, "payload") or ""
    return [MessageEvent(external_id=mid, identities=sender, text=body,
                         sent_at=unix_time(item.get("timestamp"), millis=True))]


def _attachment(attachment: dict, index: int) -> AttachmentIn | None:
    url = text(child(attachment, "payload"), "url")
    if not url:
        return None
    kind = text(attachment, "type") or "file"
    content_type = _ATTACHMENT_TYPES.get(kind, "application/octet-stream")
    return AttachmentIn(filename=media_filename(f"{kind}-{index + 1}", content_type),
                        content_type=content_type, size=0, url=url)
