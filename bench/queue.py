"""`python -m bench.queue`: `POST /api/v1/queue/next` and urgency scoring on PostgreSQL.

Targets: claims with 8 connections to one web process >= 60% of the same run's bare-Flask
ceiling (bench/ceiling.py: one INSERT + one enqueue, served like `helpdesk web`), claims p99
<= 3x the ceiling's p99, 0 tickets claimed twice (issue 17; it replaced issue 4's 1,000
claims/s, above what this stack serves on 2 cores); API p99 <= 15 ms and latency with 1M
open tickets <= 2x latency with 10k (issue 4); and scoring throughput (no target).

What it does, all bounded in time and count, 127.0.0.1 only:

1. A fresh database (`helpdesk_bench_queue`, migrated with `helpdesk db upgrade`) and a
   flushed Redis db. Five channels (email, chat, whatsapp, voice, api), 50k customers, N
   agents (level 2, no language or channel restriction, capacity 10,000 so capacity never
   blocks) with API tokens, all inserted directly.
2. For each size (10k, 100k, 1M) the queue is topped up with COPY to exactly that many open
   unassigned tickets (a realistic mix: 5% urgent, 20% high, 55% normal, 20% low; deadlines
   from the priority's first-response target, 20% without a deadline, some already breached;
   created over the last 7 days; 70% new, 30% open; 10% at level 2; 5 channel kinds; 50k
   customers) and the table is `VACUUM ANALYZE`d (what autovacuum does in production),
   then a `CHECKPOINT` (the load's WAL would set one off during the measured claims).
   The first 10k tickets also get one or two inbound messages (several languages), which the
   scoring part uses.
3. `helpdesk web` (gunicorn, one gevent worker: exactly how production runs it) on two
   ports. Per size, a run against one process, then one against both (2 processes = both
   cores; each gets half the connections). K keep-alive connections in a closed loop
   (bench.load, in spawned processes) send `POST /api/v1/queue/next`, request i as agent
   i mod N, for a fixed duration, at most size/2 claims per run (so the queue never drains
   below half its size); the queue is topped up again before every run. The run of one
   process with K connections alternates with the ceiling server in slices (ceiling,
   claims, ceiling, claims: bench.scenarios.alternate_with_ceiling, as `python -m bench`
   does for the webhook's accept rate), so both see the same machine. A last run per
   size uses one connection to one process: the service time without queueing (in a closed
   loop with K connections, latency ~ K / throughput once the server is saturated).
   Realistic agent load: requests rotate over N agents, and a thread of the bench solves
   claimed tickets out of band every 0.5 s (`UPDATE tickets SET status = 'solved' ...`, not
   measured), so an agent holds a handful of active tickets, never thousands, and the
   capacity query (`assignment.loads`) sees a realistic number of rows.
   No `helpdesk worker` runs: a claim enqueues no job (its events go straight to Redis).
   During every run a thread samples pg_stat_activity (what PostgreSQL is busy with).
4. Afterwards: tickets with an assignee == the number of 200 answers, and no ticket has two
   `assigned` events.
5. Scoring: `score_urgency` (pure) on realistic facts, `routing.score_ticket` on real tickets
   (inside an app context, rolled back: the scoring path incl. its queries and language
   detection), and `routing.route_ticket` (the whole routing job: lock, score, commit, emit).

Prints a table with the targets and writes bench/results/queue.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import secrets
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import scenarios
from bench.load import LoadResult, LoadSpec
from bench.load import run as run_load
from bench.pg import copy_rows
from bench.stats import summary_ms
from bench.system import SERVICES, Process, System, machine_ticks, process_ticks, recreate_database

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P99_MS = 15.0
TARGET_RATIO = 2.0
# Issue 17: claims at 8 connections against the same run's bare-Flask ceiling.
TARGET_SHARE_OF_CEILING = 0.60
TARGET_P99_TO_CEILING = 3.0
NO_DEADLINE = "9999-12-31 00:00:00+00"
CHANNELS = [("email", 0.45), ("chat", 0.15), ("whatsapp", 0.20), ("voice", 0.05),
            ("api", 0.15)]
PRIORITIES = [("urgent", 3, 0.05, 3600), ("high", 2, 0.20, 4 * 3600),
              ("normal", 1, 0.55, 24 * 3600), ("low", 0, 0.20, 72 * 3600)]
TEXTS = [
    "Hi, my order #{n} never arrived. Can you check where it is?",
    "This is unacceptable, I was charged twice for order {n}. I want a refund immediately!",
    "The app is not working since yesterday, I cannot log in. Please help asap.",
    "Hello, I'd like to change the delivery address of order {n}, thanks a lot.",
    "Terrible service, third time I write about order {n}. I will contact my lawyer.",
    "Hola, mi pedido {n} no ha llegado y necesito el reembolso urgente, por favor.",
    "La aplicación no funciona desde ayer, es inaceptable.",
    "Bonjour, je voudrais annuler ma commande {n}, elle ne fonctionne pas.",
    "Bonjour, pouvez-vous me dire quand ma commande {n} sera livrée ? Merci beaucoup.",
    "Mein Konto ist gesperrt, bitte dringend helfen. Bestellung {n} funktioniert nicht.",
    "Olá, o meu pedido {n} chegou danificado, quero o estorno o quanto antes.",
    "Thanks for the quick answer yesterday, everything works fine now!",
]


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="open unassigned tickets, ascending, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="keep-alive connections (split across the web processes)")
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--processes", default="1,2", help="web process counts to run")
    parser.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                        help="run one process x --concurrency in slices alternating with the "
                        "bare-Flask ceiling (bench/ceiling.py) at the same width (issue 17)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating ceiling/claims slices --duration is split into")
    parser.add_argument("--single-client", action=argparse.BooleanOptionalAction,
                        default=True, help="also one connection to one process (service "
                        "time without queueing)")
    parser.add_argument("--score-seconds", type=float, default=4.0,
                        help="seconds per scoring measurement")
    parser.add_argument("--database", default="helpdesk_bench_queue")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--port", type=int, default=18441, help="first web port (+1, ...)")
    parser.add_argument("--ceiling-port", type=int, default=None,
                        help="the ceiling server's port (default: --port + 100)")
    parser.add_argument("--label", default="", help="a note stored with the results")
    parser.add_argument("--keep-database", action="store_true",
                        help="keep the database afterwards (default: drop it)")
    parser.add_argument("--output", type=Path, default=RESULTS / "queue.json")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- data


TICKET_COLUMNS = [
    "id", "subject", "status", "priority", "priority_rank", "priority_manual", "level",
    "max_level", "urgency", "urgency_reasons", "customer_id", "channel_id", "tags",
    "identity_verified", "first_response_due_at", "sla_due_at", "sla_breached",
    "created_at", "updated_at", "last_activity_at"]
MESSAGE_COLUMNS = [
    "ticket_id", "channel_id", "direction", "internal", "author_type", "external_id", "text",
    "in_reply_to", '"references"', "delivery_status", "flags", "created_at", "updated_at"]


class Data:
    """The bench's data set, loaded directly (COPY), deterministic (seeded)."""

    CUSTOMERS = 50_000
    WITH_MESSAGES = 10_000

    def __init__(self, system: System, agents: int):
        self.system = system
        self.rng = random.Random(4)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.agents = agents
        self.next_id = 1
        self.tokens: list[str] = []
        self.channel_ids: dict[str, int] = {}

    def seed(self) -> None:
        stamp = self.now.isoformat()
        with self.system.db().cursor() as cur:
            for kind, _ in CHANNELS:
                cur.execute("INSERT INTO channels (name, kind, provider, key, settings, secrets,"
                            " created_at) VALUES (%s, %s, 'api', %s, '{}', '{}', %s) "
                            "RETURNING id", (f"bench {kind}", kind, secrets.token_hex(8), stamp))
                self.channel_ids[kind] = cur.fetchone()[0]
            copy_rows(cur, "customers", ["id", "name", "tier", "created_at"],
                  ((n, f"Customer {n}", "vip" if n % 20 == 0 else "standard", stamp)
                   for n in range(1, self.CUSTOMERS + 1)))
            cur.execute("SELECT setval('customers_id_seq', %s)", (self.CUSTOMERS,))
            from helpdesk.services.auth import hash_token

            for n in range(1, self.agents + 1):
                cur.execute(
                    "INSERT INTO agents (email, name, role, level, languages, channels, capacity,"
                    " presence, active, created_at) VALUES (%s, %s, 'agent', 2, '[]', '[]', "
                    "10000, 'online', true, %s) RETURNING id",
                    (f"queue-agent-{n}@bench", f"Agent {n}", stamp))
                agent_id = cur.fetchone()[0]
                token = "hd_" + secrets.token_urlsafe(32)
                cur.execute("INSERT INTO api_tokens (agent_id, token_hash, created_at) "
                            "VALUES (%s, %s, %s)", (agent_id, hash_token(token), stamp))
                self.tokens.append(token)

    def queued(self) -> int:
        return int(self.system.scalar(
            "SELECT count(*) FROM tickets WHERE assignee_id IS NULL "
            "AND status IN ('new', 'open')"))

    def top_up(self, size: int) -> dict:
        """Add tickets until `size` wait in the queue; VACUUM ANALYZE; what it took."""
        began = time.perf_counter()
        missing = max(size - self.queued(), 0)
        first = self.next_id
        with self.system.db().cursor() as cur:
            added = copy_rows(cur, "tickets", TICKET_COLUMNS, self._tickets(missing))
            with_text = range(first, min(first + added, self.WITH_MESSAGES + 1))
            messages = copy_rows(cur, "messages", MESSAGE_COLUMNS, self._messages(with_text))
            cur.execute("SELECT setval('tickets_id_seq', %s)", (self.next_id,))
            loaded = time.perf_counter() - began
            cur.execute("VACUUM ANALYZE tickets")
            if messages:
                cur.execute("VACUUM ANALYZE messages")
            # The load writes up to ~1 GB of WAL: on a server with the default max_wal_size
            # (1 GB) it sets off a checkpoint, which then ran through the measured claims
            # (every page the claims touched written again in full, +50% PostgreSQL CPU per
            # claim at 1M; seen 2026-12-05). Finish it before measuring, as a server that
            # was not just bulk-loaded has no such checkpoint in progress.
            cur.execute("CHECKPOINT")
        return {"added": added, "messages": messages, "load_s": round(loaded, 1),
                "vacuum_s": round(time.perf_counter() - began - loaded, 1)}

    def _tickets(self, count: int):
        rng, now = self.rng, self.now
        kinds, kind_w = zip(*CHANNELS, strict=True)
        weights = [p[2] for p in PRIORITIES]
        for _ in range(count):
            n = self.next_id
            self.next_id += 1
            name, rank, _, target = rng.choices(PRIORITIES, weights)[0]
            created = now - timedelta(seconds=rng.random() * 7 * 86400)
            if rng.random() < 0.2:
                first_due, due = None, NO_DEADLINE
            else:
                # Mostly fresh tickets: bias towards the last few hours, so some are not
                # yet breached.
                created = now - timedelta(seconds=rng.expovariate(1 / (6 * 3600)))
                first_due = (created + timedelta(seconds=target)).isoformat()
                due = first_due
            stamp = created.isoformat()
            breached = due != NO_DEADLINE and created + timedelta(seconds=target) < now
            yield (n, f"Ticket {n}", "new" if rng.random() < 0.7 else "open", name, rank,
                   False, 2 if rng.random() < 0.1 else 1, 1, rank * 25, "[]",
                   rng.randint(1, self.CUSTOMERS),
                   self.channel_ids[rng.choices(kinds, kind_w)[0]], "[]", True, first_due, due,
                   breached, stamp, stamp, stamp)

    def _messages(self, ticket_ids):
        rng = self.rng
        for ticket_id in ticket_ids:
            channel = self.channel_ids[rng.choice([kind for kind, _ in CHANNELS])]
            for part in range(rng.choice((1, 1, 2))):
                at = (self.now - timedelta(seconds=rng.random() * 3600)).isoformat()
                yield (ticket_id, channel, "inbound", False, "customer",
                       f"bench-{ticket_id}-{part}",
                       rng.choice(TEXTS).format(n=rng.randint(10_000, 99_999)), "[]", "[]",
                       "received", "{}", at, at)


class Solver(threading.Thread):
    """Out of band, every `interval` s: claimed tickets become solved (not measured)."""

    def __init__(self, system: System, interval: float = 0.5):
        super().__init__(daemon=True)
        self.dsn_db = system.database
        self.interval = interval
        self.stopping = threading.Event()
        self.solved = 0

    def run(self) -> None:
        import psycopg2

        from bench.system import pg_dsn

        conn = psycopg2.connect(pg_dsn(self.dsn_db))
        conn.autocommit = True
        try:
            while not self.stopping.wait(self.interval):
                self.solve(conn)
            self.solve(conn)
        finally:
            conn.close()

    def solve(self, conn) -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE tickets SET status = 'solved', solved_at = now(), "
                        "updated_at = now() WHERE assignee_id IS NOT NULL AND status = 'open'")
            self.solved += cur.rowcount

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


class Sampler(threading.Thread):
    """What PostgreSQL works on for us: every 50 ms, the active backends of our database,
    by statement (first 60 characters); shares of the samples afterwards. Also what else
    the server works on meanwhile (`background`): autovacuum workers (any database) and
    other databases' active clients, which take the cores and the buffer cache the claims
    are measured on (the 1M row of a `make bench` had PostgreSQL spend twice the CPU per
    claim of the same row run alone)."""

    def __init__(self, system: System, interval: float = 0.05):
        super().__init__(daemon=True)
        self.database = system.database
        self.interval = interval
        self.stopping = threading.Event()
        self.samples = 0
        self.seen: dict[str, int] = {}
        self.background: dict[str, int] = {}

    def run(self) -> None:
        import psycopg2

        from bench.system import pg_dsn

        conn = psycopg2.connect(pg_dsn(self.database))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.stopping.wait(self.interval):
                    cur.execute("SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60) "
                                "FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
                                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                                (self.database,))
                    self.samples += 1
                    for (query,) in cur.fetchall():
                        self.seen[query] = self.seen.get(query, 0) + 1
                    cur.execute("SELECT backend_type || ' ' || coalesce(datname, '-') || ': ' "
                                "|| left(regexp_replace(coalesce(query, ''), '\\s+', ' ', "
                                "'g'), 50) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                                " AND ((backend_type = 'client backend' AND state = 'active' "
                                "AND datname IS DISTINCT FROM %s) "
                                "OR backend_type = 'autovacuum worker')", (self.database,))
                    for (what,) in cur.fetchall():
                        self.background[what] = self.background.get(what, 0) + 1
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)

    @staticmethod
    def merged(samplers: list[Sampler]) -> dict:
        """Shares of the samples of several runs taken together."""
        samples = sum(s.samples for s in samplers)
        seen: dict[str, int] = {}
        for sampler in samplers:
            for query, count in sampler.seen.items():
                seen[query] = seen.get(query, 0) + count
        background: dict[str, int] = {}
        for sampler in samplers:
            for what, count in sampler.background.items():
                background[what] = background.get(what, 0) + count
        top = sorted(seen.items(), key=lambda item: -item[1])[:5]
        others = sorted(background.items(), key=lambda item: -item[1])[:5]
        return {"samples": samples, "busy_backends_avg": sum(seen.values()) / max(samples, 1),
                "top": {query: round(count / max(samples, 1), 3) for query, count in top},
                "background": {what: round(count / max(samples, 1), 3)
                               for what, count in others}}


# --------------------------------------------------------------------------- load


def _requests(port: int, tokens: list[str], count: int, offset: int) -> list[tuple[str, bytes]]:
    built = []
    for index in range(count):
        agent = (index + offset) % len(tokens)
        built.append((str(agent),
                      (f"POST /api/v1/queue/next HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       f"Authorization: Bearer {tokens[agent]}\r\nContent-Length: 0\r\n\r\n"
                       ).encode()))
    return built


def _child(spec: LoadSpec, tokens: list[str], offset: int, pipe) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        requests = _requests(spec.port, tokens, spec.count, offset)
        pipe.send(("ready", None))
        pipe.recv()
        pipe.send(("result", run_load(spec, requests)))
    except BaseException as exc:  # report, never hang the parent
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


def drive(ports: list[int], tokens: list[str], concurrency: int, duration: float,
          count: int) -> list[LoadResult]:
    """Closed-loop load on every port at once (connections and count split evenly)."""
    context = multiprocessing.get_context("spawn")
    children = []
    for i, port in enumerate(ports):
        spec = LoadSpec(port=port, path="/api/v1/queue/next", secret="", tag="queue",
                        count=max(count // len(ports), 1), duration=duration,
                        concurrency=max(concurrency // len(ports), 1), drain_timeout=10.0)
        parent, child = context.Pipe()
        process = context.Process(target=_child, args=(spec, tokens, i * 7, child),
                                  daemon=True)
        process.start()
        children.append((process, parent))
    try:
        for _, pipe in children:
            if not pipe.poll(60) or pipe.recv()[0] != "ready":
                raise RuntimeError("load generator failed to start")
        for _, pipe in children:
            pipe.send("go")
        results = []
        for process, pipe in children:
            if not pipe.poll(duration + 60):
                raise RuntimeError("load generator silent")
            kind, payload = pipe.recv()
            if kind != "result":
                raise RuntimeError(f"load generator failed: {payload}")
            results.append(payload)
            process.join(10)
        return results
    finally:
        for process, _ in children:
            if process.is_alive():
                process.kill()
                process.join(5)


def _cpu(system: System, groups: list[int]) -> dict:
    """CPU ticks: machine, our web process groups, PostgreSQL (ours) and Redis, per pid."""
    busy, total = machine_ticks()
    web: dict[int, int] = {}
    services: dict[int, int] = {}
    for pid, comm, pgid, ticks in process_ticks():
        if pgid in groups:
            web[pid] = ticks
        elif comm.startswith(SERVICES) and system._ours(str(pid)):
            services[pid] = ticks
    return {"at": time.perf_counter(), "busy": busy, "total": total, "web": web,
            "services": services}


def _usage(before: dict, after: dict, loadgen_cpu_s: float) -> dict:
    """Cores used between two snapshots (a process that exited in between is not counted;
    a backend that started in between counts from zero)."""
    tick = os.sysconf("SC_CLK_TCK")
    elapsed = max(after["at"] - before["at"], 1e-9)
    share = (after["busy"] - before["busy"]) / max(after["total"] - before["total"], 1)

    def cores(name: str) -> float:
        ticks = sum(t - before[name].get(pid, 0) for pid, t in after[name].items())
        return round(ticks / tick / elapsed, 2)

    return {"machine_busy_cores": round(share * (os.cpu_count() or 1), 2),
            "web_cores": cores("web"), "postgres_redis_cores": cores("services"),
            "loadgen_cores": round(loadgen_cpu_s / elapsed, 2)}


def measure(system: System, data: Data, webs: list[Process], ports: list[int], size: int,
            concurrency: int, args: argparse.Namespace, *, ceiling: bool = False) -> dict:
    """One configuration at one queue size; with `ceiling`, in slices alternating with the
    bare-Flask ceiling at the same width (bench.scenarios.alternate_with_ceiling)."""
    fill = data.top_up(size)
    queued = data.queued()
    solver = Solver(system)
    solver.start()
    load_before = os.getloadavg()[0]
    budget = size // 2  # the queue never drains below half its size
    samplers: list[Sampler] = []

    def claims(_index: int, seconds: float) -> tuple[list[LoadResult], dict] | None:
        nonlocal budget
        if budget <= 0:
            return None
        sampler = Sampler(system)
        sampler.start()
        before = _cpu(system, [w.pid for w in webs])
        try:
            results = drive(ports, data.tokens, concurrency, seconds, budget)
        finally:
            sampler.stop()
            samplers.append(sampler)
        usage = _usage(before, _cpu(system, [w.pid for w in webs]),
                       sum(r.cpu_s for r in results))
        budget -= sum(r.status.count(200) for r in results)
        return results, usage

    ceiling_figures = None
    try:
        if ceiling:
            cfg = scenarios.Config(duration=args.duration, rounds=args.rounds,
                                   concurrency=concurrency, warmup=2.0)
            ceiling_figures, slices = scenarios.alternate_with_ceiling(system, cfg, claims)
        else:
            slices = [claims(0, args.duration)]
    finally:
        solver.stop()
    latencies, statuses, ok, usages = [], {}, 0, []
    for results, usage in slices:
        for result in results:
            for sent, done, status in zip(result.sent, result.done, result.status, strict=True):
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if done and status == 200:
                    latencies.append(done - sent)
            ok += result.status.count(200)
        span = max(r.finished for r in results) - min(r.started for r in results)
        usages.append((span, usage))
    seconds = sum(span for span, _ in usages)
    usage = scenarios.merge_usage(usages)
    rate = ok / max(seconds, 1e-9)
    # CPU per claim is what a busy machine disturbs least: 2 idle cores / it = the rate
    # this system could reach with the whole machine to itself.
    per = {"web": usage["web_cores"] * 1000.0 / rate if rate else 0.0,
           "postgres_redis": usage["postgres_redis_cores"] * 1000.0 / rate if rate else 0.0}
    per["total"] = per["web"] + per["postgres_redis"]
    run = {"size": size, "queued_at_start": queued, "processes": len(ports),
           "concurrency": concurrency, "fill": fill, "statuses": statuses,
           "claims": ok, "seconds": round(seconds, 2), "slices": len(slices),
           "claims_per_s": rate, **summary_ms(latencies), "cpu_ms_per_claim": per,
           "solved_out_of_band": solver.solved, "postgres_active": Sampler.merged(samplers),
           "reconnects": sum(r.reconnects for results, _ in slices for r in results),
           "usage": usage, "load_average": [round(load_before, 2),
                                            round(os.getloadavg()[0], 2)]}
    if ceiling_figures is not None:
        ceiling_cpu = ceiling_figures["usage"].get("ceiling_cores", 0.0)
        run["ceiling"] = {
            "how": ceiling_figures["how"], "req_per_s": ceiling_figures["ok_per_s"],
            "errors": ceiling_figures["errors"], **ceiling_figures["ack"],
            "cpu_ms_per_request": (ceiling_cpu * 1000.0 / ceiling_figures["ok_per_s"]
                                   if ceiling_figures["ok_per_s"] else None)}
        run["ratio_to_ceiling"] = rate / ceiling_figures["ok_per_s"] \
            if ceiling_figures["ok_per_s"] else 0.0
        ceiling_p99 = ceiling_figures["ack"]["p99_ms"]
        run["p99_to_ceiling_p99"] = (run["p99_ms"] / ceiling_p99
                                     if ceiling_p99 and run["p99_ms"] is not None else None)
    return run


def _config(run: dict) -> str:
    return f"{run['processes']} proc x {run['concurrency']} conn"


def verify(system: System, answered: int) -> dict:
    assigned = int(system.scalar("SELECT count(*) FROM tickets WHERE assignee_id IS NOT NULL"))
    events = int(system.scalar("SELECT count(*) FROM ticket_events WHERE name = 'assigned'"))
    twice = int(system.scalar(
        "SELECT count(*) FROM (SELECT ticket_id FROM ticket_events WHERE name = 'assigned' "
        "GROUP BY ticket_id HAVING count(*) > 1) t"))
    return {"answers_200": answered, "tickets_assigned": assigned, "assigned_events": events,
            "tickets_assigned_twice": twice,
            "ok": assigned == answered == events and twice == 0}


# --------------------------------------------------------------------------- scoring


def _rate(action, seconds: float, items: list) -> dict:
    """Call action(item) over items (cycling) for about `seconds`; items per second."""
    action(items[0])  # warm (lexicons, caches, connections)
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        action(items[done % len(items)])
        done += 1
    elapsed = time.perf_counter() - began
    return {"scored": done, "seconds": round(elapsed, 2), "per_s": done / elapsed,
            "ms_each": elapsed * 1000.0 / done}


def scoring(system: System, seconds: float) -> dict:
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.models import Ticket
    from helpdesk.services.routing import scoring as routing
    from helpdesk.services.routing.urgency import UrgencyFacts, score_urgency

    rng = random.Random(7)
    facts = [UrgencyFacts(channel_kind=rng.choice([k for k, _ in CHANNELS]),
                          texts=[rng.choice(TEXTS).format(n=rng.randint(10_000, 99_999))
                                 for _ in range(rng.choice((1, 1, 2, 3)))],
                          tier=rng.choice(("standard",) * 9 + ("vip",)),
                          recent_contacts=rng.choice((1, 1, 1, 2, 3)),
                          seconds_to_deadline=rng.uniform(-3600, 86400),
                          sla_target_seconds=86400.0) for _ in range(500)]
    result = {"score_urgency": _rate(score_urgency, seconds, facts)}
    app = create_app({"SQLALCHEMY_DATABASE_URI": system.env["DATABASE_URL"],
                      "REDIS_URL": system.redis_url}, socket_server=False)
    with app.app_context():
        ids = [row[0] for row in db.session.execute(db.text(
            "SELECT DISTINCT ticket_id FROM messages ORDER BY ticket_id LIMIT 3000"))]
        db.session.rollback()

        def score(ticket_id: int) -> None:
            routing.score_ticket(db.session.get(Ticket, ticket_id))
            db.session.rollback()

        result["score_ticket"] = _rate(score, seconds, ids)
        result["route_ticket"] = _rate(routing.route_ticket, seconds, ids[::-1])
        db.session.remove()
    throttle = app.extensions.get("helpdesk.queue_throttle")  # the last queue.updated
    time.sleep((throttle.interval if throttle else 0) + 0.5)
    return result


# --------------------------------------------------------------------------- report


def rows(result: dict) -> list[dict]:
    table = []

    def row(name, shown, target="", ok=None):
        table.append({"figure": name, "shown": shown, "target": target,
                      "result": "" if ok is None else ("PASS" if ok else "MISS")})

    runs = result["runs"]
    for run in runs:
        where = f"{run['size'] // 1000}k, {_config(run)}"
        if "ceiling" in run:
            top = run["ceiling"]
            row(f"claims/s ({where})",
                f"{run['claims_per_s']:.0f}/s; same-run ceiling {top['req_per_s']:.0f} req/s "
                f"= {run['ratio_to_ceiling']:.0%}",
                f">= {TARGET_SHARE_OF_CEILING:.0%} of ceiling",
                run["ratio_to_ceiling"] >= TARGET_SHARE_OF_CEILING)
            ratio = run["p99_to_ceiling_p99"]
            row(f"claims p99 vs ceiling p99 ({where})",
                f"{run['p99_ms']:.1f} ms vs {top['p99_ms']:.1f} ms = {ratio:.2f}x",
                f"<= {TARGET_P99_TO_CEILING:.0f}x", ratio <= TARGET_P99_TO_CEILING)
            row(f"  ceiling p50 / p99, CPU per request ({where})",
                f"{top['p50_ms']:.1f} / {top['p99_ms']:.1f} ms, "
                f"{top['cpu_ms_per_request'] or 0:.2f} ms")
        else:
            row(f"claims/s ({where})", f"{run['claims_per_s']:.0f}/s")
        row(f"latency p50/p90/p99 ({where})",
            f"{run['p50_ms']:.1f} / {run['p90_ms']:.1f} / {run['p99_ms']:.1f} ms",
            f"p99 <= {TARGET_P99_MS:.0f} ms", run["p99_ms"] <= TARGET_P99_MS)
        usage = run["usage"]
        row(f"  cpu cores ({where})",
            f"web {usage['web_cores']:.2f}, pg+redis {usage['postgres_redis_cores']:.2f}, "
            f"loadgen {usage['loadgen_cores']:.2f}, machine {usage['machine_busy_cores']:.2f}"
            f"; load avg {run['load_average'][1]:.2f}")
        cost = run["cpu_ms_per_claim"]
        if cost["total"]:
            row(f"  cpu per claim ({where})",
                f"web {cost['web']:.2f} + pg/redis {cost['postgres_redis']:.2f} ms "
                f"= {2000.0 / cost['total']:.0f}/s on 2 idle cores")
        active = run["postgres_active"]
        top = "; ".join(f"{share:.2f} {query[:34]}" for query, share in
                        list(active["top"].items())[:2])
        row(f"  pg active backends ({where})", f"{active['busy_backends_avg']:.2f} avg: {top}")
        busy = "; ".join(f"{share:.2f} {what[:60]}" for what, share in
                         active.get("background", {}).items())
        row(f"  pg busy elsewhere ({where})", busy or "nothing (no autovacuum, no other "
                                                      "database's client active)")
    low, high = (f"{size // 1000}k" for size in (min(result["sizes"]), max(result["sizes"])))
    for config, ratio in result["ratios"].items():
        row(f"latency {high} / {low} ({config})",
            f"p50 {ratio['p50']:.2f}x, p99 {ratio['p99']:.2f}x",
            f"p50 <= {TARGET_RATIO:.0f}x", ratio["p50"] <= TARGET_RATIO)
    check = result["verify"]
    row("tickets claimed twice (whole run)",
        f"{check['answers_200']} answers 200, {check['tickets_assigned']} assigned, "
        f"{check['assigned_events']} events, {check['tickets_assigned_twice']} twice",
        "0, and answers = assigned = events", check["ok"])
    for name, figure in result["scoring"].items():
        row(f"scoring: {name}", f"{figure['per_s']:.0f} tickets/s "
            f"({figure['ms_each']:.2f} ms each)")
    return table


def _print(result: dict) -> None:
    print(f"\nqueue bench ({result['label'] or 'no label'}): {result['concurrency']} connections,"
          f" {result['agents']} agents, {result['duration']:.0f} s per run, "
          f"load average {result['load_average']}")
    width = max(len(r["figure"]) for r in result["table"])
    for r in result["table"]:
        print(f"{r['figure']:<{width}}  {r['shown']:<44} {r['target']:<16} {r['result']}")


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    process_counts = [int(p) for p in args.processes.split(",")]
    began = time.perf_counter()
    system = System(database=args.database, redis_db=args.redis_db, port=args.port,
                    ceiling_port=args.ceiling_port or args.port + 100)
    webs: list[Process] = []
    try:
        recreate_database(args.database)
        if args.ceiling:
            recreate_database(system.ceiling_database)
        system.redis.flushdb()
        system.cli("db", "upgrade")
        data = Data(system, args.agents)
        data.seed()
        ports = [args.port + i for i in range(max(process_counts))]
        for port in ports:  # never measure a stray server left on our ports
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"port {port} is in use")
        for i, port in enumerate(ports):
            webs.append(Process(f"queue-web{i + 1}", [
                sys.executable, "-m", "helpdesk.cli", "web", "--host", "127.0.0.1",
                "--port", str(port)], system.env, system.log_dir))
        for web, port in zip(webs, ports, strict=True):
            system._wait_http(web, f"http://127.0.0.1:{port}/healthz", method="GET")
        data.top_up(sizes[0])
        warm_200 = 0
        for port in ports:  # warm: imports, pools, caches
            warm_200 += sum(r.status.count(200) for r in
                            drive([port], data.tokens, args.concurrency, 2.0, 400))
        runs = []
        configs = [(count, args.concurrency) for count in process_counts]
        if args.single_client:
            configs.append((1, 1))
        for size in sizes:
            for count, width in configs:
                against = args.ceiling and (count, width) == (1, args.concurrency)
                print(f"[{time.strftime('%H:%M:%S')}] {size} tickets, {count} proc x {width} "
                      f"conn{', alternating with the ceiling' if against else ''}", flush=True)
                run = measure(system, data, webs[:count], ports[:count], size, width, args,
                              ceiling=against)
                runs.append(run)
                versus = (f"; ceiling {run['ceiling']['req_per_s']:.0f} req/s p99 "
                          f"{run['ceiling']['p99_ms']:.1f} ms: {run['ratio_to_ceiling']:.0%}, "
                          f"p99 {run['p99_to_ceiling_p99']:.2f}x" if against else "")
                print(f"  {size:>8} tickets, {_config(run)}: {run['claims_per_s']:.0f} claims/s,"
                      f" p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms{versus} "
                      f"({run['statuses']}, load {run['load_average'][1]})", flush=True)
        for web in webs:
            web.stop()
        check = verify(system, warm_200 + sum(r["claims"] for r in runs))
        check["answers_200_warm_up"] = warm_200
        ratios = {}
        for count, width in configs:
            by_size = {r["size"]: r for r in runs
                       if (r["processes"], r["concurrency"]) == (count, width)}
            low, high = by_size.get(min(sizes)), by_size.get(max(sizes))
            if low and high and low is not high:
                ratios[_config(low)] = {"p50": high["p50_ms"] / low["p50_ms"],
                                      "p99": high["p99_ms"] / low["p99_ms"]}
        result = {"label": args.label, "at": datetime.now(UTC).isoformat(),
                  "cores": os.cpu_count(), "sizes": sizes, "duration": args.duration,
                  "concurrency": args.concurrency, "agents": args.agents,
                  "load_average": [round(x, 2) for x in os.getloadavg()],
                  "runs": runs, "ratios": ratios, "verify": check,
                  "scoring": scoring(system, args.score_seconds)}
        result["table"] = rows(result)
        result["wall_seconds"] = round(time.perf_counter() - began, 1)
        _print(result)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.output} ({result['wall_seconds']:.0f} s)")
        return 0
    finally:
        for web in webs:
            if web.alive():
                web.stop()
        system.close()
        if not args.keep_database:
            from bench.system import drop_database

            try:
                drop_database(args.database)
            except Exception as exc:  # noqa: BLE001
                print(f"bench cleanup: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
