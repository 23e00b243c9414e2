"""Login, logout and the role matrix: authentication before anything, roles on every route."""

from __future__ import annotations

import pytest

PROTECTED = [
    ("GET", "/api/v1/tickets", "agent"),
    ("GET", "/api/v1/tickets/999999", "agent"),
    ("PATCH", "/api/v1/tickets/999999", "agent"),
    ("POST", "/api/v1/tickets/999999/messages", "agent"),
    ("POST", "/api/v1/tickets/999999/escalate", "agent"),
    ("GET", "/api/v1/queue", "agent"),
    ("POST", "/api/v1/queue/next", "agent"),
    ("POST", "/api/v1/customers", "agent"),
    ("GET", "/api/v1/customers/999999", "agent"),
    ("GET", "/api/v1/customers/999999/timeline", "agent"),
    ("GET", "/api/v1/channels", "admin"),
    ("POST", "/api/v1/channels", "admin"),
    ("GET", "/api/v1/channels/999999", "admin"),
    ("PATCH", "/api/v1/channels/999999", "admin"),
    ("DELETE", "/api/v1/channels/999999", "admin"),
    ("GET", "/api/v1/deliveries", "admin"),
    ("POST", "/api/v1/deliveries/999999/replay", "admin"),
]


@pytest.mark.parametrize(("method", "path", "role"), PROTECTED)
def test_no_token_is_401_even_for_unknown_ids(api, method, path, role):
    response = api.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    bad = api.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize(("method", "path", "role"),
                         [row for row in PROTECTED if row[2] == "admin"])
def test_admin_routes_refuse_agents_and_supervisors(api, agent, supervisor, method, path,
                                                    role):
    for who in (agent, supervisor):
        response = api.as_(who).request(method, path, json={})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


def test_login_returns_a_working_token(api, agent):
    response = api.post("/api/v1/auth/login",
                        json={"email": agent.email.upper(), "password": "correct horse"})
    assert response.status_code == 200
    body = response.json()
    assert body["agent"] == {"id": agent.id, "email": agent.email, "name": body["agent"]["name"],
                             "role": "agent", "level": 1}
    authed = api.get("/api/v1/tickets", headers={"Authorization": f"Bearer {body['token']}"})
    assert authed.status_code == 200


def test_wrong_password_and_unknown_email_are_401(api, agent):
    wrong = api.post("/api/v1/auth/login", json={"email": agent.email, "password": "nope"})
    unknown = api.post("/api/v1/auth/login", json={"email": "who@x.io", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401


@pytest.mark.parametrize("body", [{}, {"email": ""}, {"email": "a@b.c", "password": ""},
                                  {"password": "x"}])
def test_missing_or_empty_login_fields_are_400(api, body):
    response = api.post("/api/v1/auth/login", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["fields"]


def test_login_is_rate_limited_per_ip_and_email(api, agent):
    codes = [api.post("/api/v1/auth/login", json={"email": agent.email, "password": "bad"})
             .status_code for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    limited = api.post("/api/v1/auth/login", json={"email": agent.email, "password": "bad"})
    assert int(limited.headers["Retry-After"]) >= 1
    other = api.post("/api/v1/auth/login", json={"email": "someone@else.io", "password": "x"})
    assert other.status_code == 401


def test_logout_revokes_the_token(api, agent):
    assert api.as_(agent).post("/api/v1/auth/logout").status_code == 204
    assert api.as_(agent).get("/api/v1/tickets").status_code == 401


def test_tokens_are_stored_hashed(app, agent):
    from sqlalchemy import select

    from helpdesk.extensions import db
    from helpdesk.models import ApiToken

    with app.app_context():
        stored = db.session.execute(select(ApiToken.token_hash)).scalars().all()
    assert agent.token not in stored
    assert all(len(value) == 64 for value in stored)


def test_socket_connection_needs_a_valid_token(sockets, agent):
    import socketio

    with pytest.raises(socketio.exceptions.ConnectionError):
        sockets("not-a-token")
    connected = sockets(agent.token)
    assert connected.client.connected
