"""Greenlets of one gevent-patched process wait on PostgreSQL at the same time (a script a
test runs in a subprocess, patched first like `helpdesk web`): psycopg 3 must yield to the
other greenlets while a query runs, as psycogreen made psycopg2 do. Prints the seconds five
0.5 s queries took together and how often a ticker greenlet ran meanwhile."""
# ruff: noqa: E402  (gevent patches the standard library before anything imports it)
from gevent import monkey

monkey.patch_all()

import sys
import time

import gevent
from sqlalchemy import text

from helpdesk.server import check_cooperative_database_driver

check_cooperative_database_driver()  # what `helpdesk web` checks before creating the app

from helpdesk import create_app
from helpdesk.extensions import db

app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1], "REDIS_URL": sys.argv[2]},
                 socket_server=False)
ticks = 0


def query() -> None:
    with app.app_context():
        db.session.execute(text("SELECT pg_sleep(0.5)"))
        db.session.rollback()


def ticker(until: float) -> None:
    global ticks
    while time.monotonic() < until:
        ticks += 1
        gevent.sleep(0.01)


with app.app_context():
    db.session.execute(text("SELECT 1"))  # connect first: the wait measured is the queries'
    db.session.rollback()
    print(db.engine.dialect.driver)
started = time.monotonic()
gevent.joinall([gevent.spawn(ticker, started + 0.4)] + [gevent.spawn(query) for _ in range(5)],
               raise_error=True)
print(f"{time.monotonic() - started:.2f} {ticks}")
