"""Contact reasons: the configured list agents pick from, and keyword rules that suggest one.

Settings: `contact_reasons` (a list; empty = any text) and `contact_reason_rules`
(`{"delivery": ["parcel", "tracking"], ...}`: a reason is suggested when the ticket's
customer text contains one of its keywords, whole words, case-insensitive).
"""

from __future__ import annotations

import re

from helpdesk.errors import Invalid


def check(reason: str | None, allowed: list[str]) -> None:
    """A reason set by hand must be one of the configured ones (any text when none are)."""
    if reason is None or not allowed or reason in allowed:
        return
    raise Invalid("unknown contact reason", {"contact_reason": [f"one of: {', '.join(allowed)}"]})


# A suggestion reads this prefix of each customer message: bounded work for a huge mail.
SUGGESTED_FROM_CHARS = 4000


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
