"""Secrets never reach a log line: the shapes secrets take in text are masked in every record.

Senders already keep secrets out of their errors (`senders.base.post` names the exception
type only and drops the chained one); this is the net under that: every log record, its
message, arguments and formatted traceback, passes through `redact` when it is created, so
a URL that embeds a secret (Telegram's `/bot<token>/sendMessage`, `?access_token=`,
`user:password@host`) or a bearer token in an exception from a library is masked too.
"""

from __future__ import annotations

import logging
import re
import traceback

MASK = "<redacted>"

_PATTERNS = [
    (re.compile(r"/bot[^/\s'\"]+/"), f"/bot{MASK}/"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{MASK}"),
    (re.compile(r"\bhd_[A-Za-z0-9_-]{16,}"), f"hd_{MASK}"),
    (re.compile(r"(?i)([?&](?:access_token|token|key|secret|signature|api_key|password"
                r"|hub\.verify_token|crc_token)=)[^&\s'\"]+"), rf"\1{MASK}"),
    (re.compile(r"(://[^/\s:@'\"]+:)[^@\s/'\"]+@"), rf"\1{MASK}@"),
]


def redact(text: str) -> str:
    """`text` with every secret-shaped part masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_installed = False


def install() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            # Formatters append `exc_text` as it is; none can format the original again.
            record.exc_text, record.exc_info = redact(formatted), None
        return record

    logging.setLogRecordFactory(redacted_record)
