"""Browser fixtures: a real Chromium (Playwright) against the live server, and a real worker
process (RQ worker + scheduler + live metrics), as `helpdesk run` starts it.

The system Chromium (Debian's `chromium`) is used when installed, else Playwright's own.
Screenshots of each view go to `<pytest's temp folder>/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import factories

SYSTEM_CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str | None:
    found = next((path for path in SYSTEM_CHROMIUM if os.access(path, os.X_OK)), None)
    return found or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        path = chromium_path()
        launched = playwright.chromium.launch(
            executable_path=path, args=CHROMIUM_ARGS if path else [], headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh tab (own sessionStorage) at 1280×800; a page error fails the test."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(10_000)
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture
def new_page(browser, live_server):
    """More tabs, each its own session (another agent, a supervisor)."""
    contexts = []

    def make():
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server)
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(10_000)
        return tab

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def shoot(screenshots):
    def save(tab, name: str, full_page: bool = False) -> Path:
        path = screenshots / f"console-{name}.png"
        tab.screenshot(path=str(path), full_page=full_page)
        return path

    return save


@pytest.fixture
def worker(app, live_server, redis_url, database_url):
    """`helpdesk worker` in its own process, working until the test ends."""
    from rq import Worker

    from helpdesk.queues import redis_connection

    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "HELPDESK_DATA_DIR": app.config["DATA_DIR"],
           "HELPDESK_SECRET_KEY": app.config["SECRET_KEY"],
           "HELPDESK_ALLOW_PRIVATE_CALLBACKS": "1",  # the fake providers listen on loopback
           "HELPDESK_PUBLIC_URL": live_server}
    process = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "worker"], env=env,
                               start_new_session=True)
    connection = redis_connection(app)
    deadline = time.monotonic() + 30
    while not Worker.all(connection=connection):
        assert process.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)
    yield process
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture
def providers():
    """A local stand-in for an integrator's callback endpoint (and the providers' APIs)."""
    from tests.support.fake_providers import FakeProviders

    fake = FakeProviders().start()
    yield fake
    fake.stop()


@pytest.fixture
def channel(app, providers):
    """An `api` channel whose replies are POSTed to the fake callback server."""
    return factories.channel(app, "api", settings={"callback_url": providers.url + "/callback"})
