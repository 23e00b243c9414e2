"""Metric roll-ups: what the summary reads instead of every ticket, fact, call and survey.

Both tables hold sums: a cell's figure is the sum of its rows. Writers append rows of changes
(never update a row, so concurrent writers never wait on each other); compaction folds a
cell's rows into one. Everything here is derived from the stored tickets, facts, calls and
surveys, and `helpdesk metrics rebuild` recomputes it (services/metrics/rollup.py).

`key` is the agent's or channel's id, or NO_KEY: no agent (unassigned), or no key at all (the
histograms' `day` dimension). Not NULL, so that a cell's rows can be found by equality.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.extensions import db

ROW_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only
UNCOMPACTED = "NOT compacted"
NO_KEY = 0  # ids start at 1
EVER = date(1, 1, 1)  # the `start` of all-time histogram rows

# The additive parts (services/metrics/parts.py): counts, and sums of seconds or scores.
COUNTS = ("created", "solved", "flr", "fcr", "sla_met", "sla_n", "calls", "abandoned",
          "csat_n", "csat_good", "ces_n", "nps_n", "promoters", "detractors")
SUMS = ("handle_sum", "pending_sum", "csat_sum", "ces_sum")


def _zero() -> Any:
    return mapped_column(default=0, server_default=text("0"))


def _compacted() -> Any:
    return mapped_column(default=False, server_default=false())


class MetricRollup(db.Model):
    """Additive parts per UTC day, per agent (dimension `agent`) or channel (`channel`)."""

    __tablename__ = "metric_rollups"
    __table_args__ = (
        Index("ix_metric_rollups_cell", "dimension", "day", "key"),
        Index("ix_metric_rollups_uncompacted", "id", postgresql_where=text(UNCOMPACTED),
              sqlite_where=text(UNCOMPACTED)),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(10))
    day: Mapped[date] = mapped_column(Date)
    key: Mapped[int] = _zero()  # NO_KEY by default
    compacted: Mapped[bool] = _compacted()
    created: Mapped[int] = _zero()
    solved: Mapped[int] = _zero()
    handle_sum: Mapped[float] = _zero()
    flr: Mapped[int] = _zero()
    fcr: Mapped[int] = _zero()
    pending_sum: Mapped[float] = _zero()
    sla_met: Mapped[int] = _zero()
    sla_n: Mapped[int] = _zero()
    calls: Mapped[int] = _zero()
    abandoned: Mapped[int] = _zero()
    csat_n: Mapped[int] = _zero()
    csat_sum: Mapped[float] = _zero()
    csat_good: Mapped[int] = _zero()
    ces_n: Mapped[int] = _zero()
    ces_sum: Mapped[float] = _zero()
    nps_n: Mapped[int] = _zero()
    promoters: Mapped[int] = _zero()
    detractors: Mapped[int] = _zero()


class MetricHistogram(db.Model):
    """How many resolution or first-response times fall in each value bucket, and their sum.

    Dimension `day`: per UTC day (no key). Dimensions `agent` and `channel`: per UTC month
    (`start` is its first day), per agent or channel: days would be too fine to save rows."""

    __tablename__ = "metric_histograms"
    __table_args__ = (
        Index("ix_metric_histograms_cell", "figure", "dimension", "start", "key", "bucket",
              postgresql_include=["n", "total"]),
        Index("ix_metric_histograms_uncompacted", "id", postgresql_where=text(UNCOMPACTED),
              sqlite_where=text(UNCOMPACTED)),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    figure: Mapped[str] = mapped_column(String(20))
    dimension: Mapped[str] = mapped_column(String(10))
    start: Mapped[date] = mapped_column(Date)
    key: Mapped[int] = _zero()  # NO_KEY by default
    bucket: Mapped[int] = mapped_column()
    compacted: Mapped[bool] = _compacted()
    n: Mapped[int] = _zero()
    total: Mapped[float] = _zero()
