"""The platform ceiling: a bare Flask endpoint doing one INSERT and one RQ enqueue.

Served exactly like `helpdesk web` (helpdesk/server.py): a freshly gevent-patched interpreter,
gunicorn with one gevent worker (2000 connections), the same PostgreSQL driver as the app
(psycopg 3, cooperative under gevent by itself; `System.start_ceiling` gives it the URL the
app's config maps `postgresql://` to). The database layer is a SQLAlchemy Core engine (what
Flask-SQLAlchemy builds on) without the ORM, with a pool as large as the offered load, and
RQ's plain `Queue.enqueue`. It answers the same signed requests as the real webhook without
verifying or parsing them: what our web tier costs over this endpoint is the price of
everything the webhook does beyond "store, enqueue".

Start it with `python -c "from gevent import monkey; monkey.patch_all(); ..."`, see COMMAND.
"""

from __future__ import annotations

import os
import sys

SCHEMA = ("CREATE TABLE IF NOT EXISTS ceiling_events ("
          "id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL, "
          "received_at TIMESTAMPTZ NOT NULL DEFAULT now())")
QUEUE = "bench-ceiling"
PATH = "/ingest"

# Like helpdesk.server._BOOT: patch first, then import anything that uses sockets.
COMMAND = ("from gevent import monkey; monkey.patch_all(); import sys; "
           "from bench.ceiling import serve; serve(sys.argv[1], int(sys.argv[2]))")


def noop(event_id: int) -> int:
    """The enqueued job (never run by the bench: the ceiling measures the web tier)."""
    return event_id


def create_app():
    from flask import Flask, jsonify, request
    from redis import Redis
    from rq import Queue
    from sqlalchemy import create_engine, text

    url = os.environ["BENCH_CEILING_DATABASE_URL"]
    # A pool as large as the offered concurrency: with SQLAlchemy's default (5 + 10 overflow)
    # every request past the 5th concurrent one opens and closes a PostgreSQL connection,
    # which roughly halves this endpoint's rate at 8-16 connections. The ceiling is the best
    # this stack does, so it does not pay for that.
    pool = int(os.environ.get("BENCH_CEILING_POOL", "32"))
    engine = create_engine(url, pool_size=pool, max_overflow=10)
    with engine.begin() as conn:
        conn.execute(text(SCHEMA))
    queue = Queue(QUEUE, connection=Redis.from_url(os.environ["REDIS_URL"]))
    insert = text("INSERT INTO ceiling_events (body) VALUES (:body) RETURNING id")
    app = Flask("ceiling")

    @app.post(PATH)
    def ingest():
        body = request.get_data()
        with engine.begin() as conn:
            event_id = conn.execute(insert, {"body": body}).scalar_one()
        queue.enqueue("bench.ceiling.noop", event_id, result_ttl=60)
        return jsonify(ok=True)

    return app


def serve(host: str, port: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Ceiling(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gevent",
                               "worker_connections": 2000, "timeout": 60,
                               "graceful_timeout": 5, "accesslog": None,
                               "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):
            from helpdesk.server import check_cooperative_database_driver

            check_cooperative_database_driver()
            return create_app()

    Ceiling().run()


def command(host: str, port: int) -> list[str]:
    return [sys.executable, "-c", COMMAND, host, str(port)]
