"""`python -m bench.burst`: burst import of raw emails, and SQLite under 8 senders (issue 17).

Two rows of issue 17, each against a baseline measured in the same run (this 2-core machine
is shared and its speed varies 2x between days):

1. Burst import. A deterministic corpus (bench/mail_corpus.py; 1,000 mails, 900 threads,
   replies of which some arrive before their parents, eight charsets, base64 and
   quoted-printable bodies, attachments) is posted, signed, to a `raw_mime` channel by 8
   keep-alive connections (bench/load.py), on PostgreSQL, with a real `helpdesk web` and a
   real `helpdesk worker` (with its scheduler) started as bench/system.py starts them.
   Baseline: the webhook accept rate of the same corpus, posted the same way to a second
   `raw_mime` channel with the worker stopped (the web tier alone; those deliveries are
   deleted before the worker starts). Figures: first POST -> last ack, -> last commit
   (the last delivery's `processed_at`), -> last ticket scored (the last `updated_at` of the
   channel's tickets once none waits for routing: the routing batch's commit); also seen
   by polling the database every 20 ms. Targets: end-to-end rate >= 70% of the baseline;
   last ticket scored <= 1 s after the last commit; exactly one ticket per thread. Also
   audited: every body and attachment (name, type, size, SHA-256, and the stored file), and a
   re-delivery of the whole corpus creates nothing.
2. SQLite, the embedded default: `helpdesk run` as `make run` starts it (SQLite, embedded
   Redis, one web process, one worker) in a fresh instance folder, taking signed `api`
   webhooks from 8 connections, closed loop; baseline: the same load on the PostgreSQL
   system of 1. (web + worker), in alternating slices. Target: >= 50% of the PostgreSQL
   accept rate and 0 errors (non-2xx answers or broken connections; and every acknowledged
   message stored).

The webhook rate limit is raised for both systems (HELPDESK_WEBHOOK_RATE), as in the other
benches: it is a policy, not a capacity. PostgreSQL at 127.0.0.1 (`--database`, dropped and
re-created), Redis db `--redis-db` (flushed). Prints a progress line per step and a table,
writes bench/results/burst.json (process logs in bench/results/logs-burst/). Exit status 0
when the run completes, PASS or MISS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests

from bench import mail_corpus
from bench.load import LoadProcess, LoadResult, LoadSpec, raw_request
from bench.scenarios import load_summary
from bench.stats import report, summary_ms
from bench.system import PROJECT, Process, System

RESULTS = Path(__file__).resolve().parent / "results"
POLL_SECONDS = 0.02
RATE_LIMIT = "10000000/minute"


def progress(message: str) -> None:
    print(f"[bench.burst {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=900)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--slice", type=float, default=5.0,
                        help="seconds of each SQLite / PostgreSQL slice of the api run")
    parser.add_argument("--rounds", type=int, default=2, help="slices per system")
    parser.add_argument("--database", default="helpdesk_bench_burst")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--port", type=int, default=18451)
    parser.add_argument("--sqlite-port", type=int, default=18452)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "burst.json")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- posting


def corpus_requests(mails: list[mail_corpus.Mail], port: int, path: str,
                    secret: str) -> list[tuple[str, bytes]]:
    """Each mail as a signed `raw_mime` POST (API.md: hex HMAC-SHA256 of the body)."""
    from helpdesk.connectors.base import hmac_hex

    return [(mail.message_id, raw_request(port, path, mail.raw, {
        "Content-Type": "message/rfc822",
        "X-Helpdesk-Signature": "sha256=" + hmac_hex(secret, mail.raw)})) for mail in mails]


def _corpus_load(system: System, prebuilt: list, concurrency: int, tag: str) -> LoadProcess:
    return LoadProcess(LoadSpec(port=system.port, path="-", secret="", tag=tag,
                                count=len(prebuilt), duration=180.0, mode="closed",
                                concurrency=concurrency, prebuilt=prebuilt)).prepare()


def _ok(result: LoadResult) -> int:
    return sum(1 for status in result.status if 200 <= status < 300)


def _errors(result: LoadResult) -> dict[str, int]:
    return dict(Counter(str(s) for s in result.status if not 200 <= s < 300))


def _span(result: LoadResult) -> tuple[float, float]:
    """(first POST sent, last response received), perf_counter seconds."""
    done = [d for d in result.done if d]
    return min(result.sent), max(done) if done else min(result.sent)


def raw_mime_channel(system: System, name: str, secret: str) -> tuple[int, str]:
    out = system.cli("channels", "create", "--name", name, "--kind", "email", "--provider",
                     "raw_mime", "--secret", f"signing_secret={secret}")
    found = re.search(r"created channel (\d+) \S+: \S*(/webhooks/raw_mime/\S+)", out)
    if not found:
        raise RuntimeError("no channel id and webhook path in the CLI's answer")
    return int(found.group(1)), found.group(2)


# --------------------------------------------------------------------------- 1. burst


def accept_baseline(system: System, mails, concurrency: int) -> dict:
    """The corpus posted to its own `raw_mime` channel with the worker stopped: the web
    tier's accept rate. Its deliveries are deleted afterwards (never processed)."""
    assert system.worker is None
    secret = secrets.token_hex(16)
    channel_id, path = raw_mime_channel(system, "burst baseline", secret)
    load = _corpus_load(system, corpus_requests(mails, system.port, path, secret),
                        concurrency, "baseline")
    try:
        before = system.snapshot()
        load.go()
        result = load.result()
        usage = system.usage(before, system.snapshot(), result.cpu_s)
    finally:
        load.stop()
    first, last = _span(result)
    stored = int(system.scalar("SELECT count(*) FROM deliveries WHERE channel_id = %s",
                               (channel_id,)))
    with system.db().cursor() as cur:
        cur.execute("DELETE FROM deliveries WHERE channel_id = %s", (channel_id,))
    ok = _ok(result)
    return {"how": f"the corpus posted by {concurrency} keep-alive connections to a second "
                   "raw_mime channel, worker stopped; rate = acks / (first POST -> last ack)",
            "sent": len(result.status), "ok": ok, "errors": _errors(result), "stored": stored,
            "seconds": last - first, "ok_per_s": ok / (last - first) if last > first else 0.0,
            "ack": summary_ms([result.done[i] - result.sent[i]
                               for i, s in enumerate(result.status) if 200 <= s < 300]),
            "usage": usage}


def wait_worker_ready(system: System, timeout: float = 60.0) -> float:
    """Until the worker has registered with RQ and nothing waits in its queues."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not system.worker.alive():
            raise RuntimeError(f"worker exited:\n{system.worker.tail()}")
        if system.redis.scard("rq:workers") and not any(system.queue_lengths().values()):
            break
        time.sleep(0.1)
    time.sleep(1.0)  # the worker is in its BLPOP
    return time.perf_counter() - started


STATE = ("SELECT (SELECT count(*) FROM deliveries WHERE channel_id = %(c)s), "
         "(SELECT count(*) FROM deliveries WHERE channel_id = %(c)s AND status = 'received'), "
         "(SELECT count(*) FROM tickets WHERE channel_id = %(c)s), "
         "(SELECT count(*) FROM tickets WHERE channel_id = %(c)s "
         "AND route_requested_at IS NOT NULL)")


def run_burst(system: System, channel_id: int, prebuilt: list, concurrency: int,
              timeout: float = 180.0) -> dict:
    """Post the corpus with web and worker running; poll until every delivery is committed
    and every ticket scored; read the commit and scoring stamps."""
    assert system.worker is not None
    load = _corpus_load(system, prebuilt, concurrency, "burst")
    log_start = system.worker.log_path.stat().st_size
    expected = len(prebuilt)
    result = None
    samples: list[tuple[float, int, int, int, int]] = []
    seen_committed = seen_scored = None
    cur = system.db().cursor()
    try:
        wall_offset = time.time() - time.perf_counter()
        before = system.snapshot()
        load.go()
        go = time.perf_counter()
        while True:
            tick = time.perf_counter()
            cur.execute(STATE, {"c": channel_id})
            stored, received, tickets, unscored = cur.fetchone()
            samples.append((tick - go, stored, received, tickets, unscored))
            if seen_committed is None and stored >= expected and received == 0:
                seen_committed = tick
            if seen_committed is not None and unscored == 0:
                seen_scored = tick
            if result is None and load.done():
                result = load.result()
                expected = min(expected, _ok(result))
            if seen_scored is not None and result is not None:
                break
            if tick - go > timeout:
                break
            time.sleep(max(POLL_SECONDS - (time.perf_counter() - tick), 0))
        after = system.snapshot()
        usage = system.usage(before, after, result.cpu_s if result else 0.0)
        time_window = after["at"] - before["at"]
    finally:
        cur.close()
        load.stop()
    if result is None:
        raise RuntimeError("the burst's load generator did not finish")
    first, last_ack = _span(result)
    row = _one(system, "SELECT extract(epoch FROM max(processed_at)), "
                       "extract(epoch FROM min(processed_at)) FROM deliveries "
                       "WHERE channel_id = %s", (channel_id,))
    last_commit = float(row[0]) - wall_offset if row[0] is not None else None
    first_commit = float(row[1]) - wall_offset if row[1] is not None else None
    row = _one(system, "SELECT extract(epoch FROM max(updated_at)) FROM tickets "
                       "WHERE channel_id = %s", (channel_id,))
    last_scored = float(row[0]) - wall_offset if row[0] is not None and seen_scored else None
    ok = _ok(result)

    def rate(end):
        return ok / (end - first) if end and end > first else None

    jobs = worker_jobs(system.worker.log_path, log_start)
    timeline = [samples[0]] + [s for i, s in enumerate(samples[1:], 1)
                               if int(s[0] / 0.5) != int(samples[i - 1][0] / 0.5)]
    return {
        "how": f"the corpus posted by {concurrency} keep-alive connections, web and worker "
               "running; last commit = the last delivery's processed_at, last scored = the "
               "last updated_at of the channel's tickets (their routing batch) once none "
               f"waits for routing; both also seen by polling every {POLL_SECONDS * 1000:.0f} ms",
        "channel_id": channel_id, "sent": len(result.status), "ok": ok,
        "errors": _errors(result), "complete": seen_scored is not None,
        "ack_s": last_ack - first, "ack_per_s": rate(last_ack),
        "first_commit_s": first_commit - first if first_commit else None,
        "commit_s": last_commit - first if last_commit else None,
        "commit_per_s": rate(last_commit),
        "scored_s": last_scored - first if last_scored else None,
        "end_to_end_per_s": rate(last_scored),
        "scored_after_commit_s": (last_scored - last_commit
                                  if last_scored and last_commit else None),
        "seen_commit_s": seen_committed - first if seen_committed else None,
        "seen_scored_s": seen_scored - first if seen_scored else None,
        "seen_scored_after_commit_s": (seen_scored - seen_committed
                                       if seen_scored and seen_committed else None),
        "ack": summary_ms([result.done[i] - result.sent[i]
                           for i, s in enumerate(result.status) if 200 <= s < 300]),
        "worker_jobs": jobs, "usage": usage, "window_s": time_window,
        # (seconds since go, deliveries stored, still received, tickets, waiting for routing)
        "timeline": timeline,
    }


JOB_LINE = re.compile(r"^(\S+ \S+) INFO helpdesk\.jobs: job (\S+) \S+ (\S+) ([\d.]+) ms")


def worker_jobs(log_path: Path, offset: int) -> dict:
    """The worker's jobs in its log since `offset`: count and ms per job name, and the order
    in which ingest and routing jobs ran (I = ingest batch, R = routing batch)."""
    counts: Counter = Counter()
    ms: Counter = Counter()
    order = []
    with open(log_path, "rb") as log:
        log.seek(offset)
        for line in log.read().decode(errors="replace").splitlines():
            found = JOB_LINE.match(line)
            if not found:
                continue
            name = found.group(2)
            counts[name] += 1
            ms[name] += float(found.group(4))
            order.append({"process_deliveries": "I", "route_tickets": "R"}.get(name, "."))
    return {"count": dict(counts), "ms": {k: round(v, 1) for k, v in ms.items()},
            "order": "".join(order)}


def _one(system: System, sql: str, params: tuple = ()) -> tuple:
    with system.db().cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def _normalize(text: str | None) -> str:
    text = (text or "").replace("\r\n", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def audit(system: System, mails, channel_id: int) -> dict:
    """One ticket per thread (and one thread per ticket), each mail stored once with its
    text, each attachment with its name, type, size, SHA-256 and the file holding it."""
    with system.db().cursor() as cur:
        cur.execute("SELECT id, message_id, ticket_id, full_text, text FROM messages "
                    "WHERE channel_id = %s AND direction = 'inbound'", (channel_id,))
        messages = cur.fetchall()
        cur.execute("SELECT a.message_id, a.filename, a.content_type, a.size, a.sha256, "
                    "a.storage_path FROM attachments a JOIN messages m ON m.id = a.message_id "
                    "WHERE m.channel_id = %s ORDER BY a.id", (channel_id,))
        attachments = cur.fetchall()
        tickets = int(system.scalar("SELECT count(*) FROM tickets WHERE channel_id = %s",
                                    (channel_id,)))
        unscored = int(system.scalar(
            "SELECT count(*) FROM tickets t WHERE channel_id = %s AND NOT EXISTS ("
            "SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id) AND urgency = 0 "
            "AND urgency_reasons::text = '[]'", (channel_id,)))
    by_message_id: dict[str, list] = defaultdict(list)
    for row in messages:
        by_message_id[row[1]].append(row)
    files_of: dict[int, list] = defaultdict(list)
    for row in attachments:
        files_of[row[0]].append(row)
    data_dir = system.instance_dir / "data"
    missing = duplicated = bodies_bad = attachments_bad = files_bad = 0
    tickets_of_thread: dict[int, set] = defaultdict(set)
    threads_of_ticket: dict[int, set] = defaultdict(set)
    for mail in mails:
        rows = by_message_id.get(mail.message_id, [])
        if not rows:
            missing += 1
            continue
        duplicated += len(rows) > 1
        message_pk, _, ticket_id, full_text, text = rows[0]
        tickets_of_thread[mail.thread].add(ticket_id)
        threads_of_ticket[ticket_id].add(mail.thread)
        if _normalize(full_text) != _normalize(mail.text) or not (text or "").strip():
            bodies_bad += 1
        stored = [(r[1], r[2].split(";")[0].strip().lower(), r[3], r[4])
                  for r in files_of.get(message_pk, [])]
        wanted = [(a.filename, a.content_type, a.size, a.sha256) for a in mail.attachments]
        if stored != wanted:
            attachments_bad += 1
        for r in files_of.get(message_pk, []):
            path = data_dir / (r[5] or "-")
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != r[4]:
                files_bad += 1
    threads = len({mail.thread for mail in mails})
    split = sum(1 for found in tickets_of_thread.values() if len(found) > 1)
    merged = sum(1 for found in threads_of_ticket.values() if len(found) > 1)
    return {"threads": threads, "tickets": tickets, "threads_split": split,
            "tickets_merging_threads": merged, "messages_missing": missing,
            "messages_duplicated": duplicated, "bodies_differing": bodies_bad,
            "attachments_expected": sum(len(m.attachments) for m in mails),
            "attachments_stored": len(attachments), "messages_with_attachments_differing":
            attachments_bad, "attachment_files_bad": files_bad,
            "early_replies": sum(m.early for m in mails),
            "tickets_never_scored": unscored,
            "one_ticket_per_thread": (tickets == threads and not split and not merged
                                      and not missing)}


COUNTS = ("SELECT (SELECT count(*) FROM deliveries WHERE channel_id = %(c)s), "
          "(SELECT count(*) FROM messages WHERE channel_id = %(c)s), "
          "(SELECT count(*) FROM tickets WHERE channel_id = %(c)s), "
          "(SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id "
          "WHERE m.channel_id = %(c)s), "
          "(SELECT count(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id "
          "WHERE t.channel_id = %(c)s)")


def run_redelivery(system: System, requests_again: list, channel_id: int,
                   concurrency: int) -> dict:
    """The whole corpus posted again to the same channel: 200s, and nothing new once the
    worker is idle again."""
    with system.db().cursor() as cur:
        cur.execute(COUNTS, {"c": channel_id})
        before = cur.fetchone()
    load = _corpus_load(system, requests_again, concurrency, "again")
    try:
        load.go()
        result = load.result()
    finally:
        load.stop()
    deadline = time.perf_counter() + 30
    time.sleep(1.0)
    while time.perf_counter() < deadline and (
            any(system.queue_lengths().values()) or int(system.scalar(
                "SELECT count(*) FROM deliveries WHERE status = 'received'"))):
        time.sleep(0.1)
    with system.db().cursor() as cur:
        cur.execute(COUNTS, {"c": channel_id})
        after = cur.fetchone()
    names = ("deliveries", "messages", "tickets", "attachments", "ticket_events")
    first, last = _span(result)
    return {"ok": _ok(result), "errors": _errors(result),
            "ok_per_s": _ok(result) / (last - first) if last > first else None,
            "before": dict(zip(names, before, strict=True)),
            "after": dict(zip(names, after, strict=True)),
            "created_nothing": before == after and _ok(result) == len(requests_again)}


# --------------------------------------------------------------------------- 2. SQLite


class DefaultRun:
    """`helpdesk run` in a fresh instance folder: SQLite and an embedded Redis, its default
    configuration (the webhook rate limit raised), as `make run` starts it."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.instance_dir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-sqlite-"))
        self.log_dir = log_dir
        self.signing_secret = secrets.token_hex(16)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "REDIS_URL", "HELPDESK_DATA_DIR")}
        self.env.update({"HELPDESK_INSTANCE_DIR": str(self.instance_dir),
                         # one key for the run and the CLI beside it (channel secrets)
                         "HELPDESK_SECRET_KEY": secrets.token_hex(32),
                         "HELPDESK_WEBHOOK_RATE": RATE_LIMIT, "PYTHONUNBUFFERED": "1"})
        self.process: Process | None = None
        self.webhook_path = ""

    @property
    def database(self) -> Path:
        return self.instance_dir / "helpdesk.db"

    def cli(self, *args: str) -> str:
        import subprocess

        done = subprocess.run([sys.executable, "-m", "helpdesk.cli", *args], env=self.env,
                              cwd=PROJECT, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"helpdesk {args[0]} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        # An agent first, so the first-run printout (a password, a token) is not logged.
        self.cli("db", "upgrade")
        self.cli("agents", "create", "--email", "bench@example.com", "--name", "Bench",
                 "--role", "admin", "--level", "3", "--password", secrets.token_urlsafe(12))
        self.process = Process("sqlite-run", [sys.executable, "-m", "helpdesk.cli", "run",
                                              "--host", "127.0.0.1", "--port", str(self.port)],
                               self.env, self.log_dir)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"helpdesk run exited:\n{self.process.tail()}")
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"helpdesk run not answering:\n{self.process.tail()}")
        out = self.cli("channels", "create", "--name", "bench", "--kind", "api", "--provider",
                       "api", "--secret", f"signing_secret={self.signing_secret}")
        found = re.search(r"(/webhooks/api/\S+)", out)
        if not found:
            raise RuntimeError("no webhook path in the CLI's answer")
        self.webhook_path = found.group(1)

    def stored(self, prefix: str) -> int:
        """Messages stored whose external id starts with `prefix` (read beside the run)."""
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM messages WHERE external_id LIKE ?",
                                (prefix + "%",)).fetchone()[0]
        finally:
            conn.close()

    def waiting(self) -> int:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM deliveries WHERE status = 'received'"
                                ).fetchone()[0]
        finally:
            conn.close()

    def log_errors(self) -> dict[str, int]:
        text = self.process.log_path.read_text(errors="replace") if self.process else ""
        return {"database is locked": text.count("database is locked"),
                "Traceback": text.count("Traceback"),
                "ERROR lines": len(re.findall(r" ERROR ", text))}

    def close(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)
            self.process = None
        import shutil

        shutil.rmtree(self.instance_dir, ignore_errors=True)


def _api_slice(port: int, path: str, secret: str, tag: str, duration: float,
               concurrency: int) -> LoadResult:
    load = LoadProcess(LoadSpec(port=port, path=path, secret=secret, tag=tag, count=100_000,
                                duration=duration, mode="closed",
                                concurrency=concurrency)).prepare()
    try:
        load.go()
        return load.result()
    finally:
        load.stop()


def run_sqlite_vs_pg(system: System, lite: DefaultRun, slice_s: float, rounds: int,
                     concurrency: int) -> dict:
    """Signed `api` webhooks, closed loop, alternating slices: PostgreSQL, SQLite, ..."""
    sides = {"postgresql": (system.port, system.webhook_path, system.signing_secret),
             "sqlite": (lite.port, lite.webhook_path, lite.signing_secret)}
    for name, (port, path, secret) in sides.items():  # warm-up (connections, caches)
        _api_slice(port, path, secret, f"{name}-warm", 1.5, concurrency)
    results: dict[str, list[LoadResult]] = {name: [] for name in sides}
    for index in range(max(rounds, 1)):
        for name, (port, path, secret) in sides.items():
            progress(f"  api slice {index + 1}/{rounds}: {name}, {slice_s:.0f} s")
            results[name].append(_api_slice(port, path, secret, f"{name}-{index}", slice_s,
                                            concurrency))
    summary = {name: load_summary(found) for name, found in results.items()}
    # Every acknowledged SQLite message must be stored once the worker is done.
    acked = sum(_ok(r) for r in results["sqlite"])
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and lite.waiting():
        time.sleep(0.5)
    stored = sum(lite.stored(f"m-sqlite-{index}-") for index in range(max(rounds, 1)))
    summary["sqlite"]["acked_in_slices"] = acked
    summary["sqlite"]["stored_in_slices"] = stored
    summary["sqlite"]["log_errors"] = lite.log_errors()
    return summary


# --------------------------------------------------------------------------- report


def figures(results: dict) -> list[dict]:
    rows: list[dict] = []

    def row(figure, shown, target="", ok=None, baseline="", ratio=""):
        rows.append({"figure": figure, "value": shown, "target": target,
                     "result": "" if ok is None else ("PASS" if ok else "MISS"),
                     "baseline": baseline, "ratio": ratio})

    base, burst, check = results.get("baseline"), results.get("burst"), results.get("audit")
    if burst and base:
        accept = base["ok_per_s"]
        e2e = burst["end_to_end_per_s"]
        ratio = e2e / accept if e2e and accept else None
        row("burst: first POST -> last ticket scored",
            f"{e2e:.0f} mails/s ({burst['scored_s']:.1f} s)" if e2e else "not finished",
            ">= 70% of accept rate", ratio is not None and ratio >= 0.70,
            f"accept {accept:.0f} mails/s (worker stopped)",
            f"{ratio:.0%}" if ratio else "")
        row("burst: first POST -> last commit",
            f"{burst['commit_per_s']:.0f} mails/s ({burst['commit_s']:.1f} s)"
            if burst["commit_per_s"] else "-", "", None, f"accept {accept:.0f} mails/s",
            f"{burst['commit_per_s'] / accept:.0%}" if burst["commit_per_s"] else "")
        row("burst: first POST -> last ack (worker running)",
            f"{burst['ack_per_s']:.0f} mails/s ({burst['ack_s']:.1f} s)", "", None,
            f"accept {accept:.0f} mails/s", f"{burst['ack_per_s'] / accept:.0%}")
        lag = burst["scored_after_commit_s"]
        row("burst: last ticket scored - last commit",
            f"{lag:.2f} s (polled: {burst['seen_scored_after_commit_s']:.2f} s)"
            if lag is not None else "-", "<= 1 s", lag is not None and lag <= 1.0)
        errors = burst["errors"]
        row("burst: webhook errors", json.dumps(errors) if errors else "0", "0", not errors)
        usage, window = burst["usage"], burst.get("window_s") or 0.0
        if window and burst["ok"]:  # CPU per mail: less sensitive to a busy machine
            per_mail = {name: usage.get(f"{name}_cores", 0.0) * window * 1000 / burst["ok"]
                        for name in ("worker", "web")}
            row("burst: CPU per mail, worker (ingest + routing) / web",
                f"{per_mail['worker']:.1f} / {per_mail['web']:.1f} ms", "", None,
                f"others on the machine: {usage['others_cores']:.2f} cores")
    if check:
        row("burst: tickets / threads",
            f"{check['tickets']} / {check['threads']} (split {check['threads_split']}, "
            f"merged {check['tickets_merging_threads']})", "one per thread",
            check["one_ticket_per_thread"])
        intact = not (check["messages_missing"] or check["messages_duplicated"]
                      or check["bodies_differing"] or check["messages_with_attachments_differing"]
                      or check["attachment_files_bad"])
        row("burst: bodies and attachments intact",
            f"{check['bodies_differing']} bodies differ, "
            f"{check['messages_with_attachments_differing']} attachment sets differ, "
            f"{check['attachments_stored']}/{check['attachments_expected']} stored",
            "all intact", intact)
    again = results.get("redelivery")
    if again:
        row("burst: re-delivery of the corpus",
            "nothing new" if again["created_nothing"] else
            f"before {again['before']} after {again['after']} errors {again['errors']}",
            "creates nothing", again["created_nothing"])
    lite = results.get("sqlite_vs_pg")
    if lite:
        pg, sq = lite["postgresql"], lite["sqlite"]
        ratio = sq["ok_per_s"] / pg["ok_per_s"] if pg["ok_per_s"] else None
        row("SQLite default, 8 senders: accept rate", f"{sq['ok_per_s']:.0f} acks/s",
            ">= 50% of PostgreSQL", ratio is not None and ratio >= 0.5,
            f"PostgreSQL {pg['ok_per_s']:.0f} acks/s", f"{ratio:.0%}" if ratio else "")
        errors = sum(sq["errors"].values())
        lost = sq["acked_in_slices"] - sq["stored_in_slices"]
        row("SQLite default: errors", f"{errors} failed requests, {lost} acked not stored, "
            f"{sq['log_errors']['database is locked']} 'database is locked' in logs",
            "0", errors == 0 and lost == 0 and not sq["log_errors"]["database is locked"],
            f"PostgreSQL: {sum(pg['errors'].values())} failed")
        row("SQLite default: ack p50 / p99",
            f"{sq['ack']['p50_ms']:.1f} / {sq['ack']['p99_ms']:.1f} ms", "", None,
            f"PostgreSQL {pg['ack']['p50_ms']:.1f} / {pg['ack']['p99_ms']:.1f} ms")
    load = results["machine"]
    row("load average at start / end",
        " / ".join(f"{a[0]:.2f}" for a in (load["load_average_at_start"],
                                            load.get("load_average_at_end") or (0, 0, 0))))
    return rows


def _sigterm(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    log_dir = RESULTS / "logs-burst"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": {
        k: str(v) for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}}
    began = time.perf_counter()
    error = None
    progress(f"corpus: {args.mails} mails, {args.threads} threads, seed {args.seed}")
    mails = mail_corpus.build(args.mails, args.threads, args.seed)
    results["corpus"] = {
        "mails": len(mails), "threads": len({m.thread for m in mails}),
        "bytes": sum(len(m.raw) for m in mails), "early_replies": sum(m.early for m in mails),
        "with_attachments": sum(bool(m.attachments) for m in mails),
        "charsets": dict(Counter(m.charset for m in mails)),
        "encodings": dict(Counter(m.encoding for m in mails)),
        "sha256": hashlib.sha256(b"".join(m.raw for m in mails)).hexdigest()}
    lite = None
    with System(database=args.database, redis_db=args.redis_db, port=args.port,
                log_dir=log_dir, with_ceiling=False) as system:
        system.env["HELPDESK_WEBHOOK_RATE"] = RATE_LIMIT
        try:
            progress("preparing: fresh PostgreSQL database, Redis db, web process")
            system.prepare()
            system.start_web()
            progress(f"burst baseline: the corpus to a raw_mime channel, {args.concurrency} "
                     "connections, worker stopped")
            results["baseline"] = accept_baseline(system, mails, args.concurrency)
            progress(f"  accept rate {results['baseline']['ok_per_s']:.0f} mails/s")
            progress("starting the worker (with its scheduler)")
            system.start_worker()
            results["worker_ready_s"] = wait_worker_ready(system)
            progress(f"burst: the corpus to a fresh raw_mime channel, {args.concurrency} "
                     "connections, web + worker")
            secret = secrets.token_hex(16)
            channel_id, path = raw_mime_channel(system, "burst", secret)
            prebuilt = corpus_requests(mails, system.port, path, secret)
            burst = run_burst(system, channel_id, prebuilt, args.concurrency)
            results["burst"] = burst
            progress(f"  last commit {burst['commit_s']:.2f} s, last scored "
                     f"{burst['scored_s'] or float('nan'):.2f} s after the first POST; "
                     f"jobs {burst['worker_jobs']['count']}")
            progress("audit: tickets per thread, bodies, attachments")
            results["audit"] = audit(system, mails, burst["channel_id"])
            progress("re-delivery: the whole corpus again")
            results["redelivery"] = run_redelivery(system, prebuilt, channel_id,
                                                   args.concurrency)
            if not args.skip_sqlite:
                progress("SQLite: helpdesk run (SQLite + embedded Redis) in a fresh folder")
                lite = DefaultRun(args.sqlite_port, log_dir)
                lite.start()
                results["sqlite_vs_pg"] = run_sqlite_vs_pg(system, lite, args.slice,
                                                           args.rounds, args.concurrency)
        except KeyboardInterrupt:
            error = "interrupted"
        except Exception as exc:
            import traceback

            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"
        finally:
            progress("stopping processes")
            if lite is not None:
                lite.close()
    results["elapsed_s"] = time.perf_counter() - began
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["error"] = error
    rows = figures(results)
    results["figures"] = rows
    return report(results, args.output, rows,
                  f"{results['elapsed_s']:.0f} s; details in {args.output}; logs in {log_dir}",
                  error)


if __name__ == "__main__":
    sys.exit(main())
