"""`helpdesk worker` stops within a few seconds of SIGTERM, mid-backlog, and hands back what
it had not started: nothing is lost, nothing is processed twice. And it does not stop on its
own when a Redis error ends RQ's loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, insert, select

from helpdesk.extensions import db
from helpdesk.models import Delivery, Message
from helpdesk.services.ingest import deliveries
from tests.support import factories

BACKLOG = 1500


def _statuses(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(Delivery.status, func.count())
                                  .group_by(Delivery.status)).all()
        db.session.rollback()
        return dict(rows)


def _store(app, channel, keys: list[str]) -> None:
    """One stored `api` delivery per key, waiting for the worker (none enqueued)."""
    with app.app_context():
        db.session.execute(insert(Delivery), [{
            "channel_id": channel.id, "provider": "api", "dedupe_key": key,
            "url": "http://localhost/", "content_type": "application/json", "headers": {},
            "body": json.dumps({"event_id": key, "type": "message",
                                "customer": {"email": f"c{n % 300}@example.com"},
                                "message": {"id": f"m-{key}", "text": "hello"}}).encode()}
            for n, key in enumerate(keys)])
        db.session.commit()


@contextmanager
def _worker_process(app, database_url: str, redis_url: str) -> Iterator[subprocess.Popen]:
    """`helpdesk worker ingest` in a process of its own (killed if still running after)."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "HELPDESK_DATA_DIR": app.config["DATA_DIR"]}
    worker = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "worker", "ingest",
                               "--no-scheduler"], env=env, start_new_session=True)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _terminate(worker: subprocess.Popen) -> float:
    """SIGTERM, as a supervisor sends it; seconds until the process ended."""
    worker.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    worker.wait(30)
    return time.monotonic() - asked


def test_sigterm_mid_backlog_exits_quickly_and_loses_nothing(app, drain, redis_url,
                                                             database_url):
    _store(app, factories.channel(app, "api"), [f"e{n}" for n in range(BACKLOG)])
    with app.app_context():
        deliveries.signal_batch()
    with _worker_process(app, database_url, redis_url) as worker:
        deadline = time.monotonic() + 60
        while _statuses(app).get("processed", 0) == 0:
            assert time.monotonic() < deadline, "the worker processed nothing"
            time.sleep(0.05)
        took = _terminate(worker)
    assert took < 3, f"the worker took {took:.1f} s to stop"
    assert worker.returncode == 0
    left = _statuses(app)
    assert set(left) <= {"processed", "received"} and sum(left.values()) == BACKLOG
    drain("ingest")
    assert _statuses(app) == {"processed": BACKLOG}
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == \
            BACKLOG


def _wait_listening(connection) -> None:
    """Until a worker registered on this Redis waits for jobs."""
    from rq import Worker

    deadline = time.monotonic() + 30
    while not any(worker.get_state() == "idle"
                  for worker in Worker.all(connection=connection)):
        assert time.monotonic() < deadline, "the worker never started listening"
        time.sleep(0.05)


def test_sigterm_while_a_job_is_being_dequeued_runs_it_or_leaves_it_queued(app, redis_url,
                                                                           database_url):
    """SIGTERM lands while the reply to the worker's blocking pop, which has taken the next
    job off the queue, is still on its way: the job must not vanish with the worker (RQ's
    own idle stop raised out of the pop and lost it)."""
    from rq import Queue

    from helpdesk import queues
    from tests.support.slow_redis import SlowRedisProxy

    _store(app, factories.channel(app, "api"), ["held-reply"])
    with app.app_context():
        connection = queues.redis_connection(app)
        connection.delete(queues.pending_key("ingest-batch"))
    proxy = SlowRedisProxy(redis_url)
    try:
        with _worker_process(app, database_url, proxy.url) as worker:
            _wait_listening(connection)
            time.sleep(0.5)  # in its blocking pop
            proxy.reply_delay = 0.6
            with app.app_context():
                deliveries.signal_batch()
            time.sleep(0.2)  # Redis has handed the job over; its reply is on the way
            worker.send_signal(signal.SIGTERM)
            proxy.reply_delay = 0
            worker.wait(30)
    finally:
        proxy.close()
    assert worker.returncode == 0
    still_queued = Queue(queues.INGEST, connection=connection).count
    assert _statuses(app) == {"processed": 1} or still_queued == 1


def test_sigterm_during_a_redis_outage_stops_the_worker_within_seconds(app, database_url):
    """Redis went away under an idle worker, which waits to reconnect: a supervisor's
    SIGTERM (`docker stop` during the outage) still ends it within seconds."""
    import redis

    from tests.support.redis_server import OwnRedis

    redis_server = OwnRedis()
    redis_server.start()
    try:
        with _worker_process(app, database_url, redis_server.url) as worker:
            _wait_listening(redis.Redis.from_url(redis_server.url))
            redis_server.stop()
            time.sleep(2.5)  # its pop failed; it is waiting to reconnect
            assert worker.poll() is None
            took = _terminate(worker)
    finally:
        redis_server.stop()
    assert took < 5, f"the worker took {took:.1f} s to stop"
    assert worker.returncode == 0


def test_redis_errors_outside_the_pop_do_not_end_the_worker(app, database_url):
    """Redis refusing a command that RQ sends between jobs (here: EXISTS, by ACL) ends RQ's
    loop ("found an unhandled exception, quitting"): `work()` returns as after a stop, and
    each new start raises (registering the worker asks EXISTS too). The worker process
    stays up, starts RQ's loop again once Redis answers, and works the backlog. Seen in the
    chaos round: a Redis error after a job ended both workers, and the queues stayed
    unworked."""
    import redis

    from tests.support.redis_server import OwnRedis, app_on

    redis_server = OwnRedis()
    redis_server.start()
    connection = redis.Redis.from_url(redis_server.url)
    connection.execute_command("ACL", "SETUSER", "worker", "on", ">secret", "~*", "&*", "+@all")
    as_worker = redis_server.url.replace("unix://", "unix://worker:secret@")
    _store(app, factories.channel(app, "api"), [f"refused{n}" for n in range(20)])
    try:
        with _worker_process(app, database_url, as_worker) as worker:
            _wait_listening(connection)
            time.sleep(1.5)  # RQ's suspension check is due again (at most one a second)
            connection.execute_command("ACL", "SETUSER", "worker", "-exists")
            with app.app_context(), app_on(app, redis_server.url):
                deliveries.signal_batch()  # after the job, RQ's suspension check is refused
            time.sleep(3)  # its loop ended, and each new start is refused too
            assert worker.poll() is None, "the worker process exited"
            connection.execute_command("ACL", "SETUSER", "worker", "+exists")
            deadline = time.monotonic() + 30
            while _statuses(app) != {"processed": 20}:
                assert time.monotonic() < deadline, f"backlog not worked: {_statuses(app)}"
                time.sleep(0.1)
            assert worker.poll() is None
    finally:
        redis_server.stop()


def test_a_worker_started_before_redis_waits_for_it_then_works(app, database_url):
    """`helpdesk worker` started while Redis is not up yet (a host booting, compose starting
    both at once) keeps trying instead of exiting, and works the backlog once Redis is up."""
    from tests.support.redis_server import OwnRedis, app_on

    redis_server = OwnRedis()  # not started yet: nothing listens on its socket
    _store(app, factories.channel(app, "api"), [f"early{n}" for n in range(5)])
    try:
        with _worker_process(app, database_url, redis_server.url) as worker:
            time.sleep(3)
            assert worker.poll() is None, "the worker process exited"
            redis_server.start()
            with app.app_context(), app_on(app, redis_server.url):
                deliveries.signal_batch()
            deadline = time.monotonic() + 30
            while _statuses(app) != {"processed": 5}:
                assert time.monotonic() < deadline, f"backlog not worked: {_statuses(app)}"
                time.sleep(0.1)
    finally:
        redis_server.stop()
