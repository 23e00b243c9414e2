"""Compaction of the metric roll-ups: each cell's rows folded into one row of their sums.

Writers only ever append rows, so a cell (a day, or month, and a key) collects one row per
change. Compaction replaces the rows of every cell that has new (uncompacted) rows by one
compacted row of their sums; cells whose sums are all zero disappear. Figures do not change:
readers sum a cell's rows whichever way they are split.

On PostgreSQL the rows are deleted and their sums inserted in one statement (one snapshot),
so a row another transaction commits meanwhile is either folded in or left as it was, never
lost. SQLite has a single writer: two statements in one transaction do.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from helpdesk.models import MetricHistogram, MetricRollup
from helpdesk.models.rollups import COUNTS, SUMS

CELLS: dict[type, tuple[str, ...]] = {
    MetricRollup: ("dimension", "day", "key"),
    MetricHistogram: ("figure", "dimension", "start", "key", "bucket"),
}
MEASURES: dict[type, tuple[str, ...]] = {MetricRollup: COUNTS + SUMS,
                                         MetricHistogram: ("n", "total")}


def compact_table(connection: Connection, table: type) -> int:
    """Compact one roll-up table; the number of compacted rows written."""
    name, cell, measures = table.__tablename__, CELLS[table], MEASURES[table]
    keys = ", ".join(cell)
    sums = ", ".join(f"sum({m})" for m in measures)
    nonzero = " OR ".join(f"sum({m}) <> 0" for m in measures)
    columns = f"{keys}, compacted, {', '.join(measures)}"
    if connection.dialect.name == "postgresql":
        matches = " AND ".join(f"r.{c} = c.{c}" for c in cell)
        returned = ", ".join(f"r.{c}" for c in (*cell, *measures))
        statement = (
            f"WITH cells AS (SELECT DISTINCT {keys} FROM {name} WHERE NOT compacted), "
            f"moved AS (DELETE FROM {name} r USING cells c WHERE {matches} "
            f"RETURNING {returned}) "
            f"INSERT INTO {name} ({columns}) SELECT {keys}, true, {sums} FROM moved "
            f"GROUP BY {keys} HAVING {nonzero}")
        return connection.execute(text(statement)).rowcount
    last = connection.execute(text(f"SELECT max(id) FROM {name}")).scalar()
    if last is None:
        return 0
    touched = (f"id <= :last AND ({keys}) IN "
               f"(SELECT {keys} FROM {name} WHERE NOT compacted AND id <= :last)")
    written = connection.execute(text(
        f"INSERT INTO {name} ({columns}) SELECT {keys}, 1, {sums} FROM {name} "
        f"WHERE {touched} GROUP BY {keys} HAVING {nonzero}"), {"last": last}).rowcount
    connection.execute(text(f"DELETE FROM {name} WHERE {touched}"), {"last": last})
    return written
