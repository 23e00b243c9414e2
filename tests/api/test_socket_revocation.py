"""Revoking a token closes every `/agents` socket opened with it, in every web process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import socketio

from tests.support.live import SocketClient


def _closed_within(client: SocketClient, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not client.client.connected:
            return True
        time.sleep(0.02)
    return not client.client.connected


def test_logout_closes_the_sockets_opened_with_that_token_only(api, agent, sockets):
    login = api.post("/api/v1/auth/login", json={"email": agent.email, "password": "correct horse"})
    second_token = login.json()["token"]
    revoked = sockets(agent.token)
    kept = sockets(second_token)
    assert api.as_(agent).post("/api/v1/auth/logout").status_code == 204
    assert _closed_within(revoked, 1.0)
    time.sleep(0.2)
    assert kept.client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        sockets(agent.token)


def test_deactivation_closes_the_sockets_and_reactivation_does_not_revive_tokens(
        api, admin, agent, sockets):
    client = sockets(agent.token)
    response = api.as_(admin).patch(f"/api/v1/agents/{agent.id}", json={"active": False})
    assert response.status_code == 200
    assert _closed_within(client, 1.0)
    assert api.as_(admin).patch(f"/api/v1/agents/{agent.id}", json={"active": True}).ok
    assert api.as_(agent).get("/api/v1/tickets").status_code == 401
    login = api.post("/api/v1/auth/login", json={"email": agent.email, "password": "correct horse"})
    assert login.status_code == 200


def test_a_password_change_by_an_admin_revokes_tokens_and_closes_sockets(
        api, admin, agent, sockets):
    client = sockets(agent.token)
    response = api.as_(admin).patch(f"/api/v1/agents/{agent.id}",
                                    json={"password": "a brand new one"})
    assert response.status_code == 200
    assert _closed_within(client, 1.0)
    assert api.as_(agent).get("/api/v1/tickets").status_code == 401
    assert api.as_(admin).get("/api/v1/tickets").status_code == 200


def test_a_role_change_closes_the_sockets_which_reconnect_with_the_new_roles_rooms(
        api, admin, supervisor, sockets):
    """Rooms are joined at connect: a demoted supervisor kept hearing every ticket's
    messages, internal notes included, in `supervisors` until they reconnected."""
    from helpdesk.extensions import socketio

    def supervisors_room() -> int:
        return len(list(socketio.server.manager.get_participants("/agents", "supervisors")))

    client = sockets(supervisor.token)
    assert supervisors_room() == 1
    response = api.as_(admin).patch(f"/api/v1/agents/{supervisor.id}", json={"role": "agent"})
    assert response.status_code == 200
    assert _closed_within(client, 1.0)
    again = sockets(supervisor.token)  # the token is kept: only the rooms change
    assert again.client.connected
    assert supervisors_room() == 0
    assert api.as_(supervisor).get("/api/v1/metrics/summary").status_code == 403


def test_a_password_reset_from_the_cli_revokes_tokens(app, api, agent):
    from helpdesk.cli import main

    result = app.test_cli_runner().invoke(main, ["agents", "password", agent.email])
    assert result.exit_code == 0, result.output
    password = result.output.split("new password: ")[1].strip()
    assert api.as_(agent).get("/api/v1/tickets").status_code == 401
    login = api.post("/api/v1/auth/login", json={"email": agent.email, "password": password})
    assert login.status_code == 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listeners(app) -> int:
    """How many processes listen to the Socket.IO message queue."""
    from helpdesk.outbox import pubsub_channel
    from helpdesk.queues import redis_connection

    channel = pubsub_channel(app.config["REDIS_URL"])
    return dict(redis_connection(app).pubsub_numsub(channel)).get(channel.encode(), 0)


@pytest.fixture
def second_web_process(app):
    """`helpdesk web` in a process of its own, sharing the database and Redis; ready once
    it accepts connections and listens to the message queue (before any client connects:
    what is published while its first client connects must reach it)."""
    listening = _listeners(app)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": app.config["REDIS_URL"], "HELPDESK_SECRET_KEY": app.config["SECRET_KEY"]}
    process = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "web", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    while _listeners(app) <= listening:
        assert time.monotonic() < deadline, "the web process never listened to the queue"
        time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_logout_in_one_web_process_closes_the_socket_held_by_another(
        api, agent, second_web_process):
    client = SocketClient(second_web_process, "/agents")
    client.connect(agent.token)
    try:
        assert api.as_(agent).post("/api/v1/auth/logout").status_code == 204
        assert _closed_within(client, 1.0)
    finally:
        client.disconnect()


def test_events_a_client_names_connect_or_disconnect_change_nothing(api, admin, agent, sockets):
    """python-socketio hands a client's `disconnect` event to the disconnect handler: the
    socket forgot its records and stayed connected, online to no one and out of reach of
    a logout; a client's `connect` re-ran the connect handler with whatever token it sent."""
    client = sockets(agent.token)
    client.client.emit("disconnect", namespace="/agents")
    client.client.emit("connect", (0, {"token": admin.token}), namespace="/agents")
    client.client.emit("connect", (0, {"token": "bad"}), namespace="/agents")
    time.sleep(0.5)  # (each event is handled in a thread of its own)
    assert client.call("presence", {"status": "online"}) == {"ok": True}
    board = api.as_(admin).get("/api/v1/agents", params={"per_page": 200}).json()["items"]
    assert {a["id"]: a["presence"] for a in board}[agent.id] == "online"
    from helpdesk.extensions import socketio as server

    assert client.client.get_sid("/agents") not in server.server.manager.rooms[
        "/agents"].get("supervisors", {})
    assert api.as_(agent).post("/api/v1/auth/logout").status_code == 204
    assert _closed_within(client, 1.0)


def test_a_login_token_expires_and_the_sweeper_closes_its_sockets(app, api, agent, sockets):
    """Tokens made by login work HELPDESK_LOGIN_TOKEN_HOURS (12 by default); the sweeper
    then revokes them, closing their sockets. Tokens the CLI makes (the fixture's) do not
    expire."""
    from datetime import UTC, datetime, timedelta

    import time_machine

    from helpdesk.services import auth

    login = api.post("/api/v1/auth/login", json={"email": agent.email,
                                                  "password": "correct horse"})
    token = login.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    client = sockets(token)
    assert api.get("/api/v1/auth/me", headers=headers).status_code == 200  # (now cached)
    later = datetime.now(UTC) + timedelta(hours=12, seconds=1)
    with time_machine.travel(later, tick=True):
        refused = api.get("/api/v1/auth/me", headers=headers)
        assert refused.status_code == 401, refused.text
        assert client.client.connected  # until the sweeper's pass
        from workers.worker import sweep_once

        sweep_once(app)  # (the sweeper's pass: the step is wired in)
        with app.app_context():
            assert auth.revoke_expired() == 0
        assert _closed_within(client, 1.0)
        assert api.as_(agent).get("/api/v1/auth/me").status_code == 200
    with pytest.raises(socketio.exceptions.ConnectionError):
        sockets(token)
