"""Faults that only PostgreSQL has (terminating its backends) are tested in the PostgreSQL
pass of the suite (`.ci/run`'s second run, or DATABASE_URL=postgresql://...): on the embedded
SQLite default these files are not part of the suite at all."""

from __future__ import annotations

import os

POSTGRESQL_ONLY = ["test_chaos.py", "test_database_outage.py", "test_postgres_greenlets.py",
                   "test_sweeper_and_live_batches.py", "test_ticket_row_locks.py",
                   "test_admin_write_locks.py"]

collect_ignore = ([] if os.environ.get("DATABASE_URL", "").startswith("postgres")
                  else POSTGRESQL_ONLY)
