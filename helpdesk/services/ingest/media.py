"""Media the provider only names: a WhatsApp Cloud media id (`meta:media/<id>`) or a
Telegram file id (`telegram:file/<id>`). Their bytes are fetched from the provider's API
with the channel's token, after the message is stored (the `fetch_media` job, retried with
backoff; the sweep enqueues those still waiting), and kept like any attachment: then the
attachment's `url` is our download URL and agents see the file.

The provider's answers may name URLs (Meta's media URL): the token is only sent over
HTTPS, or to the configured API base's own host, with no redirect followed and no proxy from
the environment. Our requests carry the channel's token (Telegram's is in the URL itself), so
errors name the provider and the status only. A refusal for good (the file is gone or too
large, no token) is logged and not retried; the sweep rebuilds only jobs lost with Redis.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import or_, select

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import Attachment, Channel, Message, Ticket
from helpdesk.outbox import events
from helpdesk.queues import job_statuses
from helpdesk.senders.meta import GRAPH_VERSION
from helpdesk.services.ingest.attachments import store_bytes
from helpdesk.transaction import after_commit_each, commit

log = logging.getLogger(__name__)

META, TELEGRAM = "meta:media/", "telegram:file/"
MAX_MEDIA_BYTES = 25 * 1024 * 1024  # larger files stay a reference (WhatsApp's cap: 100 MB)
TIMEOUT = 15  # seconds per request
# The sweep enqueues references waiting between `grace` and this old: jobs lost with Redis
# are rebuilt, and a file the provider refuses for good is not asked for again and again.
SWEEP_WITHIN = timedelta(minutes=15)


class MediaError(Exception):
    """The provider did not give the file: the job retries, unless `final` (the file is
    gone, too large, or the channel has no token), when the reference stays as it is."""

    def __init__(self, text: str, final: bool = False) -> None:
        super().__init__(text)
        self.final = final


def pending(url: str | None) -> bool:
    return bool(url) and url.startswith((META, TELEGRAM))


def fetch_after_commit(attachments: list[Attachment]) -> None:
    """Ask for the bytes of these new attachments once their message is committed (one
    enqueue for all of a batch's)."""
    for attachment in attachments:
        if pending(attachment.url):
            after_commit_each(_enqueue, attachment)


def _enqueue(attachments: list[Attachment]) -> None:
    jobs.FETCH_MEDIA.enqueue_each([(attachment.id,) for attachment in attachments])


def fetch(attachment_id: int) -> str:
    """Fetch and keep one attachment's bytes (idempotent): `stored`, or why not."""
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or attachment.storage_path or not pending(attachment.url):
        db.session.rollback()
        return "nothing to fetch"
    message = db.session.get(Message, attachment.message_id)
    secrets = dict(db.session.get(Channel, message.channel_id).secrets or {})
    reference = attachment.url
    known_size = attachment.size
    db.session.rollback()  # no transaction held open while the provider answers
    try:
        if known_size > MAX_MEDIA_BYTES:  # (Telegram says its files' sizes)
            raise MediaError(f"the file is larger than {MAX_MEDIA_BYTES} bytes", final=True)
        content = (_from_meta(secrets, reference.removeprefix(META))
                   if reference.startswith(META)
                   else _from_telegram(secrets, reference.removeprefix(TELEGRAM)))
    except MediaError as exc:
        if not exc.final:
            raise  # retried with backoff
        log.info("attachment %s not fetched: %s", attachment_id, exc)
        return f"not fetched: {exc}"
    # Still waiting, and still the person's (an erasure meanwhile blanked the reference):
    # locked until this commits, so an erasure now waits and then deletes the file too.
    attachment = db.session.get(Attachment, attachment_id, with_for_update=True,
                                populate_existing=True)
    if attachment is None or attachment.storage_path or attachment.url != reference:
        db.session.rollback()
        return "nothing to fetch"
    attachment.storage_path, attachment.sha256 = store_bytes(content)
    attachment.size = len(content)
    message = db.session.get(Message, attachment.message_id)
    events.message_created(message, db.session.get(Ticket, message.ticket_id), updated=True)
    commit()
    return "stored"


def sweep(grace_seconds: float, limit: int = 200) -> int:
    """Enqueue the fetch of references still waiting whose job is gone (lost with Redis):
    not one that ran and failed, which stays failed (RQ keeps it, with its error)."""
    now = datetime.now(UTC)
    ids = list(db.session.execute(
        select(Attachment.id).where(
            Attachment.storage_path.is_(None), Attachment.created_at >= now - SWEEP_WITHIN,
            Attachment.created_at <= now - timedelta(seconds=grace_seconds),
            or_(Attachment.url.startswith(META), Attachment.url.startswith(TELEGRAM)))
        .order_by(Attachment.id).limit(limit)).scalars())
    db.session.rollback()
    if not ids:
        return 0
    statuses = job_statuses([jobs.FETCH_MEDIA.id_for(attachment_id) for attachment_id in ids])
    lost = [attachment_id for attachment_id, status in zip(ids, statuses, strict=True)
            if status is None]
    if lost:
        jobs.FETCH_MEDIA.enqueue_each([(attachment_id,) for attachment_id in lost])
    return len(lost)


def _secret(secrets: dict, name: str) -> str:
    value = str(secrets.get(name) or "")
    if not value:
        raise MediaError(f"the channel has no {name} secret", final=True)
    return value


def _get(provider: str, url: str, **kwargs) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # (no proxy from the environment sees the token)
    try:
        response = session.get(url, timeout=TIMEOUT, stream=True, allow_redirects=False,
                               **kwargs)
    except requests.RequestException as exc:  # (its text names the URL: not repeated)
        raise MediaError(f"{provider} unreachable: {type(exc).__name__}") from None
    finally:
        session.close()
    if not 200 <= response.status_code < 300:
        response.close()
        status = response.status_code
        raise MediaError(f"{provider} answered {status}",
                         final=400 <= status < 500 and status not in (408, 429))
    return response


def _read(provider: str, response: requests.Response) -> bytes:
    """The body, refused beyond MAX_MEDIA_BYTES (read in chunks: never more in memory)."""
    chunks, size = [], 0
    with response:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_MEDIA_BYTES:
                raise MediaError(f"{provider}'s file is larger than {MAX_MEDIA_BYTES} bytes",
                                 final=True)
            chunks.append(chunk)
    return b"".join(chunks)


def _json(provider: str, response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        data = None
    finally:
        response.close()
    if not isinstance(data, dict):
        raise MediaError(f"{provider} answered no JSON object")
    return data


def _from_meta(secrets: dict, media_id: str) -> bytes:
    """Graph: `GET /{media-id}` names a short-lived URL, fetched with the same token."""
    base = str(current_app.config.get("META_GRAPH_API_BASE") or "").rstrip("/")
    auth = {"Authorization": f"Bearer {_secret(secrets, 'access_token')}"}
    described = _json("Meta", _get("Meta", f"{base}/{GRAPH_VERSION}/{media_id}", headers=auth))
    size = described.get("file_size")
    if isinstance(size, int) and size > MAX_MEDIA_BYTES:
        raise MediaError(f"the file is larger than {MAX_MEDIA_BYTES} bytes", final=True)
    url = described.get("url")
    if not isinstance(url, str) or not _token_may_go_to(url, base):
        raise MediaError("Meta named no HTTPS URL for the media", final=True)
    return _read("Meta", _get("Meta", url, headers=auth))


def _token_may_go_to(url: str, base: str) -> bool:
    """HTTPS, or the configured Graph base's own scheme and host (a local stand-in)."""
    target, own = urlsplit(url), urlsplit(base)
    return target.scheme == "https" or (target.scheme, target.netloc) == (own.scheme,
                                                                          own.netloc)


def _from_telegram(secrets: dict, file_id: str) -> bytes:
    """Bot API: `getFile` names the file's path, fetched from `/file/bot<token>/<path>`."""
    base = str(current_app.config.get("TELEGRAM_API_BASE") or "").rstrip("/")
    token = _secret(secrets, "bot_token")
    described = _json("Telegram", _get("Telegram", f"{base}/bot{token}/getFile",
                                       params={"file_id": file_id}))
    result = described.get("result") if isinstance(described.get("result"), dict) else {}
    path = result.get("file_path")
    if described.get("ok") is not True or not isinstance(path, str) or not path:
        raise MediaError("Telegram named no file path")
    return _read("Telegram", _get("Telegram", f"{base}/file/bot{token}/{path}"))
