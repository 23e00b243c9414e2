"""Attachment files: the bytes a message's attachment `url` points at (any role)."""

from __future__ import annotations

from flask import send_file

from helpdesk.api.v1 import bp
from helpdesk.errors import NotFound
from helpdesk.extensions import db
from helpdesk.models import Attachment
from helpdesk.services.ingest.attachments import data_path


@bp.get("/attachments/<int:attachment_id>")
def download_attachment(attachment_id: int):
    attachment = db.session.get(Attachment, attachment_id)
    path = data_path(attachment.storage_path) if attachment and attachment.storage_path else None
    if path is None or not path.is_file():
        raise NotFound("attachment")
    # Always a download, never rendered on our origin: the bytes are the customer's.
    response = send_file(path, mimetype=attachment.content_type or "application/octet-stream",
                         as_attachment=True, download_name=attachment.filename or "attachment",
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response
