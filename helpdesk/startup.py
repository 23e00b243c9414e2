"""What a process checks before it serves, and start-up errors said in one plain line.

The CLI turns these into `helpdesk: <what is wrong>; <how to fix it>` and exit code 2
instead of a traceback; `/readyz` reports the same database state.
"""

from __future__ import annotations

import traceback
from functools import lru_cache

from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from helpdesk import config as config_module
from helpdesk.config import ConfigError

MIGRATE_HINT = "run `helpdesk db upgrade` first"


class StartupError(RuntimeError):
    """A process cannot start; the message says what is wrong and how to fix it."""


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The revisions a fully migrated database is at (read once from migrations/)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    alembic = Config()
    alembic.set_main_option("script_location", str(config_module.MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(alembic).get_heads())


def database_revision(connection) -> set[str]:
    """The revisions the database says it is at (empty: never migrated)."""
    try:
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    except sa_exc.DBAPIError:
        return set()
    return {row[0] for row in rows}


def check_database(app: Flask) -> None:
    """Reachable and migrated to the head, else a StartupError saying what to do."""
    from helpdesk.extensions import db

    with app.app_context():
        try:
            with db.engine.connect() as connection:
                revision = database_revision(connection)
                connection.rollback()
        except Exception as exc:
            raise StartupError(explain(exc) or f"the database is unusable: {exc}") from exc
    if not revision:
        raise StartupError(f"the database at {safe_url(app)} is not migrated: {MIGRATE_HINT}")
    if revision != set(migration_heads()):
        raise StartupError(f"the database at {safe_url(app)} is at revision "
                           f"{', '.join(sorted(revision))}, not the code's "
                           f"{', '.join(sorted(migration_heads()))}: {MIGRATE_HINT}")


def check_redis(app: Flask) -> None:
    """REDIS_URL set, or a `helpdesk run` beside us (a Redis still starting is waited for:
    the worker retries its connection), and a Redis URL."""
    if not app.config["REDIS_URL"]:
        raise StartupError("REDIS_URL is not set: set it to redis://host:6379/0, or start "
                           "`helpdesk run` (its embedded Redis is used when REDIS_URL is unset)")
    check_redis_url(app)


def check_redis_url(app: Flask) -> None:
    """A REDIS_URL that is set must be one (`notaurl`, a port beyond 65535: a traceback)."""
    from redis.connection import ConnectionPool

    url = app.config["REDIS_URL"]
    if not url:
        return
    try:
        ConnectionPool.from_url(url)
    except ValueError as exc:
        raise StartupError(f"REDIS_URL is not a Redis URL ({exc}): use redis://host:6379/0, "
                           "rediss:// for TLS or unix:///path/to/redis.sock") from exc


def safe_url(app: Flask) -> str:
    return make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)


def explain(exc: BaseException) -> str | None:
    """One line for a configuration or start-up error; None for anything else (a bug)."""
    if isinstance(exc, (StartupError, ConfigError)):
        return str(exc)
    cause = exc.orig if isinstance(exc, sa_exc.StatementError) else exc
    if isinstance(cause, UnicodeEncodeError) and cause.reason == "surrogates not allowed":
        # (an argument's bytes that are no UTF-8: Python hands them over as lone surrogates)
        return "an argument is not valid UTF-8 text"
    if isinstance(exc, ModuleNotFoundError) and _from_a_dialect(exc):
        return (f"DATABASE_URL needs a database driver that is not installed ({exc}): use "
                "postgresql://user:password@host:5432/name or sqlite:////absolute/path.db")
    if isinstance(exc, (sa_exc.ArgumentError, sa_exc.NoSuchModuleError)):
        return (f"DATABASE_URL is not a database URL SQLAlchemy understands ({exc}): use "
                "postgresql://user:password@host:5432/name or sqlite:////absolute/path.db")
    if isinstance(exc, sa_exc.OperationalError) and _is_unmigrated(exc):
        return f"the database is not migrated: {MIGRATE_HINT}"
    if isinstance(exc, sa_exc.ProgrammingError) and _is_unmigrated(exc):
        return f"the database is not migrated: {MIGRATE_HINT}"
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return f"cannot reach Redis at REDIS_URL ({exc}): is it running?"
    if isinstance(exc, sa_exc.OperationalError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return (f"cannot use the database at DATABASE_URL ({first}): check the URL and that "
                "the server is running")
    return None


def _from_a_dialect(exc: BaseException) -> bool:
    """Raised while SQLAlchemy loaded a dialect's driver (not a module our code lacks)."""
    return any("sqlalchemy/dialects/" in frame.filename.replace("\\", "/")
               for frame in traceback.extract_tb(exc.__traceback__))


def _is_unmigrated(exc: sa_exc.DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "no such table" in message or ("relation" in message and "does not exist" in message)
