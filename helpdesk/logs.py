"""Logging: plain lines, or one JSON object per line with HELPDESK_LOG_FORMAT=json.

Also the two operational lines: one per HTTP request (`helpdesk.access`) and one per
background job (`helpdesk.jobs`). Neither ever carries a body, a query string or a secret.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import UTC, datetime

from flask import Flask, g, request

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
access_log = logging.getLogger("helpdesk.access")
job_log = logging.getLogger("helpdesk.jobs")
# Path segments that are credentials: a channel's URL key, a survey's token.
SECRET_VIEW_ARGS = ("channel_key", "token", "key")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: at, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname, "logger": record.name,
                "message": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            line["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(log_format: str | None = None) -> None:
    """Configure the root logger once per process (a no-op when it already has handlers)."""
    log_format = log_format or os.environ.get("HELPDESK_LOG_FORMAT", "text")
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """One access-log line per request: method, path (secrets masked), status, ms."""
    @app.before_request
    def _start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _log_request(response):
        started = g.get("request_started")
        if started is not None:
            ms = (time.perf_counter() - started) * 1000
            path = masked_path()
            access_log.info("%s %s %s %.1f ms", request.method, path, response.status_code,
                            ms, extra={"fields": {
                                "method": request.method, "path": path,
                                "status": response.status_code, "ms": round(ms, 1)}})
        return response


def masked_path() -> str:
    """The request's path without its query string, credential segments replaced by `…`
    (also where no route matched: a channel key followed by `%00` is still a key), and
    control characters written as `\\xNN` (a `%0A` in a path does not start a log line)."""
    path = request.path
    if request.url_rule is None:  # (werkzeug merges doubled slashes only by a redirect)
        path = _UNMATCHED_CREDENTIALS.sub(r"\1…", _SLASHES.sub("/", path))
    for name in SECRET_VIEW_ARGS:
        value = (request.view_args or {}).get(name)
        if isinstance(value, str) and value:
            path = path.replace(value, "…")
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", path)


# The segments of our routes that hold a credential (SECRET_VIEW_ARGS), by position.
_UNMATCHED_CREDENTIALS = re.compile(
    r"^(/webhooks/[^/]+/|/surveys/|/api/v1/chat/)(?!sessions/)[^/]+")
_SLASHES = re.compile(r"/{2,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def log_job(name: str, job_id: str, outcome: str, ms: float) -> None:
    job_log.info("job %s %s %s %.1f ms", name, job_id, outcome, ms, extra={"fields": {
        "job": name, "job_id": job_id, "outcome": outcome, "ms": round(ms, 1)}})
