"""The scenarios; each returns a JSON-able dict of figures and how they were obtained."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bench import ceiling
from bench.load import LoadProcess, LoadResult, LoadSpec, external_id
from bench.stats import summary_ms
from bench.system import System
from helpdesk.jobs import ROUTE_TICKET

POLL_INTERVAL = 0.005  # webhook -> committed: the messages table is polled every 5 ms


@dataclass
class Config:
    duration: float = 10.0          # accept and ceiling runs (each) ...
    rounds: int = 2                 # ... in this many alternating slices
    concurrency: int = 8            # closed-loop connections for accept and ceiling
    warmup: float = 2.0             # closed-loop warm-up of each web server
    backlog: int = 10_000           # deliveries drained by one worker
    customers: int = 8              # distinct customers of the bench messages
    steady_duration: float = 10.0
    steady_fraction: float = 0.5    # steady load: this fraction of the drain rate
    socket_duration: float = 10.0
    socket_fraction: float = 0.5    # socket run: this fraction of the accept rate ...
    sustain_headroom: float = 0.5   # ... capped at this fraction of what one worker sustains
    drain_timeout: float = 120.0    # bounds the drain run ...
    routing_timeout: float = 20.0   # ... and the run of the routing jobs it leaves


def load_summary(results: LoadResult | list[LoadResult]) -> dict:
    """Acks/s and ack latency (send -> complete response) of one load run or of several
    slices of one (their durations add up; their latencies are pooled)."""
    results = results if isinstance(results, list) else [results]
    acks, from_due, lag, errors = [], [], [], Counter()
    ok_count, sent, unsent, elapsed, cpu, wall, opened, reconnects = 0, 0, 0, 0.0, 0.0, 0.0, 0, 0
    slices = []
    for result in results:
        ok = [i for i, status in enumerate(result.status) if 200 <= status < 300]
        errors.update(str(status) for status in result.status if not 200 <= status < 300)
        last = max((result.done[i] for i in ok), default=result.started)
        span = max(last - result.started, 1e-9)
        slices.append(len(ok) / span)
        ok_count, sent = ok_count + len(ok), sent + len(result.status)
        unsent += result.unsent
        elapsed += span
        cpu += result.cpu_s
        wall += max(result.finished - result.started, 1e-9)
        opened, reconnects = opened + result.connections_opened, reconnects + result.reconnects
        acks += [result.done[i] - result.sent[i] for i in ok]
        from_due += [result.done[i] - result.sched[i] for i in ok]
        lag += [result.sent[i] - result.sched[i] for i in ok]
    summary = {
        "sent": sent, "ok": ok_count, "errors": dict(errors), "unsent": unsent,
        "elapsed_s": elapsed, "ok_per_s": ok_count / elapsed if elapsed else 0.0,
        "ok_per_s_by_slice": slices, "connections_opened": opened, "reconnects": reconnects,
        "loadgen_cores": cpu / wall if wall else 0.0, "ack": summary_ms(acks),
    }
    if any(x > 1e-6 for x in lag):  # open loop: also from the due time
        summary["ack_from_due_time"] = summary_ms(from_due)
        summary["send_lag"] = summary_ms(lag)
    return summary


def merge_usage(usages: list[tuple[float, dict]]) -> dict:
    """Usage of several slices: cores averaged by duration, connections added up."""
    total = sum(seconds for seconds, _ in usages) or 1e-9
    merged: dict = {}
    for seconds, usage in usages:
        for key, value in usage.items():
            share = value if key == "pg_sessions_opened" else value * seconds / total
            merged[key] = merged.get(key, 0) + share
    return merged


def _closed(system: System, tag: str, count: int, duration: float, concurrency: int,
            *, port: int | None = None, path: str | None = None, customers: int = 8,
            ports: tuple[int, ...] = ()) -> tuple[LoadResult, dict]:
    """A closed-loop run, and the CPU and PostgreSQL sessions it cost (system.usage);
    `ports`: more web processes the connections go to, round-robin (bench/load.py)."""
    load = LoadProcess(LoadSpec(
        port=port or system.port, path=path or system.webhook_path,
        secret=system.signing_secret, tag=tag, count=count, duration=duration,
        mode="closed", concurrency=concurrency, customers=customers, ports=ports)).prepare()
    try:
        before = system.snapshot()
        load.go()
        result = load.result()
        return result, system.usage(before, system.snapshot(), result.cpu_s)
    finally:
        load.stop()


# -- 1. + 2. the platform ceiling, and accept rate + ack latency (worker stopped) -------------

def stored_deliveries(system: System, status: str = "received") -> int:
    return int(system.scalar("SELECT count(*) FROM deliveries WHERE status = %s", (status,)))


Slice = tuple[LoadResult | list[LoadResult], dict]


def alternate_with_ceiling(system: System, cfg: Config,
                           measured: Callable[[int, float], Slice | None]
                           ) -> tuple[dict, list[Slice]]:
    """The bare ceiling endpoint and a measured load under the same closed-loop width, in
    alternating slices (ceiling, measured, ceiling, measured...) so that both see the same
    machine even when something else on it comes and goes.

    `measured(index, seconds)` runs one slice of the measured load (its server already
    started and warmed by the caller) and returns (result or results, usage), or None when
    it has nothing left to send. Returns the ceiling's figures (`load_summary` + usage) and
    the measured slices. The ceiling server is started, warmed and stopped here."""
    system.start_ceiling()
    try:
        _closed(system, "ceiling-warm", 100_000, cfg.warmup, cfg.concurrency,
                port=system.ceiling_port, path=ceiling.PATH, customers=cfg.customers)
        slice_s = cfg.duration / max(cfg.rounds, 1)
        ceilings, ceiling_usage, slices = [], [], []
        for index in range(max(cfg.rounds, 1)):
            result, usage = _closed(system, f"ceiling{index}", 100_000, slice_s,
                                    cfg.concurrency, port=system.ceiling_port,
                                    path=ceiling.PATH, customers=cfg.customers)
            ceilings.append(result)
            ceiling_usage.append((result.finished - result.started, usage))
            done = measured(index, slice_s)
            if done is not None:
                slices.append(done)
    finally:
        system.stop_ceiling()
        system.redis.delete(f"rq:queue:{ceiling.QUEUE}")
    how = (f"closed loop, {cfg.concurrency} keep-alive connections, {max(cfg.rounds, 1)} "
           f"slices of {slice_s:.0f} s alternating ceiling and the measured load")
    return {"how": how, **load_summary(ceilings), "usage": merge_usage(ceiling_usage)}, slices


def summarize_slices(slices: list[Slice]) -> dict:
    """`load_summary` and merged usage of the measured slices of `alternate_with_ceiling`."""
    results: list[LoadResult] = []
    usages = []
    for result, usage in slices:
        parts = result if isinstance(result, list) else [result]
        results += parts
        usages.append((max(r.finished for r in parts) - min(r.started for r in parts), usage))
    return {**load_summary(results), "usage": merge_usage(usages)}


def run_ceiling_and_accept(system: System, cfg: Config) -> tuple[dict, dict]:
    """The bare endpoint and our signed `api` webhook, alternating (`alternate_with_ceiling`).
    The worker is stopped: acks measure the web tier alone."""
    assert system.worker is None, "the accept run measures the web tier alone"
    system.start_web()
    _closed(system, "warm", cfg.backlog // 2, cfg.warmup, cfg.concurrency,
            customers=cfg.customers)
    already = stored_deliveries(system)
    budget = cfg.backlog - already  # what the accept run stores is the drain's backlog

    def accept_slice(index: int, seconds: float) -> Slice | None:
        nonlocal budget
        if budget <= 0:
            return None
        result, usage = _closed(system, f"acc{index}", budget, seconds, cfg.concurrency,
                                customers=cfg.customers)
        budget -= sum(1 for status in result.status if 200 <= status < 300)
        return result, usage

    ceiling_figures, slices = alternate_with_ceiling(system, cfg, accept_slice)
    stored = stored_deliveries(system) - already
    how = ceiling_figures["how"].replace("the measured load", "webhook")
    ceiling_figures["how"] = how
    return (ceiling_figures,
            {"how": how + f"; bounded by the {cfg.backlog}-delivery backlog of the drain "
                          "run (minus the warm-up's); worker stopped",
             "stored": stored, **summarize_slices(slices)})


# -- 3. backlog drain with one worker ---------------------------------------------------------

def fill_backlog(system: System, cfg: Config) -> dict:
    """Top the stored, unprocessed deliveries up to `backlog` through the real webhook."""
    received = stored_deliveries(system)
    missing = cfg.backlog - received
    result = None
    for attempt in range(3):
        if missing <= 0:
            break
        result, _ = _closed(system, f"fill{attempt}", missing, 120.0, cfg.concurrency,
                            customers=cfg.customers)
        received = stored_deliveries(system)
        missing = cfg.backlog - received
    return {"topped_up": result is not None, "received": received,
            "fill": load_summary(result) if result else None}


def _worker_jobs(system: System) -> int | None:
    """Jobs the (single) worker finished, from RQ's own worker statistics."""
    total = None
    for key in system.redis.smembers("rq:workers"):
        value = system.redis.hget(key, "successful_job_count")
        if value is not None:
            total = (total or 0) + int(value)
    return total


def run_drain(system: System, cfg: Config) -> dict:
    """Start ONE worker on a backlog of stored deliveries; time until all are processed.

    The rate is messages committed per second between the first and the last delivery
    processed (`processed_at`, set in the worker's transaction): it leaves out the worker's
    start-up (imports, connections), reported separately as `wall_s` from process start.
    """
    assert system.worker is None
    fill = fill_backlog(system, cfg)
    backlog = stored_deliveries(system)
    first_id = int(system.scalar("SELECT coalesce(min(id), 0) FROM deliveries "
                                 "WHERE status = 'received'"))
    messages_before = int(system.scalar("SELECT count(*) FROM messages"))
    queues_before = system.queue_lengths()
    started = time.perf_counter()
    system.start_worker()
    before = system.snapshot()
    deadline = started + cfg.drain_timeout
    done = 0
    progress = []
    while time.perf_counter() < deadline:
        done = backlog - stored_deliveries(system)
        progress.append((round(time.perf_counter() - started, 3), done))
        if done >= backlog:
            break
        if not system.worker.alive():
            raise RuntimeError(f"worker exited:\n{system.worker.tail()}")
        time.sleep(0.05)
    wall = time.perf_counter() - started
    usage = system.usage(before, system.snapshot())
    row = _one(system, "SELECT count(*), "
                       "extract(epoch FROM max(processed_at) - min(processed_at)), "
                       "count(*) FILTER (WHERE status = 'processed'), "
                       "count(*) FILTER (WHERE status = 'failed') "
                       "FROM deliveries WHERE id >= %s AND status <> 'received'", (first_id,))
    finished, window, processed, failed = int(row[0]), float(row[1] or 0), int(row[2]), int(row[3])
    with system.db().cursor() as cur:  # deliveries finished per 10 s since the first
        cur.execute("SELECT floor(extract(epoch FROM processed_at - first) / 10)::int, count(*) "
                    "FROM deliveries, (SELECT min(processed_at) AS first FROM deliveries "
                    "WHERE id >= %s AND status <> 'received') f "
                    "WHERE id >= %s AND status <> 'received' GROUP BY 1 ORDER BY 1",
                    (first_id, first_id))
        per_10s = [count / 10.0 for _, count in cur.fetchall()]
    messages = int(system.scalar("SELECT count(*) FROM messages")) - messages_before
    all_done = finished >= backlog
    sweeps = _sweeper_reenqueued(system)
    jobs = _worker_jobs(system)
    queues_after = system.queue_lengths()
    abandoned = None
    if not all_done or queues_after["ingest"]:
        abandoned = drop_ingest(system)
    routing = measure_routing(system, cfg.routing_timeout)
    rate = (messages - 1) / window if window > 0 and messages > 1 else 0.0
    per_message = (1.0 / rate if rate else 0.0) + (1.0 / routing["jobs_per_s"]
                                                   if routing["jobs_per_s"] else 0.0)
    return {
        "how": "deliveries stored through the signed webhook with the worker stopped (the "
               "accept run's plus a top-up); then one `helpdesk worker` process started; "
               "rate = (messages - 1) / (last - first delivery processed_at); bounded by "
               f"{cfg.drain_timeout:.0f} s",
        "backlog": backlog, "fill": fill, "finished": finished, "processed": processed,
        "failed": failed, "all_done": all_done, "messages": messages,
        "window_s": window, "messages_per_s": rate, "wall_s": wall,
        # The sweeper's first pass comes 10 s after the worker starts; before it, the drain
        # runs without the duplicate jobs the sweeper adds for a backlog older than 30 s.
        "per_10s": per_10s,
        "wall_messages_per_s": messages / wall if wall else 0.0,
        "queues_before": queues_before, "queues_after_drain": queues_after,
        "worker_jobs_done": jobs, "sweeper_reenqueued": sweeps, "abandoned": abandoned,
        "usage": usage,
        "routing": routing,
        # One message in steady state costs an ingest job and a routing job.
        "sustainable_messages_per_s": 1.0 / per_message if per_message else 0.0,
        "progress": progress[:: max(len(progress) // 40, 1)],
    }


def drop_ingest(system: System) -> dict:
    """The drain hit its time bound, or left (duplicate) ingest jobs: drop what is left of the
    ingest backlog (deliveries marked failed, the ingest queue emptied; the worker restarted)
    so that the routing measurement and the latency runs start from a known state."""
    system.stop_worker()
    left = system.queue_lengths()["ingest"]
    with system.db().cursor() as cur:
        cur.execute("UPDATE deliveries SET status = 'failed', error = 'bench: abandoned' "
                    "WHERE status = 'received'")
        abandoned = cur.rowcount
    system.redis.delete("rq:queue:ingest")
    system.start_worker()
    return {"ingest_jobs_dropped": left, "deliveries_abandoned": abandoned}


ROUTING_SAMPLE = 200  # routing jobs timed after the drain


def measure_routing(system: System, timeout: float) -> dict:
    """The worker's rate on routing jobs: in steady state every message costs one. The drain
    leaves only one per ticket it touched (they coalesce while waiting), too few to time, so
    once those are done, ROUTING_SAMPLE more (one per message, round the bench's tickets) are
    enqueued at once; the rate is taken from the first to the last observed change of the
    queue's length (no start-up)."""
    from rq import Queue

    left_by_drain = system.queue_lengths()["routing"]
    began = time.perf_counter()
    while system.queue_lengths()["routing"] and time.perf_counter() - began < timeout:
        time.sleep(0.05)
    with system.db().cursor() as cur:
        cur.execute("SELECT id FROM tickets ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
    backlog = ROUTING_SAMPLE if ids else 0
    if backlog:
        Queue(ROUTE_TICKET.queue, connection=system.redis).enqueue_many([
            Queue.prepare_data(ROUTE_TICKET.func, (ids[i % len(ids)],),
                               job_id=f"bench-route-{i}", result_ttl=0)
            for i in range(backlog)])
    started = time.perf_counter()
    samples = [(started, backlog)]
    while time.perf_counter() - started < timeout:
        length = system.queue_lengths()["routing"]
        if length != samples[-1][1]:
            samples.append((time.perf_counter(), length))
        if length == 0 and not any(system.queue_lengths().values()):
            break
        time.sleep(0.05)
    first = next((i for i, (_, n) in enumerate(samples) if n < backlog), None)
    rate = None
    if first is not None and len(samples) - 1 > first:
        (t0, n0), (t1, n1) = samples[first], samples[-1]
        rate = (n0 - n1) / (t1 - t0)
    left = system.queue_lengths()
    if any(left.values()):  # bounded: drop the rest so the latency runs start idle
        for name, length in left.items():
            if length:
                system.redis.delete(f"rq:queue:{name}")
    return {"left_by_drain": left_by_drain, "backlog": backlog, "tickets": len(ids),
            "jobs_per_s": rate, "elapsed_s": time.perf_counter() - started,
            "dropped": {name: n for name, n in left.items() if n}}


def _one(system: System, sql: str, params: tuple = ()) -> tuple:
    with system.db().cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def _sweeper_reenqueued(system: System) -> int:
    if system.worker is None:
        return 0
    found = re.findall(r"sweeper re-enqueued (\d+) jobs", system.worker.tail(100_000))
    return sum(int(n) for n in found)


def wait_idle(system: System, timeout: float = 120.0) -> float:
    """Wait until no job is waiting (or the timeout); seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout and any(system.queue_lengths().values()):
        time.sleep(0.05)
    return time.perf_counter() - started


# -- 4. steady load: webhook -> message committed --------------------------------------------

def _open_load(system: System, tag: str, rate: float, duration: float, customers: int,
               ports: tuple[int, ...] = ()) -> LoadProcess:
    count = max(int(rate * duration), 1)
    return LoadProcess(LoadSpec(port=system.port, path=system.webhook_path,
                                secret=system.signing_secret, tag=tag, count=count,
                                duration=duration + 1.0, mode="open", rate=rate,
                                max_connections=64, customers=customers,
                                ports=ports)).prepare()


def watch_open_load(system: System, load: LoadProcess,
                    duration: float) -> tuple[LoadResult, dict, int]:
    """Run a prepared open-loop load to its end (at most `duration` + 60 s), noting the most
    jobs waiting meanwhile: its result, the CPU used, that peak."""
    queued = 0
    try:
        before = system.snapshot()
        load.go()
        deadline = time.perf_counter() + duration + 60
        while not load.done() and time.perf_counter() < deadline:
            queued = max(queued, sum(system.queue_lengths().values()))
            time.sleep(0.05)
        result = load.result()
        usage = system.usage(before, system.snapshot(), result.cpu_s)
    finally:
        load.stop()
    return result, usage, queued


def run_steady(system: System, cfg: Config, drain: dict) -> dict:
    """Open-loop webhooks below the drain rate; poll `messages` every 5 ms for their rows."""
    assert system.worker is not None and system.worker.alive()
    wait_idle(system, 30.0)
    rate = cfg.steady_fraction * drain["messages_per_s"]
    rate = max(min(rate, cfg.sustain_headroom * drain["sustainable_messages_per_s"]), 1.0)
    tag = "steady"
    load = _open_load(system, tag, rate, cfg.steady_duration, cfg.customers)
    watermark = int(system.scalar("SELECT coalesce(max(id), 0) FROM messages"))
    seen: dict[str, float] = {}
    prefix = f"m-{tag}-"
    cur = system.db().cursor()
    polls = queued = 0
    before = system.snapshot()
    load.go()
    result = None
    hard_stop = time.perf_counter() + cfg.steady_duration + 60
    while time.perf_counter() < hard_stop:
        tick = time.perf_counter()
        # Rows are visible from the query's snapshot, taken at its start: the commit happened
        # before `tick` (and after the previous tick).
        cur.execute("SELECT id, external_id FROM messages WHERE id > %s ORDER BY id",
                    (max(watermark - 200, 0),))
        polls += 1
        if polls % 10 == 0:
            queued = max(queued, sum(system.queue_lengths().values()))
        for row_id, ext in cur.fetchall():
            if ext and ext.startswith(prefix) and ext not in seen:
                seen[ext] = tick
            watermark = max(watermark, row_id)
        if result is None and load.done():
            result = load.result()
            usage = system.usage(before, system.snapshot(), result.cpu_s)
            ok_count = sum(1 for s in result.status if 200 <= s < 300)
            hard_stop = min(hard_stop, time.perf_counter() + 15)
        if result is not None and len(seen) >= ok_count:
            break
        time.sleep(max(POLL_INTERVAL - (time.perf_counter() - tick), 0))
    cur.close()
    if result is None:
        load.stop()
        raise RuntimeError("steady load generator did not finish")
    load.stop()
    latencies, missing = [], 0
    for i, key in enumerate(result.keys):
        if not 200 <= result.status[i] < 300:
            continue
        index = int(key.rsplit(" ", 1)[1])
        at = seen.get(external_id(tag, index))
        if at is None:
            missing += 1
        else:
            latencies.append(at - result.sent[i])
    return {"how": f"open loop at {rate:.0f}/s for {cfg.steady_duration:.0f} s "
                   f"({cfg.steady_fraction:.0%} of the drain rate); message rows polled every "
                   f"{POLL_INTERVAL * 1000:.0f} ms (latency resolution ~{POLL_INTERVAL * 1000:.0f}"
                   " ms, biased up by half of it)",
            "rate": rate, "load": load_summary(result), "committed": summary_ms(latencies),
            "missing": missing, "polls": polls, "max_jobs_waiting": queued, "usage": usage}


# -- 5. webhook -> message.created on a Socket.IO client ---------------------------------------

class SocketListener:
    """A real python-socketio client on /agents; records when each message.created arrives,
    and how many times each message's arrived (`created`: delivered exactly once?)."""

    def __init__(self, base_url: str, token: str):
        import socketio

        self.client = socketio.Client(reconnection=False)
        self.received: dict[str, float] = {}
        self.counts: Counter = Counter()
        self.created: Counter = Counter()
        self._lock = threading.Lock()
        self.client.on("*", self._any, namespace="/agents")
        self.client.connect(base_url, namespaces=["/agents"], auth={"token": token},
                            transports=["websocket"], wait_timeout=10)

    def _any(self, event: str, data=None) -> None:
        now = time.perf_counter()
        with self._lock:
            self.counts[event] += 1
            if event == "message.created" and isinstance(data, dict):
                text = (data.get("data") or {}).get("text")
                if text:
                    self.created[text] += 1
                if text and text not in self.received:
                    self.received[text] = now

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


def run_socket(system: System, cfg: Config, accept: dict, drain: dict,
               tag: str = "sock") -> dict:
    """Open-loop webhooks at half the accept rate (capped by what one worker sustains);
    `tag` makes the messages' ids (a run with another tag sends new messages)."""
    assert system.worker is not None and system.worker.alive()
    wait_idle(system, 30.0)
    half = cfg.socket_fraction * accept["ok_per_s"]
    cap = cfg.sustain_headroom * drain["sustainable_messages_per_s"]
    rate = max(min(half, cap), 1.0)
    listener = SocketListener(system.base_url, system.token)
    try:
        load = _open_load(system, tag, rate, cfg.socket_duration, cfg.customers)
        result, usage, queued = watch_open_load(system, load, cfg.socket_duration)
        wanted = {result.keys[i] for i, s in enumerate(result.status) if 200 <= s < 300}
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline and not wanted <= set(listener.received):
            time.sleep(0.05)
        counts = dict(listener.counts)
        received = dict(listener.received)
    finally:
        listener.close()
    latencies = [received[key] - result.sent[i] for i, key in enumerate(result.keys)
                 if key in wanted and key in received]
    return {"how": f"open loop at {rate:.0f}/s for {cfg.socket_duration:.0f} s: "
                   f"min({cfg.socket_fraction:.0%} of the accept rate = {half:.0f}/s, "
                   f"{cfg.sustain_headroom:.0%} of the rate one worker sustains with routing "
                   f"= {cap:.0f}/s); one python-socketio client on /agents as an admin "
                   "(queue room), events matched by message text",
            "rate": rate, "capped": cap < half, "load": load_summary(result),
            "socket": summary_ms(latencies), "missing": len(wanted - set(received)),
            "events": counts, "max_jobs_waiting": queued, "usage": usage}
