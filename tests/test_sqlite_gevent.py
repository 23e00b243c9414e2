"""The web server runs under gevent: on SQLite, a request waiting for the write lock must not
freeze the process while another greenlet holds the lock (it did for 30 s, until gunicorn
killed the worker)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "support" / "sqlite_greenlets.py"


def test_greenlets_take_turns_on_the_sqlite_write_lock(tmp_path):
    database = tmp_path / "greenlets.db"
    done = subprocess.run([sys.executable, str(SCRIPT), str(database)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) < 5  # the holder's 0.3 s, not SQLite's 30 s busy wait
    with sqlite3.connect(database) as check:
        assert sorted(check.execute("SELECT x FROM t").fetchall()) == [(1,), (2,)]
