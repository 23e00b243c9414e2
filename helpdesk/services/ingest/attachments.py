"""Attachment bytes live under HELPDESK_DATA_DIR, addressed by their hash."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from flask import current_app

from helpdesk.connectors.base import AttachmentIn
from helpdesk.connectors.mime_text import LONE_SURROGATE
from helpdesk.errors import NotFound
from helpdesk.extensions import db
from helpdesk.models import Attachment, Message


def data_path(relative: str) -> Path:
    return Path(current_app.config["DATA_DIR"]) / relative


def stored_file(attachment_id: int) -> tuple[Attachment, Path]:
    """An attachment and the file holding its bytes; NotFound when either is missing."""
    attachment = db.session.get(Attachment, attachment_id)
    path = data_path(attachment.storage_path) if attachment and attachment.storage_path else None
    if path is None or not path.is_file():
        raise NotFound("attachment")
    return attachment, path


def store_bytes(content: bytes) -> tuple[str, str]:
    """Write `content` once (content-addressed); returns (relative path, sha256)."""
    digest = hashlib.sha256(content).hexdigest()
    relative = f"attachments/{digest[:2]}/{digest}"
    path = data_path(relative)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file of its own: two workers storing the same bytes at once (a logo
        # in every signature) must not write into, or rename away, each other's.
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest}.")
        try:
            os.fchmod(handle, 0o666 & ~_UMASK)  # as a plain write would (mkstemp: 0600)
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return relative, digest


def _read_umask() -> int:
    mask = os.umask(0o022)  # (read once, at import: setting it is not thread-safe)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def safe_filename(name: str | None) -> str:
    """A filename as it may stand in a header: control characters (CR, LF, NUL...) become
    spaces, lone surrogates (`filename*=utf-7''+2AA-x.pdf`: no database stores one) U+FFFD,
    at most 500 characters."""
    return LONE_SURROGATE.sub("\ufffd", CONTROL.sub(" ", name or ""))[:500]


CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# type/subtype[; params], in ASCII (a header carries nothing else)
MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?")


def safe_content_type(value: str | None) -> str:
    """A media type a response header can carry: a provider's `text/plain\\r\\nX: y` (JSON
    strings hold anything) is `application/octet-stream`, as a missing one is."""
    value = (value or "").strip()[:255]
    return value if MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


def attach(message: Message, incoming: list[AttachmentIn]) -> None:
    for item in incoming:
        attachment = Attachment(filename=safe_filename(item.filename),
                                content_type=safe_content_type(item.content_type),
                                size=item.size,
                                url=item.url)
        if item.content is not None:
            attachment.storage_path, attachment.sha256 = store_bytes(item.content)
            attachment.size = len(item.content)
        message.attachments.append(attachment)
