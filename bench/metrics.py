"""`python -m bench.metrics`: the metrics summary against 1M solved tickets on PostgreSQL.

Loads a fresh database (`helpdesk_bench_metrics`) with COPY: tickets solved over the last
year with their facts (value buckets included, as fact_cycles computes them), plus calls,
survey answers and a small open backlog. COPY bypasses the flushes that keep the metric
roll-ups in step, so the load ends by building them the way `helpdesk metrics rebuild` does
(`metrics_rollup.rebuild`, timed apart). Then times the summary (median of several runs after a
first one, whose time is printed too) for a one-day window and for the whole range,
ungrouped and grouped, and the percentile path for one figure over each window: PostgreSQL's
`percentile_cont` over the facts, fetching the values and interpolating in Python, and the
summary's own path (the histograms, or sorting a short period's values), all checked equal.
Prints a table and writes bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.pg import copy_rows
from bench.stats import percentile
from helpdesk.services.metrics.buckets import bucket_of

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS_MS = {"day": 100.0, "full": 500.0}
REASONS = ["delivery", "billing", "returns", "login", "refund", "damaged", "address",
           "invoice", "cancel", "warranty", "technical", "other"]
DAY = 86400.0


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--server", default="postgresql://root@127.0.0.1",
                        help="PostgreSQL server URL, without a database name")
    parser.add_argument("--database", default="helpdesk_bench_metrics")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an already loaded database instead of reloading it")
    parser.add_argument("--output", type=Path, default=RESULTS / "metrics.json")
    return parser.parse_args(argv)


def fresh_database(server: str, name: str) -> str:
    from helpdesk.config import normalize_database_url

    admin = sa.create_engine(normalize_database_url(f"{server}/postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def make_app(url: str, redis_url: str):
    from helpdesk import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url},
                      socket_server=False)


class Loader:
    """Builds the bench data set deterministically (seeded)."""

    def __init__(self, tickets: int, now: datetime):
        self.rng = random.Random(42)
        self.tickets, self.now = tickets, now
        self.start = now - timedelta(days=365)
        self.agents, self.channels, self.customers = 50, 5, 100_000

    def load(self, conn) -> dict:
        cursor = conn.cursor()
        stamp = self.now.isoformat()
        cursor.execute("INSERT INTO teams (name, created_at) SELECT 'team ' || n, %s "
                       "FROM generate_series(1, 5) n", (stamp,))
        cursor.execute(
            "INSERT INTO agents (email, name, role, level, languages, channels, capacity, "
            "presence, active, created_at, team_id) SELECT 'a' || n || '@bench', 'Agent ' || n,"
            " 'agent', 1 + mod(n, 2), '[]', '[]', 1, 'offline', true, %s, 1 + mod(n, 5) "
            "FROM generate_series(1, %s) n", (stamp, self.agents))
        cursor.execute(
            "INSERT INTO channels (name, kind, provider, key, settings, secrets, created_at) "
            "SELECT 'channel ' || n, 'api', 'api', 'key' || n, '{}', '{}', %s "
            "FROM generate_series(1, %s) n", (stamp, self.channels))
        cursor.execute("INSERT INTO customers (name, tier, created_at) SELECT 'c' || n, "
                       "'standard', %s FROM generate_series(1, %s) n", (stamp, self.customers))
        counts = {"tickets": copy_rows(cursor, "tickets", TICKET_COLUMNS, self._tickets())}
        counts["ticket_facts"] = copy_rows(cursor, "ticket_facts", FACT_COLUMNS, self._facts())
        counts["calls"] = copy_rows(cursor, "calls", CALL_COLUMNS, self._calls())
        counts["surveys"] = copy_rows(cursor, "surveys", SURVEY_COLUMNS, self._surveys())
        conn.commit()
        return counts

    def _moment(self) -> datetime:
        return self.start + timedelta(seconds=self.rng.random() * 365 * DAY)

    def _tickets(self) -> Iterator[tuple]:
        """1M solved tickets, then a small open backlog; the facts reuse the same draws."""
        self.drawn: list[tuple] = []
        for n in range(1, self.tickets + 1):
            created = self._moment()
            response = created + timedelta(seconds=self.rng.expovariate(1 / 3600))
            solved = min(response + timedelta(seconds=self.rng.expovariate(1 / 28800)),
                         self.now)
            agent, channel = self.rng.randint(1, self.agents), self.rng.randint(1, 5)
            self.drawn.append((created, response, solved, agent, channel))
            yield _ticket_row(n, created, response, solved, agent, channel, "solved")
        for n in range(self.tickets + 1, self.tickets + 2001):
            created = self.now - timedelta(seconds=self.rng.random() * 3 * DAY)
            yield _ticket_row(n, created, None, None, None, self.rng.randint(1, 5), "open")

    def _facts(self) -> Iterator[tuple]:
        rng = self.rng
        for n, (created, response, solved, agent, channel) in enumerate(self.drawn, 1):
            policy = 1 if rng.random() < 0.8 else None
            frt, resolution = ((response - created).total_seconds(),
                               (solved - created).total_seconds())
            yield (n, 1, created, solved, None, rng.random() < 0.05, channel, agent,
                   rng.choices(REASONS, weights=[1 / (i + 1) for i in range(12)])[0],
                   rng.random() < 0.3, response, frt, True, resolution, rng.random() * 600,
                   60 + rng.random() * 3600, 1 if rng.random() < 0.85 else 2,
                   rng.randint(1, 4), policy, None if policy is None else rng.random() < 0.9,
                   bucket_of(resolution), bucket_of(frt))

    def _calls(self) -> Iterator[tuple]:
        outcomes = ["answered"] * 8 + ["abandoned", "voicemail"]
        for n in range(1, self.tickets // 5 + 1):
            started = self._moment()
            yield (1 + n % 5, 1 + n % self.customers, f"CA{n}", "inbound",
                   self.rng.choice(outcomes), self.rng.random() * 120, started, started, 3,
                   -1, True)

    def _surveys(self) -> Iterator[tuple]:
        scales = {"csat": (1, 5), "ces": (1, 7), "nps": (0, 10)}
        for n in range(1, self.tickets // 7 + 1):
            kind = ("csat", "csat", "ces", "nps")[n % 4]
            answered = self._moment()
            yield (n, 1 + n % self.customers, 1 + n % self.agents, 1 + n % 5, kind,
                   f"tok{n}", "answered", self.rng.randint(*scales[kind]), answered, answered)


TICKET_COLUMNS = [
    "id", "subject", "status", "priority", "priority_rank", "priority_manual", "level",
    "max_level", "urgency", "urgency_reasons", "assignee_id", "customer_id", "channel_id",
    "tags", "identity_verified", "sla_due_at", "sla_breached", "first_response_breached",
    "resolution_breached", "sla_paused_seconds", "created_at", "updated_at",
    "last_activity_at", "first_response_at", "solved_at"]
FACT_COLUMNS = [
    "ticket_id", "cycle", "started_at", "solved_at", "reopened_at", "reopened", "channel_id",
    "assignee_id", "contact_reason", "contact_reason_suggested", "first_response_at",
    "first_response_seconds", "frt_counted", "resolution_seconds", "pending_seconds",
    "handle_seconds", "max_level", "public_replies", "sla_policy_id", "sla_met",
    "resolution_bucket", "frt_bucket"]
CALL_COLUMNS = ["channel_id", "customer_id", "external_id", "direction", "outcome",
                "wait_seconds", "started_at", "updated_at", "status_rank", "sequence",
                "reached_us"]
SURVEY_COLUMNS = ["ticket_id", "customer_id", "agent_id", "channel_id", "kind", "token",
                  "status", "score", "answered_at", "created_at"]


def _ticket_row(n, created, response, solved, agent, channel, status) -> tuple:
    last = solved or created
    return (n, f"ticket {n}", status, "normal", 1, False, 1, 1, 0, "[]", agent,
            1 + n % 100_000, channel, "[]", True, "9999-12-31T00:00:00+00:00", False, False,
            False, 0.0, created, last, last, response, solved)


def _timed(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """(ms of the first run, median ms of `runs` more)."""
    times = []
    for _ in range(runs + 1):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000.0)
    return times[0], statistics.median(times[1:])


def _median_ms(action: Callable[[], object], runs: int) -> float:
    return _timed(action, runs)[1]  # the first run warms the caches


def time_summaries(app, runs: int, now: datetime, first: datetime) -> list[dict]:
    from helpdesk.extensions import db
    from helpdesk.services.metrics import summary as metrics

    day_end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    windows = {"day": (day_end - timedelta(days=1), day_end),
               "full": (first, now + timedelta(seconds=1))}
    rows = []
    with app.app_context():
        for window, (start, end) in windows.items():
            for group_by in (None, "agent", "team", "channel", "day"):
                def run(start=start, end=end, group_by=group_by) -> None:
                    metrics.summary(start, end, group_by)
                    db.session.rollback()

                first_ms, ms = _timed(run, runs)
                rows.append({"window": window, "group_by": group_by or "-", "median_ms": ms,
                             "first_ms": first_ms,
                             "target_ms": TARGETS_MS[window],
                             "ok": ms <= TARGETS_MS[window]})
    return rows


def time_percentiles(app, runs: int, start: datetime, end: datetime) -> dict:
    """Resolution p50 and p90: percentile_cont in SQL, fetching the values and interpolating
    in Python, and the summary's own path; all three must agree."""
    from helpdesk.extensions import db
    from helpdesk.services.metrics.histograms import RESOLUTION
    from helpdesk.services.metrics.percentiles import distribution
    from helpdesk.services.metrics.periods import Period

    where = "WHERE solved_at >= :start AND solved_at < :end"
    params = {"start": start, "end": end}
    sql = sa.text("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds), "
                  "percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_seconds), count(*) "
                  f"FROM ticket_facts {where}")
    fetch = sa.text(f"SELECT resolution_seconds FROM ticket_facts {where}")

    def in_python() -> tuple:
        values = [row[0] for row in db.session.execute(fetch, params)]
        return percentile(values, 50), percentile(values, 90)

    with app.app_context():
        *in_sql, count = db.session.execute(sql, params).one()
        direct = count <= app.config["METRICS_SORT_UP_TO"]

        def summary_path() -> list:
            found = distribution(RESOLUTION, Period(start, end), None, direct)[None][2]
            db.session.rollback()
            return found

        assert all(abs(a - b) < 1e-6 for a, b in zip(in_sql, in_python(), strict=True))
        assert summary_path() == list(in_sql)  # exactly, to the last bit
        sql_ms = _median_ms(lambda: db.session.execute(sql, params).one(), runs)
        python_ms = _median_ms(in_python, runs)
        summary_ms = _median_ms(summary_path, runs)
    return {"values": count, "sql_ms": sql_ms, "python_ms": python_ms,
            "python_over_sql": python_ms / sql_ms,
            "summary_path": "sorted" if direct else "histograms", "summary_ms": summary_ms}


def _print(result: dict) -> None:
    print(f"metrics bench: {result['counts']}")
    print(f"{'window':<6} {'group_by':<8} {'median':>10} {'target':>8}  result  {'first':>8}")
    for row in result["summary"]:
        print(f"{row['window']:<6} {row['group_by']:<8} {row['median_ms']:>8.1f}ms "
              f"{row['target_ms']:>6.0f}ms  {'PASS' if row['ok'] else 'MISS'}  "
              f"{row['first_ms']:>6.1f}ms")
    for window, p in result["percentiles"].items():
        print(f"percentiles ({window}, {p['values']} values): SQL {p['sql_ms']:.1f} ms, Python "
              f"{p['python_ms']:.1f} ms, Python/SQL = {p['python_over_sql']:.2f}x; the "
              f"summary's path ({p['summary_path']}) {p['summary_ms']:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    url = f"{args.server}/{args.database}" if args.reuse else fresh_database(
        args.server, args.database)
    app = make_app(url, args.redis_url)
    now = datetime.now(UTC).replace(microsecond=0)
    counts: dict = {}
    if not args.reuse:
        from flask_migrate import upgrade

        from helpdesk.config import MIGRATIONS_DIR
        from helpdesk.extensions import db

        with app.app_context():
            upgrade(directory=str(MIGRATIONS_DIR))
            began = time.perf_counter()
            raw = db.engine.raw_connection()
            counts = Loader(args.tickets, now).load(raw.driver_connection)
            raw.close()
            counts["load_seconds"] = round(time.perf_counter() - began, 1)
            began = time.perf_counter()
            from helpdesk.services.metrics import rollup as metrics_rollup

            counts["rollup_rows"] = metrics_rollup.rebuild()  # what COPY did not maintain
            counts["rollup_seconds"] = round(time.perf_counter() - began, 1)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
    from helpdesk.extensions import db

    with app.app_context():
        first, last = db.session.execute(sa.text(
            "SELECT min(created_at), max(solved_at) FROM tickets")).one()
        now = max(now, last)
        for table in ("tickets", "ticket_facts", "calls", "surveys"):
            counts[table] = db.session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
        counts["load_average"] = round(os.getloadavg()[0], 2)
    day_end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    result = {"database": args.database, "tickets": args.tickets, "runs": args.runs,
              "counts": counts, "summary": time_summaries(app, args.runs, now, first),
              "percentiles": {
                  "day": time_percentiles(app, args.runs, day_end - timedelta(days=1),
                                          day_end),
                  "full": time_percentiles(app, args.runs, first, now + timedelta(seconds=1))}}
    _print(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
