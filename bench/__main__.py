"""`python -m bench`: run every scenario, print the figures, write bench/results/latest.json.

Exits 0 when the run completes, PASS or MISS (the figures are for the record); non-zero only
when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import scenarios
from bench.stats import report
from bench.system import System

RESULTS = Path(__file__).resolve().parent / "results"


def _args(argv: list[str]) -> argparse.Namespace:
    cfg = scenarios.Config()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=cfg.duration,
                        help="seconds of the accept and ceiling runs")
    parser.add_argument("--rounds", type=int, default=cfg.rounds,
                        help="alternating ceiling/accept slices the duration is split into")
    parser.add_argument("--concurrency", type=int, default=cfg.concurrency,
                        help="closed-loop connections of the accept and ceiling runs")
    parser.add_argument("--backlog", type=int, default=cfg.backlog)
    parser.add_argument("--steady-duration", type=float, default=cfg.steady_duration)
    parser.add_argument("--socket-duration", type=float, default=cfg.socket_duration)
    parser.add_argument("--customers", type=int, default=cfg.customers)
    parser.add_argument("--database", default="helpdesk_bench")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--port", type=int, default=18431)
    parser.add_argument("--ceiling-port", type=int, default=18432)
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _cpu_ms(usage: dict, server: str, per_s: float) -> float | None:
    """CPU milliseconds the server process spent per request (less sensitive to a busy
    machine than rates and latencies)."""
    cores = usage.get(f"{server}_cores")
    return cores * 1000.0 / per_s if cores and per_s else None


def _cpu_shown(ms: float | None, usage: dict, server: str) -> str:
    if ms is None:
        return "-"
    return (f"{ms:.2f} ms ({server} {usage.get(f'{server}_cores', 0):.2f} cores, "
            f"pg+redis {usage['postgres_redis_cores']:.2f})")


def figures(results: dict) -> list[dict]:
    """The rows of the table: figure, value, target, PASS/MISS, ratio to a named baseline."""
    rows: list[dict] = []

    def row(name, value, shown, target=None, ok=None, ratio=None):
        rows.append({"figure": name, "value": value, "shown": shown, "target": target or "",
                     "result": "" if ok is None else ("PASS" if ok else "MISS"),
                     "ratio": ratio or ""})

    ceiling, accept = results.get("ceiling"), results.get("accept")
    drain, steady, sock = results.get("drain"), results.get("steady"), results.get("socket")
    if ceiling:
        row("ceiling: bare Flask INSERT+enqueue", ceiling["ok_per_s"],
            f"{ceiling['ok_per_s']:.0f} req/s", "baseline")
        row("ceiling: latency p50 / p99", ceiling["ack"]["p99_ms"],
            f"{_ms(ceiling['ack']['p50_ms'])} / {_ms(ceiling['ack']['p99_ms'])}")
        ceiling_cpu = _cpu_ms(ceiling["usage"], "ceiling", ceiling["ok_per_s"])
        row("ceiling: server CPU per request", ceiling_cpu,
            _cpu_shown(ceiling_cpu, ceiling["usage"], "ceiling"))
    if accept:
        share = accept["ok_per_s"] / ceiling["ok_per_s"] if ceiling else None
        row("accept rate (signed api webhooks)", accept["ok_per_s"],
            f"{accept['ok_per_s']:.0f} acks/s", ">= 70% of ceiling",
            None if share is None else share >= 0.70,
            None if share is None else f"{share:.0%} of ceiling")
        row("ack p50", accept["ack"]["p50_ms"], _ms(accept["ack"]["p50_ms"]))
        p99 = accept["ack"]["p99_ms"]
        row("ack p99", p99, _ms(p99), "<= 25 ms", p99 is not None and p99 <= 25,
            None if p99 is None else f"{p99 / 25:.2f}x target")
        web_cpu = _cpu_ms(accept["usage"], "web", accept["ok_per_s"])
        row("accept: web CPU per ack", web_cpu, _cpu_shown(web_cpu, accept["usage"], "web"),
            ratio=(f"{web_cpu / ceiling_cpu:.1f}x ceiling's" if ceiling and web_cpu
                   and ceiling_cpu else None))
        row("accept: new PostgreSQL connections", accept["usage"]["pg_sessions_opened"],
            f"{accept['usage']['pg_sessions_opened']} in {accept['elapsed_s']:.0f} s")
        if accept["errors"]:
            row("accept: failed requests", sum(accept["errors"].values()),
                json.dumps(accept["errors"]))
    if drain:
        rate = drain["messages_per_s"]
        row(f"backlog drain, 1 worker ({drain['backlog']} deliveries)", rate,
            f"{rate:.0f} msg/s", ">= 500 msg/s", drain["all_done"] and rate >= 500,
            f"{rate / 500:.2f}x target")
        row("drain incl. worker start-up", drain["wall_messages_per_s"],
            f"{drain['wall_messages_per_s']:.0f} msg/s ({drain['wall_s']:.1f} s)")
        routing = drain["routing"]
        row("routing jobs (200, after the drain)", routing["jobs_per_s"],
            "-" if routing["jobs_per_s"] is None else f"{routing['jobs_per_s']:.0f} jobs/s")
        if len(drain["per_10s"]) > 1:
            row("drain in its first 10 s (before any sweep)", drain["per_10s"][0],
                f"{drain['per_10s'][0]:.0f} msg/s")
        if drain["sweeper_reenqueued"]:
            row("sweeper re-enqueues during the drain", drain["sweeper_reenqueued"],
                f"{drain['sweeper_reenqueued']} jobs")
        worker_cpu = (drain["usage"].get("worker_cores", 0) * drain["wall_s"] * 1000
                      / drain["messages"]) if drain["messages"] else None
        row("drain: worker CPU per message", worker_cpu,
            _cpu_shown(worker_cpu, drain["usage"], "worker"))
        row("sustainable (ingest + routing)", drain["sustainable_messages_per_s"],
            f"{drain['sustainable_messages_per_s']:.0f} msg/s")
    if steady:
        c = steady["committed"]
        row(f"webhook->committed p50 / p99 @ {steady['rate']:.0f}/s", c["p99_ms"],
            f"{_ms(c['p50_ms'])} / {_ms(c['p99_ms'])}")
        a = steady["load"]["ack"]
        row(f"ack p50 / p99 @ {steady['rate']:.0f}/s (worker on)", a["p99_ms"],
            f"{_ms(a['p50_ms'])} / {_ms(a['p99_ms'])}")
        row("steady: most jobs waiting in the queues", steady["max_jobs_waiting"],
            str(steady["max_jobs_waiting"]))
        if steady["missing"]:
            row("steady: messages never seen", steady["missing"], str(steady["missing"]))
    if sock:
        s = sock["socket"]
        row(f"webhook->socket p50 @ {sock['rate']:.0f}/s", s["p50_ms"], _ms(s["p50_ms"]),
            "<= 25 ms", s["p50_ms"] is not None and s["p50_ms"] <= 25,
            None if s["p50_ms"] is None else f"{s['p50_ms'] / 25:.2f}x target")
        row(f"webhook->socket p99 @ {sock['rate']:.0f}/s", s["p99_ms"], _ms(s["p99_ms"]),
            "<= 100 ms", s["p99_ms"] is not None and s["p99_ms"] <= 100 and not sock["missing"],
            None if s["p99_ms"] is None else f"{s['p99_ms'] / 100:.2f}x target")
        row("socket: most jobs waiting in the queues", sock["max_jobs_waiting"],
            str(sock["max_jobs_waiting"]))
        if sock["missing"]:
            row("socket: events never received", sock["missing"], str(sock["missing"]))
    split = results.get("socket_split")
    if split:  # no target: what a deployment with an ingest-only worker gets
        s = split["socket"]
        row(f"webhook->socket p50 / p99 @ {split['rate']:.0f}/s, + ingest-only worker",
            s["p50_ms"], f"{_ms(s['p50_ms'])} / {_ms(s['p99_ms'])}"
            + (f" ({split['missing']} never received)" if split["missing"] else ""))
    others = {name: results[name]["usage"]["others_cores"]
              for name in ("ceiling", "accept", "drain", "steady", "socket", "socket_split")
              if results.get(name) and "usage" in results[name]}
    if others:
        worst = max(others.values())
        row("CPU taken by non-bench processes", worst,
            ", ".join(f"{name} {value:.2f}" for name, value in others.items()) + " cores",
            "~0 (quiet machine)", None, "figures disturbed" if worst > 0.25 else "")
    return rows


def _stage(name: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)


def _sigterm(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    cfg = scenarios.Config(duration=args.duration, rounds=args.rounds,
                           concurrency=args.concurrency,
                           backlog=args.backlog, steady_duration=args.steady_duration,
                           socket_duration=args.socket_duration, customers=args.customers)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / "logs"
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": asdict(cfg),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform(),
                                 "load_average_at_start": os.getloadavg()}}
    began = time.perf_counter()
    error = None
    with System(database=args.database, redis_db=args.redis_db, port=args.port,
                ceiling_port=args.ceiling_port, log_dir=log_dir) as system:
        try:
            for old in log_dir.glob("*.log"):
                old.unlink()
            _stage("preparing: fresh database, Redis db, admin, api channel")
            system.prepare()
            results["machine"]["postgres"] = system.scalar("SHOW server_version")
            idle = system.snapshot()
            time.sleep(1.0)
            busy = system.usage(idle, system.snapshot())["others_cores"]
            results["machine"]["busy_cores_before_start"] = busy
            if busy > 0.25:
                print(f"  warning: {busy:.2f} cores already busy before the bench (other "
                      "processes on this machine): figures will be lower and noisier",
                      flush=True)
            _stage(f"ceiling + accept: bare Flask endpoint and signed api webhooks, "
                   f"{cfg.concurrency} connections, worker stopped")
            ceiling, accept = scenarios.run_ceiling_and_accept(system, cfg)
            results["ceiling"], results["accept"] = ceiling, accept
            _stage(f"drain: {cfg.backlog} stored deliveries, one worker")
            results["drain"] = scenarios.run_drain(system, cfg)
            _stage("steady: webhook -> committed")
            results["steady"] = scenarios.run_steady(system, cfg, results["drain"])
            _stage("socket: webhook -> message.created")
            results["socket"] = scenarios.run_socket(system, cfg, results["accept"],
                                                     results["drain"])
            _stage("socket again, with a second worker on ingest only")
            system.start_ingest_worker()
            results["socket_split"] = scenarios.run_socket(system, cfg, results["accept"],
                                                           results["drain"], tag="split")
            system.stop_ingest_worker()
        except KeyboardInterrupt:
            error = "interrupted"
            print("\ninterrupted: stopping the system", file=sys.stderr)
        except Exception as exc:  # report what we have, then fail
            error = f"{type(exc).__name__}: {exc}"
            import traceback

            traceback.print_exc()
        finally:
            _stage("stopping processes")
    results["elapsed_s"] = time.perf_counter() - began
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["error"] = error
    rows = figures(results)
    results["figures"] = rows
    return report(results, args.output, rows,
                  f"{results['elapsed_s']:.0f} s; details in {args.output}; "
                  f"process logs in {log_dir}",
                  error, (("figure", "figure"), ("value", "shown"), ("target", "target"),
                          ("result", "result"), ("vs target/baseline", "ratio")))


if __name__ == "__main__":
    sys.exit(main())
