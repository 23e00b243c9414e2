"""The embedded default as `make run` serves it: gunicorn + gevent on SQLite.

The rest of the suite serves the app with threaded werkzeug, where SQLite's busy wait blocks
one thread only. Under gevent it blocked the whole process: a request holding the write lock
while it waited on Redis could never commit, and concurrent webhooks got 500s and dropped
connections. Here the production web server runs as a subprocess, and concurrent senders
post raw emails at it.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.redis_server import OwnRedis

SENDERS = 24
MAILS_PER_SENDER = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "helpdesk.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def _mail(sender: int, number: int) -> bytes:
    return (f"From: Customer {sender} <c{sender}@example.com>\r\n"
            f"To: support@example.com\r\nSubject: order {sender}-{number}\r\n"
            f"Message-ID: <m{sender}-{number}@example.com>\r\n\r\n"
            f"My order {sender}-{number} never arrived.\r\n").encode()


@pytest.fixture
def embedded(tmp_path):
    redis = OwnRedis()
    redis.start()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'helpdesk.db'}",
           "REDIS_URL": redis.url, "HELPDESK_SECRET_KEY": "test",
           "HELPDESK_INSTANCE_DIR": str(tmp_path / "instance"),
           "HELPDESK_DATA_DIR": str(tmp_path / "data")}
    env.pop("HELPDESK_ASYNC_MODE", None)
    _cli(env, "db", "upgrade")
    created = _cli(env, "channels", "create", "--name", "Mail", "--kind", "email",
                   "--provider", "raw_mime")
    path = next(word for word in created.split() if word.startswith("/webhooks/"))
    port = _free_port()
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115
    web = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "web", "--host", "127.0.0.1",
                            "--port", str(port)], env=env, stdout=log, stderr=log,
                           start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(base + "/healthz", timeout=5).raise_for_status()
            break
        except requests.RequestException:
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError((tmp_path / "web.log").read_text()) from None
            time.sleep(0.1)
    try:
        yield env, base + path, tmp_path
    finally:
        web.terminate()
        try:
            web.wait(15)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
        log.close()
        redis.stop()


def test_concurrent_webhooks_on_sqlite_under_gevent(embedded):
    env, url, tmp_path = embedded
    failures: list[str] = []

    def send(sender: int) -> None:
        with requests.Session() as http:
            for number in range(MAILS_PER_SENDER):
                try:
                    answer = http.post(url, data=_mail(sender, number), timeout=20,
                                       headers={"Content-Type": "message/rfc822"})
                except requests.RequestException as exc:
                    failures.append(f"{sender}-{number}: {type(exc).__name__}")
                    continue
                if answer.status_code != 200:
                    failures.append(f"{sender}-{number}: {answer.status_code} {answer.text}")

    started = time.monotonic()
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(send, range(SENDERS)))
    elapsed = time.monotonic() - started
    log = (tmp_path / "web.log").read_text()
    assert failures == [], (failures[:5], log[-3000:])
    assert "WORKER TIMEOUT" not in log and "database is locked" not in log, log[-3000:]
    assert elapsed < 30, elapsed

    # A real worker drains what was acknowledged: every mail stored once.
    _cli(env, "worker", "--burst", "--no-scheduler")
    with sqlite3.connect(tmp_path / "helpdesk.db") as conn:
        deliveries = conn.execute("SELECT count(*), count(DISTINCT dedupe_key) FROM deliveries "
                                  "WHERE status = 'processed'").fetchone()
        messages = conn.execute("SELECT count(*), count(DISTINCT external_id) FROM messages"
                                ).fetchone()
    total = SENDERS * MAILS_PER_SENDER
    assert deliveries == (total, total)
    assert messages == (total, total)
