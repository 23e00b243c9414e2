"""SQL building blocks the metrics share, one per dialect where PostgreSQL and SQLite differ.

Percentiles interpolate linearly between the two closest ranks, like PostgreSQL's
`percentile_cont`: on PostgreSQL with `percentile_cont` itself, on SQLite with window
functions (row number and count per group) and the same interpolation in SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Float, Integer, case, cast, func, literal, null, select, text
from sqlalchemy.sql import ColumnElement, Select

from helpdesk.extensions import db

FRACTIONS = (0.5, 0.9)


def dialect() -> str:
    return db.session.get_bind().dialect.name


def tune_session() -> None:
    """For this transaction: let PostgreSQL sort a year of values for percentiles in
    memory, and skip JIT compilation (it costs more than it saves on these queries)."""
    if dialect() == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '128MB'"))
        db.session.execute(text("SET LOCAL jit = off"))
    serial_scans()


def serial_scans() -> None:
    """For this transaction: no parallel workers on PostgreSQL. A big scan would finish
    1.5x sooner with 3x the CPU, taken from the requests being served."""
    if dialect() == "postgresql":
        db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def day_of(column: ColumnElement) -> ColumnElement:
    """The UTC date of a timestamp: a date on PostgreSQL (cheaper to compute and group by
    than text), `YYYY-MM-DD` on SQLite; `day_key` makes either a `YYYY-MM-DD` string."""
    if dialect() == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.strftime("%Y-%m-%d", column)


def month_of(column: ColumnElement) -> ColumnElement:
    """The first day of a timestamp's UTC month (a date, or `YYYY-MM-01` on SQLite)."""
    if dialect() == "postgresql":
        return cast(func.date_trunc("month", func.timezone("UTC", column)), Date)
    return func.strftime("%Y-%m-01", column)


def day_key(value: Any) -> str:
    return value if isinstance(value, str) else value.isoformat()


def seconds_between(later: ColumnElement, earlier: ColumnElement) -> ColumnElement:
    """Exact to the microsecond, as Python's `timedelta.total_seconds()` computes the facts'
    times: SQLite's julianday() keeps milliseconds in a float of days (60 s came out as
    59.9999964), so there whole seconds and microseconds are subtracted apart."""
    if dialect() == "postgresql":
        return func.extract("epoch", later - earlier)
    return (_sqlite_microseconds(later) - _sqlite_microseconds(earlier)) / 1_000_000.0


def _sqlite_microseconds(moment: ColumnElement) -> ColumnElement:
    """A timestamp as SQLAlchemy stores it in SQLite (`YYYY-MM-DD HH:MM:SS.ffffff`) in
    microseconds since 1970 (no fraction, or an offset after the seconds, count as 0)."""
    fraction = case((func.substr(moment, 20, 1) == ".",
                     cast(func.substr(moment, 21, 6), Integer)), else_=0)
    # (whole seconds from the first 19 characters: SQLite rounds a fraction to milliseconds
    # when it parses one, and .9997 s made the second the next)
    return cast(func.strftime("%s", func.substr(moment, 1, 19)), Integer) * 1_000_000 + fraction


def earliest(first: ColumnElement, second: ColumnElement) -> ColumnElement:
    """The earlier of two nullable timestamps (NULL only when both are)."""
    return case((first.is_(None), second), (second.is_(None), first),
                (first <= second, first), else_=second)


def ratio(condition: ColumnElement) -> ColumnElement:
    """The share of rows meeting `condition` (NULL without rows)."""
    return func.avg(case((condition, literal(1.0, Float)), else_=literal(0.0, Float)))


def grouped(query: Select, key: ColumnElement | None) -> Select:
    return query.group_by(key) if key is not None else query


def key_column(key: ColumnElement | None) -> ColumnElement:
    return (key if key is not None else null()).label("key")


def sorted_distribution(values: Select, grouped: bool = True
                        ) -> dict[Any, tuple[int, float | None, list[float | None]]]:
    """{key: (count, mean, [p50, p90])} of a select of (`key`, `value`) rows, by sorting
    every value in the database (key None
    when not `grouped`)."""
    sub = values.where(values.selected_columns.value.is_not(None)).subquery()
    if dialect() == "postgresql":
        query = _pg_distribution(sub, grouped)
    else:
        query = _window_distribution(sub)
    return {row[0]: (row[1], _float(row[2]), [_float(v) for v in row[3:]])
            for row in db.session.execute(query) if row[1]}


def _pg_distribution(sub, grouped: bool) -> Select:
    """Values in (key, value) order: each group's percentile sort then finds them sorted
    already, and an index in that order (migration 0007) spares the sort."""
    order = (sub.c.key, sub.c.value) if grouped else (sub.c.value,)
    ordered = select(sub.c.key, sub.c.value).order_by(*order).subquery()
    key, value = ordered.c.key, ordered.c.value
    columns = [func.percentile_cont(p).within_group(value) for p in FRACTIONS]
    query = select(key if grouped else null(), func.count(), func.avg(value), *columns)
    return query.group_by(key) if grouped else query


def _window_distribution(sub) -> Select:
    order = (func.row_number().over(partition_by=sub.c.key, order_by=sub.c.value) - 1)
    ranked = select(sub.c.key, sub.c.value, order.label("i"),
                    func.count().over(partition_by=sub.c.key).label("n")).subquery()
    columns = []
    for p in FRACTIONS:
        position = (ranked.c.n - 1) * p
        below = cast(position, Integer)
        low = func.max(case((ranked.c.i == below, ranked.c.value)))
        high = func.max(case((ranked.c.i == below + 1, ranked.c.value)))
        fraction = func.max(position - below)
        columns.append(low + (func.coalesce(high, low) - low) * fraction)
    return select(ranked.c.key, func.count(), func.avg(ranked.c.value), *columns
                  ).group_by(ranked.c.key)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
