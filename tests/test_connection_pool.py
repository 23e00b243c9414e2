"""Pooled database connections: checked before use only when they sat idle."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from helpdesk import extensions
from helpdesk.config import normalize_database_url


def test_an_idle_connection_that_died_is_replaced_before_use(database_url, monkeypatch):
    engine = create_engine(normalize_database_url(database_url), pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        # The connection dies while it waits in the pool (a database restart, a proxy's
        # idle timeout): the next checkout must not hand it out.
        engine.pool._pool.queue[0].dbapi_connection.close()
        monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 0.0)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()



def test_postgresql_urls_use_psycopg_3():
    # psycopg 3 prepares the statements a connection repeats (the claim's, the token
    # lookup's) and waits through gevent; psycopg2 is no longer a dependency of the app.
    for url in ("postgres://u@h/d", "postgresql://u@h/d", "postgresql+psycopg2://u@h/d"):
        assert normalize_database_url(url) == "postgresql+psycopg://u@h/d"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_prepared_statements_can_be_turned_off_for_a_pooler(monkeypatch):
    from helpdesk.config import from_environment

    url = "postgresql://u@h/d"
    # (a host that does not answer fails a connection after 5 s: /readyz answers, not hangs)
    assert from_environment({"SQLALCHEMY_DATABASE_URI": url})["SQLALCHEMY_ENGINE_OPTIONS"][
        "connect_args"] == {"connect_timeout": 5}
    monkeypatch.setenv("HELPDESK_DB_PREPARE", "0")
    options = from_environment({"SQLALCHEMY_DATABASE_URI": url})["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"] == {"connect_timeout": 5, "prepare_threshold": None}
    assert "connect_args" not in from_environment(  # SQLite's driver takes no such option
        {"SQLALCHEMY_DATABASE_URI": "sqlite:///x.db"})["SQLALCHEMY_ENGINE_OPTIONS"]
