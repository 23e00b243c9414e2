"""JSON as RFC 8259 defines it, for bodies received from outside.

Python's `json.loads` also reads `NaN`, `Infinity` and `-Infinity`, and turns a number
beyond a double's range (`1e999`) into infinity: stored in a JSON column, PostgreSQL refuses
them (a 500) and SQLite keeps them, to be written back as bare `Infinity`, which no strict
JSON parser (a browser's `JSON.parse`) reads.
"""

from __future__ import annotations

import json
import math
from typing import Any


def loads(raw: bytes | str) -> Any:
    """Parse `raw`; ValueError for anything that is not strict JSON, non-finite numbers included."""
    return json.loads(raw, parse_constant=_constant, parse_float=_finite)


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value
