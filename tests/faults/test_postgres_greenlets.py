"""`helpdesk web` serves every request of a process from greenlets: while one waits for
PostgreSQL the others must run (psycopg 3 waits through gevent when gevent patched `select`
before psycopg was imported; helpdesk/server.py checks that it did)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "support" / "pg_greenlets.py"


def test_queries_of_several_greenlets_wait_together(database_url, redis_url):
    done = subprocess.run([sys.executable, str(SCRIPT), database_url, redis_url],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    driver, timing = done.stdout.split("\n")[:2]
    seconds, ticks = timing.split()
    assert driver == "psycopg"
    assert float(seconds) < 1.5  # five 0.5 s queries side by side, not one after another
    assert int(ticks) >= 20  # and the ticker ran meanwhile (~40 ticks in its 0.4 s)
