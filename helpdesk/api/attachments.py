"""Attachment files: the bytes a message's attachment `url` points at (any role)."""

from __future__ import annotations

from flask import send_file

from helpdesk.api.v1 import bp
from helpdesk.services.ingest import attachments


@bp.get("/attachments/<int:attachment_id>")
def download_attachment(attachment_id: int):
    attachment, path = attachments.stored_file(attachment_id)
    # Always a download, never rendered on our origin: the bytes are the customer's.
    name = attachments.safe_filename(attachment.filename).strip() or "attachment"
    response = send_file(path.resolve(), max_age=0, as_attachment=True, download_name=name,
                         mimetype=attachments.safe_content_type(attachment.content_type))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response
