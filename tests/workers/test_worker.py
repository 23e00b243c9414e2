"""The worker process: it starts, drains and stops promptly (redis-py 8.2's pubsub thread
made every stop wait for RQ's 60 s command poll)."""

from __future__ import annotations

import os
import signal
import threading
import time

from workers.worker import make_worker


def test_a_burst_worker_on_empty_queues_returns_at_once(app):
    for _ in range(5):
        began = time.monotonic()
        make_worker(app).work(burst=True, logging_level="WARNING")
        assert time.monotonic() - began < 2


def test_a_worker_stops_within_seconds_of_sigterm(app):
    """SIGTERM as a supervisor sends it, to a worker idle on its queues."""
    worker = make_worker(app)
    sent: list[float] = []

    def terminate_once_listening() -> None:
        deadline = time.monotonic() + 10
        while worker.pubsub_thread is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # subscribed, and waiting for a job
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    threading.Thread(target=terminate_once_listening, daemon=True).start()
    try:
        worker.work(logging_level="WARNING")  # RQ's signal handlers need the main thread
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert sent, "the worker never listened for commands"
    assert time.monotonic() - sent[0] < 3
