"""Attachment bytes live under HELPDESK_DATA_DIR, addressed by their hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import current_app

from helpdesk.connectors.base import AttachmentIn
from helpdesk.models import Attachment, Message


def data_path(relative: str) -> Path:
    return Path(current_app.config["DATA_DIR"]) / relative


def store_bytes(content: bytes) -> tuple[str, str]:
    """Write `content` once (content-addressed); returns (relative path, sha256)."""
    digest = hashlib.sha256(content).hexdigest()
    relative = f"attachments/{digest[:2]}/{digest}"
    path = data_path(relative)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
    return relative, digest


def attach(message: Message, incoming: list[AttachmentIn]) -> None:
    for item in incoming:
        attachment = Attachment(filename=item.filename[:500],
                                content_type=item.content_type[:255], size=item.size,
                                url=item.url)
        if item.content is not None:
            attachment.storage_path, attachment.sha256 = store_bytes(item.content)
            attachment.size = len(item.content)
        message.attachments.append(attachment)
