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
    # Under gevent SQLite's busy wait would stop every greenlet of the process: BEGIN is
    # retried cooperatively instead (_begin_cooperatively), the driver waits only briefly.
    cursor.execute(f"PRAGMA busy_timeout={10 if _cooperative() else BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # SQLite's lower() folds ASCII only: a search for "école" missed "ÉCOLE" (PostgreSQL's
    # folds every letter, as Python's str.lower does with the words searched for).
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value):
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn) -> None:
    # SQLite has no row locks: every transaction takes the write lock up front, so a
    # read-then-write (claiming a ticket, processing a delivery) is never interleaved.
    if conn.dialect.name != "sqlite":
        return
    if _cooperative():
        _begin_cooperatively(conn)
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# SQLite under gevent (`helpdesk web`, as `make run` serves it). SQLite waits for its write
# lock in C (sleeping the OS thread), which under gevent stops the whole process: a greenlet
# holding the lock while it waits on Redis never gets to commit, and every request times
# out. So within a process the greenlets queue for the write lock on a gevent semaphore (the
# holder keeps running), and BEGIN IMMEDIATE against another process (a worker) is retried
# with cooperative sleeps instead of SQLite's blocking busy wait.
BUSY_TIMEOUT_MS = 30000
_LOCK_HELD = "helpdesk_sqlite_lock"
_write_lock = None


def _cooperative() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("socket")


def _process_write_lock():
    global _write_lock
    if _write_lock is None:
        from gevent.lock import Semaphore

        _write_lock = Semaphore(1)
    return _write_lock


def _begin_cooperatively(conn) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    lock = _process_write_lock()
    if not lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        raise sqlite3.OperationalError("database is locked (waited for this process's "
                                       "write lock)")
    conn.info[_LOCK_HELD] = True
    raw = conn.connection.driver_connection
    pause = 0.002
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                _release_write_lock(conn.info)
                raise
        time.sleep(pause)  # gevent's sleep: the process's other greenlets run meanwhile
        pause = min(pause * 2, 0.05)


def _release_write_lock(info: dict) -> None:
    if info.pop(_LOCK_HELD, False):
        _process_write_lock().release()


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _sqlite_end(conn) -> None:
    # Fired just before the COMMIT or ROLLBACK, which runs without yielding to another
    # greenlet: the next one's BEGIN IMMEDIATE finds the database free. (An invalidated
    # connection has no info to read; the pool's invalidate event released its lock.)
    if conn.dialect.name == "sqlite" and not conn.invalidated:
        _release_write_lock(conn.info)


@event.listens_for(Pool, "checkin")
@event.listens_for(Pool, "invalidate")
def _sqlite_returned(_dbapi_connection, record, *_args) -> None:
    if record is not None:
        _release_write_lock(record.info)


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
        # The driver opened a transaction for the ping; COMMIT ends it as well and, unlike
        # a ROLLBACK, keeps psycopg 3's prepared statements (it answers a ROLLBACK with
        # DEALLOCATE ALL).
        dbapi_connection.commit()
    except Exception as exc:
        raise DisconnectionError("stale pooled connection") from exc
