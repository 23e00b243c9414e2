"""The production shape without Docker: two `helpdesk web` processes (gunicorn + gevent, as
deployed) and two `helpdesk worker` processes on one database and one Redis.

A webhook posted to web A reaches a Socket.IO client connected to web B (Redis is the
Socket.IO message queue), and agents pulling from both at once never get one ticket twice.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import factories
from tests.support.live import ApiClient, SocketClient, api_message

TICKETS = 12


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _helpdesk(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "helpdesk.cli", *args], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL)


def _wait_ready(base_url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{base_url} exited with {process.returncode}"
        try:
            if requests.get(f"{base_url}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base_url} not ready within {timeout}s")


@pytest.fixture(scope="module")
def two_webs_two_workers(app, database_url, redis_url):
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "HELPDESK_SECRET_KEY": app.config["SECRET_KEY"],
           "HELPDESK_DATA_DIR": app.config["DATA_DIR"],
           "HELPDESK_ASYNC_MODE": "auto"}
    ports = [_free_port(), _free_port()]
    processes = [_helpdesk("web", "--host", "127.0.0.1", "--port", str(port), env=env)
                 for port in ports]
    processes += [_helpdesk("worker", env=env),
                  _helpdesk("worker", "--no-scheduler", env=env)]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, process in zip(urls, processes, strict=False):
            _wait_ready(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_a_webhook_on_web_a_reaches_a_socket_on_web_b(app, two_webs_two_workers):
    web_a, web_b = (ApiClient(url) for url in two_webs_two_workers)
    supervisor = factories.agent(app, role="supervisor", level=2)
    channel = factories.channel(app, "api")
    on_b = SocketClient(web_b.base_url, "/agents")
    on_b.connect(supervisor.token)
    try:
        sent = web_a.post_api_webhook(channel, api_message(text="My parcel is lost"))
        assert sent.status_code == 200, sent.text
        created = on_b.wait_for("message.created", timeout=30)
        assert created["data"]["text"] == "My parcel is lost"
        on_b.wait_for("ticket.created", timeout=10)
    finally:
        on_b.disconnect()


def test_agents_pulling_on_both_webs_never_get_one_ticket_twice(app, two_webs_two_workers):
    web_a, web_b = (ApiClient(url) for url in two_webs_two_workers)
    supervisor = factories.agent(app, role="supervisor", level=2)
    channel = factories.channel(app, "api")
    for n in range(TICKETS):  # one customer each, so one ticket each
        response = web_a.post_api_webhook(channel, api_message(
            event_id=f"e{n}", message_id=f"m{n}", email=f"c{n}@example.com", text="Help"))
        assert response.status_code == 200, response.text
    staff = web_b.as_(supervisor)
    deadline = time.monotonic() + 60
    while staff.get("/api/v1/queue").json()["total"] < TICKETS:
        assert time.monotonic() < deadline, "the workers did not process every delivery"
        time.sleep(0.2)

    agents = [factories.agent(app, capacity=10) for _ in range(8)]  # 4 per web process

    def pull(index: int) -> list[int]:
        web = web_a if index % 2 else web_b
        taken = []
        while True:
            response = web.as_(agents[index]).post("/api/v1/queue/next")
            if response.status_code == 204:
                return taken
            assert response.status_code == 200, response.text
            taken.append(response.json()["id"])

    with ThreadPoolExecutor(max_workers=len(agents)) as pool:
        claims = [ticket for taken in pool.map(pull, range(len(agents))) for ticket in taken]
    assert len(claims) == TICKETS
    assert len(set(claims)) == TICKETS, "one ticket was handed out twice"


def test_what_gunicorn_itself_refuses_is_json_too(two_webs_two_workers):
    """API.md: every error is JSON. A request line over 4 KiB or headers over 8 KiB never
    reach the application: gunicorn answered its own HTML page, even under /api/v1."""
    web = two_webs_two_workers[0]
    for response, status in (
            (requests.get(f"{web}/api/v1/tickets", params={"q": "x" * 5000}, timeout=10), 414),
            (requests.get(f"{web}/api/v1/tickets", headers={"X-Big": "x" * 9000},
                          timeout=10), 431)):
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] and error["message"] and error["fields"] == {}
