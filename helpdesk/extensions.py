"""Unbound extensions; `create_app` binds them."""

from __future__ import annotations

import sqlite3
import time

from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Objects stay readable after commit so events can be serialized without a reload.
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING),
                session_options={"expire_on_commit": False})
migrate = Migrate(render_as_batch=True, compare_type=True)
socketio = SocketIO()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_begin); pysqlite's own is deferred.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SHORT_BUSY_MS if _cooperative() else BUSY_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn) -> None:
    # SQLite has no row locks: every transaction takes the write lock up front, so a
    # read-then-write (claiming a ticket, processing a delivery) is never interleaved.
    if conn.dialect.name == "sqlite":
        if _cooperative():
            _begin_yielding(conn.connection.driver_connection)
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


BUSY_MS = 30000
SHORT_BUSY_MS = 20


def _cooperative() -> bool:
    """True in a gevent-patched process (the web server)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("time")


def _begin_yielding(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE that waits for the write lock without blocking the process.

    Under gevent, SQLite's own busy wait sleeps in C: every greenlet stops, including the one
    holding the lock (waiting on Redis before its commit), so both wait out the whole busy
    timeout (the web server froze for 30 s and gunicorn killed it). Here the wait is short
    and the retries sleep through gevent, letting the holder finish.
    """
    deadline = time.monotonic() + BUSY_MS / 1000
    pause = 0.002
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # gevent's sleep: other greenlets run
        pause = min(pause * 2, 0.05)


# A pooled connection idle for longer than this is pinged before it is handed out; one used
# moments ago is not (SQLAlchemy's pool_pre_ping would ping on every checkout: a round trip
# per request). A dead connection found by the ping is replaced transparently.
IDLE_PING_SECONDS = 5.0


@event.listens_for(Pool, "checkin")
def _checked_in(_dbapi_connection, record) -> None:
    record.info["helpdesk_idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    idle_since = record.info.get("helpdesk_idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.rollback()  # psycopg2 opened a transaction for the ping
    except Exception as exc:
        raise DisconnectionError("stale pooled connection") from exc
