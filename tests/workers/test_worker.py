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


def test_a_worker_keeps_its_heartbeat_fresh_while_idle_and_while_working(app):
    """Monitoring (`rq info`) and RQ's clean-up of dead workers read the worker's last
    heartbeat: it is at most about a second old while the worker waits and between jobs
    (sent at most once a second, not three times per job)."""
    from datetime import UTC, datetime

    from rq import Queue, Worker

    from helpdesk import queues

    worker = make_worker(app, ["default"])
    connection = queues.redis_connection(app)
    waiting = Queue(queues.DEFAULT, connection=connection)
    seen: list[float] = []

    def look_then_stop() -> None:
        deadline = time.monotonic() + 10
        while worker.pubsub_thread is None and time.monotonic() < deadline:
            time.sleep(0.05)
        for n in range(3):
            time.sleep(1.0)
            if n == 1:  # some work between looks
                for _ in range(20):
                    waiting.enqueue("os.getpid")
            found = Worker.find_by_key(worker.key, connection=connection)
            seen.append((datetime.now(UTC) - found.last_heartbeat).total_seconds())
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    threading.Thread(target=look_then_stop, daemon=True).start()
    try:
        worker.work(logging_level="WARNING")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert len(seen) == 3 and max(seen) < 2.5, seen
    assert waiting.count == 0 and waiting.finished_job_registry.count == 20


def test_a_suspended_worker_takes_no_job(app):
    """`rq suspend` (an operator pausing the workers) still holds them: the suspension is
    looked for at most once a second, and at once when a worker starts."""
    from rq import Queue
    from rq.suspension import resume, suspend

    from helpdesk import queues

    connection = queues.redis_connection(app)
    waiting = Queue(queues.DEFAULT, connection=connection)
    waiting.empty()
    waiting.enqueue("os.getpid")
    suspend(connection)
    try:
        make_worker(app, ["default"]).work(burst=True, logging_level="WARNING")
        assert waiting.count == 1
    finally:
        resume(connection)
    make_worker(app, ["default"]).work(burst=True, logging_level="WARNING")
    assert waiting.count == 0


def test_a_sigterm_just_after_the_pop_lets_the_job_it_took_run(app):
    """The signal lands after Redis handed the job over and before RQ registered it as
    started (the job is then in no queue and no registry): the worker runs it, then stops."""
    from rq import Queue

    from helpdesk import queues

    connection = queues.redis_connection(app)
    first, second = (Queue(name, connection=connection) for name in ("default", "outbound"))
    for queue in (first, second):
        queue.empty()
    first.enqueue("os.getpid")
    worker = make_worker(app, ["default", "outbound"])  # two queues: a plain BLPOP
    reorder = worker.reorder_queues
    signalled: list[bool] = []

    def signal_then_reorder(*args, **kwargs):  # RQ calls it right after the pop returned
        if not signalled:
            signalled.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return reorder(*args, **kwargs)

    worker.reorder_queues = signal_then_reorder
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.work(logging_level="WARNING")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert signalled
    assert first.finished_job_registry.count == 1 or first.count == 1
