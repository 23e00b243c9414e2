"""Reading providers' JSON payloads: every malformed shape becomes a PayloadError.

Providers' formats are trusted only after the signature: even then a field of the wrong
type must quarantine the delivery (PayloadError), never crash the worker with a TypeError.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime
from typing import Any

from helpdesk import strict_json
from helpdesk.connectors.base import PayloadError

_TYPES = mimetypes.MimeTypes()  # built-in table only: deterministic across hosts
# Dedupe keys are stored in 255 characters; longer lists of ids are hashed.
_MAX_KEY = 200
MAX_INTEGER = 2**31 - 1  # what an integer column holds on every database we run on


def load_object(body: bytes) -> dict:
    """The body as a JSON object."""
    try:
        data = strict_json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise PayloadError(f"body is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    return data


def child(data: dict, key: str) -> dict:
    """An optional nested object: {} when missing, PayloadError when not an object."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{key} must be an object")
    return value


def objects(data: dict, key: str) -> list[dict]:
    """An optional list of objects: [] when missing, PayloadError when anything else."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise PayloadError(f"{key} must be a list of objects")
    return value


def strings(data: dict, key: str) -> list[str]:
    """An optional list of ids: [] when missing, PayloadError when not strings or integers."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str | int) and
                                              not isinstance(item, bool) for item in value):
        raise PayloadError(f"{key} must be a list of strings")
    return [str(item) for item in value]


def text(data: dict, key: str, *, required: bool = False) -> str | None:
    """A string (or integer id) field as text; None when missing and not required."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{key} must be a string")
    return _valid_unicode(str(value))


def _valid_unicode(value: str) -> str:
    """JSON may escape lone surrogates (`"\\ud800"`); they cannot be stored, so they go."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def unix_time(value: Any, *, millis: bool = False) -> datetime | None:
    """A Unix timestamp (seconds, or milliseconds) as UTC; None when absent or unreadable."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        seconds = float(value) / (1000 if millis else 1)
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def ids_key(prefix: str, ids: list[str]) -> str:
    """A dedupe key naming every event id in a delivery, order-independent."""
    joined = ",".join(sorted(set(ids)))
    if len(joined) > _MAX_KEY:
        joined = hashlib.sha256(joined.encode()).hexdigest()
    return f"{prefix}:{joined}"


def media_filename(stem: str, content_type: str) -> str:
    """A readable filename for media that arrives without one."""
    stem = stem.strip().replace("/", "-") or "attachment"
    return stem + (_TYPES.guess_extension(content_type.split(";")[0].strip()) or "")
