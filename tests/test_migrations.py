"""Migrations: one head, upgrade → downgrade → upgrade on a scratch database, and the metric
roll-ups an upgrade fills from existing records."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from helpdesk.config import MIGRATIONS_DIR, PROJECT_ROOT
from tests.support.parallel import fresh_database


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def test_migrations_have_a_single_head():
    heads = ScriptDirectory.from_config(_alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have {len(heads)} heads: merge them"


def test_migrations_import_no_live_code():
    """A migration means what it meant when written: code it imported may change later.
    (Column types from models/base.py are the one exception: they are storage formats.)"""
    for path in sorted(Path(MIGRATIONS_DIR, "versions").glob("*.py")):
        source = path.read_text().replace("import helpdesk.models.base", "")
        assert "from helpdesk" not in source and "import helpdesk" not in source, path.name


def test_migration_files_sort_in_the_order_they_apply():
    script = ScriptDirectory.from_config(_alembic_config())
    applied = [rev.path for rev in reversed(list(script.walk_revisions()))]
    assert [Path(p).name for p in applied] == sorted(Path(p).name for p in applied)


def _scratch_database(database_url: str):
    """A throwaway database on the same server as the tests' (a file for SQLite)."""
    if database_url.startswith("sqlite"):
        path = Path(tempfile.mkdtemp()) / "scratch.db"
        return f"sqlite:///{path}", lambda: None
    from helpdesk.config import normalize_database_url

    name = f"{sa.engine.make_url(database_url).database}_mig_{uuid.uuid4().hex[:10]}"
    return fresh_database(normalize_database_url(database_url), name)  # named after ours


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


def _made_on(index: sa.Index, dialect: str) -> bool:
    """Whether the index exists on this dialect (some are PostgreSQL's only: `ddl_if`)."""
    only = getattr(index, "_ddl_if", None)
    return only is None or only.dialect in (None, dialect)


def test_the_migrations_make_every_table_column_and_index_the_models_declare(database_url):
    """A schema change in the models without its migration (an index a commit named but
    whose migration file was never added) shows up here, not in production."""
    import helpdesk.models  # noqa: F401  (registers the tables)
    from helpdesk.extensions import db

    url, drop = _scratch_database(database_url)
    engine = None
    try:
        _helpdesk_db(url, "upgrade")
        engine = sa.create_engine(url)
        inspector = sa.inspect(engine)
        assert {t.name for t in db.metadata.sorted_tables} <= _tables(url)
        for table in db.metadata.sorted_tables:
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            assert {column.name for column in table.columns} <= columns, table.name
            indexes = {index["name"] for index in inspector.get_indexes(table.name)}
            declared = {index.name for index in table.indexes
                        if _made_on(index, engine.dialect.name)}
            assert declared <= indexes, table.name
    finally:
        if engine is not None:
            engine.dispose()
        drop()


def test_cli_works_from_any_directory():
    assert PROJECT_ROOT.is_dir()
    result = subprocess.run([sys.executable, "-m", "helpdesk.cli", "--help"],
                            cwd=tempfile.gettempdir(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for command in ("run", "web", "worker", "db", "agents", "channels", "deliveries"):
        assert command in result.stdout


def _seed_before_rollups(url: str) -> None:
    """Tickets, facts (no buckets yet), calls and answers, as a database before 0008 holds
    them."""
    from helpdesk.models import Agent, Call, Channel, Customer, Survey, Ticket

    rng, base = random.Random(2), datetime(2026, 1, 28, 13, tzinfo=UTC)
    facts = sa.table("ticket_facts", *(sa.column(name) for name in (
        "ticket_id", "cycle", "started_at", "solved_at", "reopened", "channel_id",
        "assignee_id", "contact_reason_suggested", "first_response_at",
        "first_response_seconds", "frt_counted", "resolution_seconds", "pending_seconds",
        "handle_seconds", "max_level", "public_replies", "sla_met")))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for n in (1, 2):
            conn.execute(sa.insert(Channel.__table__).values(
                id=n, name=f"c{n}", kind="api", provider="api", key=f"k{n}",
                settings=sa.literal_column("'{}'"), secrets=sa.literal_column("'{}'")))
            conn.execute(sa.insert(Agent.__table__).values(id=n, email=f"a{n}@x", name="A"))
        conn.execute(sa.insert(Customer.__table__).values(id=1, name="C"))
        for n in range(1, 41):
            created = base + timedelta(hours=rng.random() * 24 * 9)
            solved = created + timedelta(hours=rng.random() * 30)
            conn.execute(sa.insert(Ticket.__table__).values(
                id=n, customer_id=1, channel_id=1 + n % 2, assignee_id=rng.choice([1, 2, None]),
                created_at=created, status="solved" if n < 35 else "open",
                solved_at=solved if n < 35 else None))
            if n < 35:
                conn.execute(sa.insert(facts).values(
                    ticket_id=n, cycle=1, started_at=created, solved_at=solved, reopened=False,
                    channel_id=1 + n % 2, assignee_id=rng.choice([1, None]),
                    contact_reason_suggested=False, first_response_at=created,
                    first_response_seconds=rng.random() * 900, frt_counted=True,
                    resolution_seconds=(solved - created).total_seconds(),
                    pending_seconds=1.0, handle_seconds=rng.random() * 60, max_level=1,
                    public_replies=n % 3, sla_met=rng.choice([True, False, None])))
            conn.execute(sa.insert(Call.__table__).values(
                channel_id=1, customer_id=1, external_id=f"CA{n}", outcome="abandoned",
                wait_seconds=n, started_at=created, agent_id=1))
            conn.execute(sa.insert(Survey.__table__).values(
                ticket_id=n, customer_id=1, channel_id=1, agent_id=2, kind="nps",
                token=f"t{n}", status="answered", score=n % 11, answered_at=solved))
    engine.dispose()


def test_the_upgrade_fills_the_rollups_as_a_rebuild_would(database_url, redis_url):
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.models import TicketFact
    from helpdesk.services.metrics import rollup as metrics_rollup
    from helpdesk.services.metrics.buckets import bucket_of
    from tests.support.metrics import rollup_cells

    url, drop = _scratch_database(database_url)
    try:
        _helpdesk_db(url, "upgrade", "0009")  # 0008's down revision
        _seed_before_rollups(url)
        _helpdesk_db(url, "upgrade")
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url,
                          "TESTING": True, "SECRET_KEY": "test"}, socket_server=False)
        with app.app_context():
            for fact in db.session.execute(sa.select(TicketFact)).scalars():
                assert fact.resolution_bucket == bucket_of(fact.resolution_seconds)
                assert fact.frt_bucket == bucket_of(fact.first_response_seconds)
            filled = rollup_cells()
            assert len(filled) > 40
            metrics_rollup.rebuild()
            rebuilt = rollup_cells()
            assert filled.keys() == rebuilt.keys()
            for cell, values in rebuilt.items():
                assert filled[cell] == {k: pytest.approx(v, rel=1e-12) for k, v in values.items()}
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


def test_downgrading_0023_revokes_the_tokens_that_would_expire(database_url):
    """The code before 0023 knows no expiry: a login token it kept would never expire (and
    one already expired, not yet swept, would work again)."""
    url, drop = _scratch_database(database_url)
    engine = sa.create_engine(url)
    try:
        _helpdesk_db(url, "upgrade", "0023")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO agents (id, email, name, role, level, languages, "
                                 "channels, capacity, active, presence, created_at) VALUES "
                                 "(1, 'a@x.io', 'A', 'agent', 1, '[]', '[]', 1, :t, 'offline', "
                                 ":now)"), {"t": True, "now": "2026-12-06 10:00:00"})
            for token_id, expires in ((1, "2026-12-06 22:00:00"), (2, None)):
                conn.execute(sa.text("INSERT INTO api_tokens (id, agent_id, token_hash, "
                                     "created_at, expires_at) VALUES (:id, 1, :hash, :now, "
                                     ":expires)"), {"id": token_id, "hash": f"h{token_id}",
                                                    "now": "2026-12-06 10:00:00",
                                                    "expires": expires})
        _helpdesk_db(url, "downgrade", "0022")
        with engine.connect() as conn:
            revoked = dict(conn.execute(sa.text(
                "SELECT id, revoked_at IS NOT NULL FROM api_tokens")).all())
        assert revoked == {1: True, 2: False}
    finally:
        engine.dispose()
        drop()


def test_downgrades_that_rebuild_the_messages_table_keep_their_attachments(database_url):
    """On SQLite a dropped column rebuilds its table (Alembic's batch mode: copy, drop,
    rename); with foreign keys enforced the drop of `messages` failed while an attachment
    pointed at one of them ("FOREIGN KEY constraint failed"): 0024's and 0021's downgrades
    stopped any database that had received a file."""
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.models import Attachment, Customer, Message, Ticket
    from tests.support import factories

    url, drop = _scratch_database(database_url)
    try:
        _helpdesk_db(url, "upgrade")
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": "redis://127.0.0.1:1/0",
                          "TESTING": True}, socket_server=False)
        channel = factories.channel(app, "api")
        with app.app_context():
            customer = Customer(name="Ana")
            db.session.add(customer)
            db.session.flush()
            ticket = Ticket(subject="Invoice", customer_id=customer.id, channel_id=channel.id)
            db.session.add(ticket)
            db.session.flush()
            message = Message(ticket_id=ticket.id, channel_id=channel.id, direction="inbound",
                              author_type="customer", author_id=customer.id, text="See file",
                              delivery_status="received", reply_to="ana@home.example")
            message.attachments = [Attachment(filename="a.pdf", content_type="application/pdf")]
            db.session.add(message)
            db.session.commit()
            db.engine.dispose()
        _helpdesk_db(url, "downgrade", "0020")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT filename FROM attachments")).scalars().all() == [
                "a.pdf"]
            if url.startswith("sqlite"):  # and every reference still points at its row
                assert conn.execute(sa.text("PRAGMA foreign_key_check")).all() == []
        engine.dispose()
    finally:
        drop()
