"""Two greenlets write to one SQLite file from one gevent-patched process (a script the
web server test runs in a subprocess: gevent must patch before anything else is imported)."""
# ruff: noqa: E402  (gevent patches the standard library before anything imports it)
from gevent import monkey

monkey.patch_all()

import sys
import time

import gevent
from sqlalchemy import create_engine, text

import helpdesk.extensions  # noqa: F401  (the SQLite connect/begin listeners)

engine = create_engine(f"sqlite:///{sys.argv[1]}", pool_size=5)
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))


def holder():
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        gevent.sleep(0.3)  # e.g. a Redis round trip before the commit


def writer():
    gevent.sleep(0.05)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))


started = time.monotonic()
gevent.joinall([gevent.spawn(holder), gevent.spawn(writer)], raise_error=True)
print(f"{time.monotonic() - started:.2f}")
