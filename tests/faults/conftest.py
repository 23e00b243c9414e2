"""Faults that only PostgreSQL has (terminating its backends) are tested in the PostgreSQL
pass of the suite (`.ci/run`'s second run, or DATABASE_URL=postgresql://...): on the embedded
SQLite default these files are not part of the suite at all."""

from __future__ import annotations

import os

import pytest

POSTGRESQL_ONLY = ["test_chaos.py", "test_database_outage.py", "test_postgres_greenlets.py",
                   "test_sweeper_and_live_batches.py", "test_ticket_row_locks.py",
                   "test_admin_write_locks.py"]

collect_ignore = ([] if os.environ.get("DATABASE_URL", "").startswith("postgres")
                  else POSTGRESQL_ONLY)


@pytest.fixture
def second_connection(database_url):
    """A second connection to the database, as another request's transaction: it holds rows
    and locks until the test commits it (rolled back and closed after the test)."""
    import psycopg

    connection = psycopg.connect(database_url)
    yield connection
    connection.rollback()
    connection.close()
