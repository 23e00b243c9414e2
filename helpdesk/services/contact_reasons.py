"""Contact reasons: the configured list agents pick from, and keyword rules that suggest one.

Settings: `contact_reasons` (a list; empty = any text) and `contact_reason_rules`
(`{"delivery": ["parcel", "tracking"], ...}`: a reason is suggested when the ticket's
customer text contains one of its keywords, whole words, case-insensitive).
"""

from __future__ import annotations

import re
from typing import Any

from helpdesk.errors import ApiError

MAX_LENGTH = 200


def _invalid(key: str, message: str) -> ApiError:
    return ApiError(400, f"invalid {key}", "validation_error", {key: [message]})


def validate_setting(key: str, value: Any) -> None:
    """400 unless `contact_reasons` is a list of names and the rules map names to keywords."""
    if key == "contact_reasons":
        if not isinstance(value, list) or not all(_is_name(item) for item in value):
            raise _invalid(key, f"a list of non-blank names of at most {MAX_LENGTH} characters")
        return
    if not isinstance(value, dict) or not all(
            _is_name(reason) and isinstance(words, list) and words
            and all(_is_name(word) for word in words) for reason, words in value.items()):
        raise _invalid(key, "an object mapping reasons to non-empty lists of keywords")


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_LENGTH


def check(reason: str | None, allowed: list[str]) -> None:
    """A reason set by hand must be one of the configured ones (any text when none are)."""
    if reason is None or not allowed or reason in allowed:
        return
    raise ApiError(400, "unknown contact reason", "validation_error",
                   {"contact_reason": [f"one of: {', '.join(allowed)}"]})


def suggest(text: str, rules: dict[str, list[str]]) -> str | None:
    """The reason whose keywords occur most often in `text` (ties: the first rule wins)."""
    lowered = text.lower()
    best, best_hits = None, 0
    for reason, words in rules.items():
        hits = sum(len(re.findall(rf"\b{re.escape(word.lower())}\b", lowered))
                   for word in words)
        if hits > best_hits:
            best, best_hits = reason, hits
    return best
