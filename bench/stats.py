"""Small statistics helpers (percentiles by linear interpolation between closest ranks) and
the benches' result table."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation (NumPy's default 'linear')."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict:
    """count, p50, p90, p99, max and mean of latencies given in seconds, in milliseconds."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None,
                "mean_ms": None}
    ms = [s * 1000.0 for s in seconds]
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms), "mean_ms": sum(ms) / len(ms)}


# The columns of a bench's result table: (header, key of the row dict).
TABLE_COLUMNS = (("figure", "figure"), ("value", "value"), ("target", "target"),
                 ("PASS/MISS", "result"), ("same-run baseline", "baseline"), ("ratio", "ratio"))


def print_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> None:
    """The rows as an aligned text table, one line per figure."""
    widths = [max(len(header), *(len(str(r[key])) for r in rows)) for header, key in columns]
    print("  ".join(header.ljust(w) for (header, _), w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(r[key]).ljust(w)
                        for (_, key), w in zip(columns, widths, strict=True)).rstrip())


def report(results: dict, output: Path, rows: Sequence[dict], footer: str, error: str | None,
           columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> int:
    """A bench's end: the results written to `output` as JSON, the table and the footer
    printed; the exit code (1 when the run stopped on `error`, 130 when interrupted)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    if rows:
        print_table(rows, columns)
    print(f"\n{footer}")
    if error:
        print(f"bench incomplete: {error}", file=sys.stderr)
        return 130 if error == "interrupted" else 1
    return 0
