"""State of its own for each process of a parallel run (pytest-xdist), on shared servers."""

from __future__ import annotations

import atexit
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import sqlalchemy as sa
from redis.connection import parse_url

REDIS_DATABASES = 16  # Redis's default `databases`


def fresh_database(database_url: str, name: str) -> tuple[str, Callable[[], None]]:
    """Database `name`, created fresh (dropped first if there) on the PostgreSQL server of
    `database_url`: its URL, in the scheme given (tests hand it to psycopg too), and a
    function that drops it."""
    from helpdesk.config import normalize_database_url

    admin = sa.create_engine(normalize_database_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = sa.engine.make_url(database_url).set(database=name)
    return url.render_as_string(hide_password=False), drop


def own_database(database_url: str, number: int) -> str:
    """A fresh database named after the run's (`<name>_w<number>`) on the same PostgreSQL
    server, dropped when the process exits (a SQLite file: `<stem>_w<number>` beside it)."""
    url = sa.engine.make_url(database_url)
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        path = Path(url.database)  # a file of its own beside the one named
        return url.set(database=str(path.with_name(f"{path.stem}_w{number}{path.suffix}"))
                       ).render_as_string(hide_password=False)
    if not url.drivername.startswith("postgres"):
        return database_url
    own, drop = fresh_database(database_url, f"{url.database}_w{number}")
    atexit.register(drop)
    return own


def own_redis_database(redis_url: str, number: int) -> str:
    """The run's Redis database number + 1 + `number`, flushed by the tests; refused past the
    server's last database (the run's own number must leave room: never wrap to db 0)."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss") or "db" in parse_qs(parts.query):
        raise SystemExit(f"parallel tests need REDIS_URL as redis://host:port/N, not {redis_url!r}"
                         " (or run them in one process: make test TEST_PROCESSES=0)")
    db = int(parse_url(redis_url).get("db", 0)) + 1 + number
    if db >= REDIS_DATABASES:
        raise SystemExit(f"REDIS_URL's database leaves no room for test process {number}: "
                         f"use one below {REDIS_DATABASES - 1 - number} (or TEST_PROCESSES=0)")
    return urlunsplit(parts._replace(path=f"/{db}"))
