"""Keeping the metric roll-ups (models/rollups.py) in step with the records they sum.

Every flush that inserts, changes or deletes a ticket, fact, call or survey appends, for each
roll-up cell it touches, the change: the rows' contributions after the flush less those
before it (read just before, under a row lock on PostgreSQL so that no concurrent change
slips in between). Contributions come from the declarations that also count periods from the
records (parts.SOURCES, histograms.FIGURES), so both always agree. A bulk
UPDATE bypasses the flush: wrap it in `tracking(model, ids)`.

`compact` folds each cell's rows into one (the sweeper runs it); `rebuild` recomputes both
tables from the records (`helpdesk metrics rebuild`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, insert, literal, select, text, true, union_all
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import PASSIVE_NO_INITIALIZE

from helpdesk.extensions import db
from helpdesk.models import Call, MetricHistogram, MetricRollup, Survey, Ticket, TicketFact
from helpdesk.models.rollups import NO_KEY
from helpdesk.services.metrics.compaction import CELLS, MEASURES, compact_table
from helpdesk.services.metrics.histograms import all_histogram_rows
from helpdesk.services.metrics.parts import DIMENSIONS, SOURCES, rollup_rows
from helpdesk.services.metrics.sql import dialect
from helpdesk.transaction import listen

# What a roll-up depends on, per model (None: everything, for the facts).
TRACKED: dict[type, tuple[str, ...] | None] = {
    Ticket: ("created_at", "assignee_id", "channel_id", "status", "solved_at"),
    TicketFact: None,
    Call: ("started_at", "agent_id", "channel_id", "direction", "outcome"),
    Survey: ("answered_at", "score", "kind", "agent_id", "channel_id"),
}
_BEFORE = "helpdesk.metrics_rollup.before"
Cells = dict[tuple, dict[str, float]]  # {(table, *cell key): {measure: sum}}


def _queries(model: type, condition) -> list[tuple[type, Any]]:
    """(roll-up table, select of its rows) for the records of `model` meeting `condition`."""
    found = [(MetricRollup, union_all(*(rollup_rows(source, dimension, condition)
                                        for dimension in DIMENSIONS)))
             for source in SOURCES if source.model is model]
    if model is TicketFact:
        found.append((MetricHistogram, union_all(*all_histogram_rows(condition))))
    return found


@cache
def _queries_by_ids(model: type, _dialect: str) -> list[tuple[type, Any]]:
    """`_queries` for the records whose ids are the `ids` parameter, built once per model
    (every flush that changes a tracked record runs them)."""
    return _queries(model, model.id.in_(bindparam("ids", expanding=True)))


def _cell(table: type, row: dict) -> tuple:
    return (table, *(_date(row[name]) if name in ("day", "start") else row[name]
                     for name in CELLS[table]))


def _date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value  # SQLite: text


def contributions(session: Session, ids: dict[type, set[int]], lock: bool = False) -> Cells:
    """{cell: {column: sum}} of these records as the database has them now."""
    cells: Cells = defaultdict(lambda: defaultdict(int))
    connection = session.connection()
    for model, model_ids in ids.items():
        if not model_ids:
            continue
        ids_param = {"ids": sorted(model_ids)}
        if lock and dialect() == "postgresql":
            connection.execute(select(model.id).where(model.id.in_(ids_param["ids"]))
                               .order_by(model.id).with_for_update())
        for table, query in _queries_by_ids(model, dialect()):
            for row in connection.execute(query, ids_param).mappings():
                values = cells[_cell(table, row)]
                for name in MEASURES[table]:
                    if name in row:
                        values[name] += row[name] or 0
    return cells


def append(session: Session, after: Cells, before: Cells) -> int:
    """Append the change from `before` to `after`, one row per cell that changed."""
    rows: dict[type, list[dict]] = defaultdict(list)
    for cell in set(after) | set(before):
        table, *keys = cell
        change = {name: after.get(cell, {}).get(name, 0) - before.get(cell, {}).get(name, 0)
                  for name in MEASURES[table]}
        if any(change.values()):
            rows[table].append({**dict(zip(CELLS[table], keys, strict=True)), **change})
    for table, table_rows in rows.items():
        session.connection().execute(insert(table), table_rows)
    return sum(len(table_rows) for table_rows in rows.values())


def _changed(session: Session) -> dict[type, set[int]]:
    """Ids of the tracked records this flush updates in a tracked column, or deletes."""
    found: dict[type, set[int]] = defaultdict(set)
    for obj in session.dirty:
        columns = TRACKED.get(type(obj), ())
        if columns == ():
            continue
        if columns is None:
            if session.is_modified(obj):
                found[type(obj)].add(obj.id)
            continue
        # Only an attribute set since the load can have changed (its value then is kept in
        # `committed_state`); checked without `state.attrs`, which builds an entry for every
        # attribute (a routing batch's flush spent 4% of its CPU here).
        state = db.inspect(obj)
        if any(name in state.committed_state
               and state.get_history(name, PASSIVE_NO_INITIALIZE).has_changes()
               for name in columns):
            found[type(obj)].add(obj.id)
    for obj in session.deleted:
        if type(obj) in TRACKED and obj.id is not None:
            found[type(obj)].add(obj.id)
    return found


def _before_flush(session: Session, _context, _instances) -> None:
    changed = _changed(session)
    session.info[_BEFORE] = (changed, contributions(session, changed, lock=True)
                             if changed else {})


def _after_flush(session: Session, _context) -> None:
    changed, before = session.info.pop(_BEFORE, ({}, {}))
    ids = defaultdict(set, {model: set(model_ids) for model, model_ids in changed.items()})
    for obj in session.new:
        if type(obj) in TRACKED:
            ids[type(obj)].add(obj.id)
    if ids:
        append(session, contributions(session, ids), before)


@contextmanager
def tracking(model: type, ids: list[int]) -> Iterator[None]:
    """Keep the roll-ups in step with a bulk UPDATE of these records (in the block)."""
    session = db.session
    before = contributions(session, {model: set(ids)}, lock=True)
    yield
    append(session, contributions(session, {model: set(ids)}), before)


def claimed_sql(alias: str) -> list[str]:
    """Plain SQL (PostgreSQL) of the roll-up rows a queued ticket's claim adds, for the claim
    statement of routing.queue to run as data-modifying CTEs of its own: `alias` names the
    CTE that returns the claimed ticket as updated (`RETURNING tickets.*`; a CTE reads the
    table as it was before the statement, so the rows come from that CTE, not the table).
    The ticket was unassigned before (new or open: they count the same), so its cells move
    from no agent: one INSERT … SELECT per ticket source, its rows as they are now and the
    same taken off no agent (what a flush of the change would have appended)."""
    return list(_claimed_sql(alias))


@cache
def _claimed_sql(alias: str) -> tuple[str, ...]:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.sql.util import ClauseAdapter

    claimed = Ticket.__table__.alias(alias)
    statements = []
    for source in SOURCES:
        if source.model is not Ticket:
            continue
        after = ClauseAdapter(claimed).traverse(rollup_rows(source, "agent", true())).subquery()
        names = [column.name for column in after.c]
        day, dimension, _key, *parts = after.c
        moved = union_all(select(*after.c),
                          select(day, dimension, literal(NO_KEY), *(-part for part in parts)))
        sql = str(insert(MetricRollup).from_select(names, moved, include_defaults=False)
                  .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        # Read from the CTE itself; plain text inside a text() clause: no binds, no escapes.
        sql = sql.replace(f"FROM tickets AS {alias}", f"FROM {alias}")
        if "tickets" in sql or ":" in sql or "%" in sql:
            raise RuntimeError(f"unexpected roll-up SQL for a claim: {sql}")
        statements.append(sql)
    return tuple(statements)


def rebuild() -> int:
    """Recompute both roll-ups from the records (one transaction); the rows written."""
    connection = db.session.connection()
    if dialect() == "postgresql":  # writers' changes wait: counted after, or in, never lost
        connection.execute(text("LOCK TABLE metric_rollups, metric_histograms IN EXCLUSIVE MODE"))
    for table in (MetricRollup, MetricHistogram):
        connection.execute(delete(table))
    for model in TRACKED:
        for table, query in _queries(model, true()):
            names = [c.name for c in query.selected_columns]
            connection.execute(insert(table).from_select(
                names, query, include_defaults=False))  # the server defaults: 0
    written = compact()
    db.session.commit()
    return written


def compact() -> int:
    """Fold the rows of every cell that has uncompacted rows into one; the rows written."""
    return sum(compact_table(db.session.connection(), table)
               for table in (MetricRollup, MetricHistogram))


def compact_now() -> int:
    """The sweeper's pass: compact both roll-ups, in a transaction of its own."""
    written = compact()
    db.session.commit()
    return written


def init_app(_app: object) -> None:
    """Wire the flush hooks that keep the roll-ups in step with every tracked change."""
    listen(Session, "before_flush", _before_flush)
    listen(Session, "after_flush", _after_flush)
