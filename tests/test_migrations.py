"""Migrations: one head, and upgrade → downgrade → upgrade on a scratch database."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from helpdesk.config import MIGRATIONS_DIR, PROJECT_ROOT


def test_migrations_have_a_single_head():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"migrations have {len(heads)} heads: merge them"


def _scratch_database(database_url: str):
    """A throwaway database on the same server as the tests' (a file for SQLite)."""
    if database_url.startswith("sqlite"):
        path = Path(tempfile.mkdtemp()) / "scratch.db"
        return f"sqlite:///{path}", lambda: None
    from helpdesk.config import normalize_database_url

    url = sa.engine.make_url(normalize_database_url(database_url))
    name = f"helpdesk_mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _helpdesk_db(url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([sys.executable, "-m", "helpdesk.cli", "db", *args], env=env,
                            cwd=tempfile.gettempdir(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url):
    url, drop = _scratch_database(database_url)
    try:
        _helpdesk_db(url, "upgrade")
        assert {"tickets", "messages", "deliveries", "customers", "identities"} <= _tables(url)
        _helpdesk_db(url, "downgrade", "base")
        assert _tables(url) == set()
        _helpdesk_db(url, "upgrade")
        assert "tickets" in _tables(url)
    finally:
        drop()


def test_cli_works_from_any_directory():
    assert PROJECT_ROOT.is_dir()
    result = subprocess.run([sys.executable, "-m", "helpdesk.cli", "--help"],
                            cwd=tempfile.gettempdir(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for command in ("run", "web", "worker", "db", "agents", "channels", "deliveries"):
        assert command in result.stdout
