"""The short chaos round of `make test`: `python -m bench.chaos` for a few seconds, every fault
injected once, and its exactly-once audit must pass. PostgreSQL only (pg_terminate_backend):
it runs when DATABASE_URL names a PostgreSQL database, on that database (emptied first, as
every test here starts empty), with a Redis server of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.system import PROJECT

DATABASE_URL = os.environ.get("DATABASE_URL", "")


@pytest.mark.timeout(280)
def test_a_short_chaos_round_loses_duplicates_and_splits_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--database-url", DATABASE_URL,
         "--duration", "25", "--senders", "3", "--customers", "5", "--pause", "0.02",
         "--mail-bytes", "2000", "--sla-seconds", "5", "--drain-timeout", "60"],
        cwd=PROJECT, capture_output=True, text=True, timeout=270)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "lost 0  duplicated 0  split 0" in done.stdout
