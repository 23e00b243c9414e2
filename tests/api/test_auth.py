"""Login, logout and the role matrix: authentication before anything, roles on every route."""

from __future__ import annotations

import re

import pytest


def protected_routes(app) -> list[tuple[str, str, str]]:
    """Every non-public /api/v1 route with a concrete path (unknown ids) and its role."""
    from helpdesk.api.v1 import _PUBLIC

    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("v1.") or rule.endpoint in _PUBLIC:
            continue
        role = getattr(app.view_functions[rule.endpoint], "required_role", "agent")
        path = re.sub(r"<(?:int:)?[a-z_]+>", "999999", rule.rule)
        path = path.replace("/999999", "/normal") if "sla-policies" in path else path
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path, role))
    return routes


def test_every_protected_route_is_401_without_a_token_even_for_unknown_ids(app, api):
    routes = protected_routes(app)
    assert len(routes) > 40
    for method, path, _role in routes:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            response = api.request(method, path, json={}, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            # API.md's one shape for every error: `fields` too (empty: no field was wrong)
            assert response.json() == {"error": {"code": "unauthorized", "fields": {},
                                                 "message": response.json()["error"]["message"]}}
        refused = api.request("OPTIONS", path)  # (it named the methods the route takes)
        assert refused.status_code == 401 and "Allow" not in refused.headers, path


@pytest.mark.parametrize("method, path, status", [
    ("DELETE", "/api/v1/tickets/1", 405), ("PUT", "/api/v1/queue/next", 405),
    ("GET", "/api/v1/no-such-thing/5", 404), ("POST", "/api/v1/tickets/1/nope", 404),
    ("OPTIONS", "/api/v1/no-such-thing/5", 404)])
def test_authentication_comes_before_an_unknown_route_or_method(api, agent, method, path,
                                                                status):
    """API.md: authentication is checked before anything else, so a path or method under
    /api/v1 that matches no route is a 401 without a token; with one, the 404 or 405 (which
    names the methods the path takes)."""
    refused = api.request(method, path)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "unauthorized"
    answered = api.as_(agent).request(method, path)
    assert answered.status_code == status, answered.text
    assert answered.json()["error"]["code"] in ("not_found", "method_not_allowed")
    if status == 405:
        assert "GET" in answered.headers["Allow"] or "POST" in answered.headers["Allow"]


def test_public_routes_keep_their_404_and_405_without_a_token(api):
    assert api.get("/api/v1/auth/login").status_code == 405
    assert api.post("/api/v1/openapi.json").status_code == 405
    assert api.get("/api/v1/chat/sessions/nope/nothing").status_code == 404


def test_role_matrix(app, api, agent, supervisor):
    routes = protected_routes(app)
    admin_only = [r for r in routes if r[2] == "admin"]
    supervisor_only = [r for r in routes if r[2] == "supervisor"]
    assert {"/api/v1/channels", "/api/v1/deliveries", "/api/v1/settings",
            "/api/v1/audit"} <= {path for _, path, _ in admin_only}
    assert "/api/v1/metrics/summary" in {path for _, path, _ in supervisor_only}
    for method, path, _ in admin_only:
        for who in (agent, supervisor):
            response = api.as_(who).request(method, path, json={})
            assert response.status_code == 403, (method, path, who.role)
            assert response.json()["error"]["code"] == "forbidden"
    for method, path, _ in supervisor_only:
        assert api.as_(agent).request(method, path, json={}).status_code == 403, path


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


def test_an_agent_without_a_password_cannot_log_in_with_any(api, admin):
    """An agent created without a password (the API and the console allow it: they log in
    with a token) was let in with the password the unknown-email path hashes."""
    created = api.as_(admin).post("/api/v1/agents", json={
        "email": "tokenonly@example.com", "name": "Token Only", "role": "admin"})
    assert created.status_code == 201, created.text
    for password in ("not-a-real-password", "", "x" * 8):
        response = api.post("/api/v1/auth/login", json={"email": "tokenonly@example.com",
                                                         "password": password})
        assert response.status_code in (400, 401), (password, response.text)
        assert "token" not in response.json()


@pytest.mark.parametrize("body", [{}, {"email": ""}, {"email": "a@b.c", "password": ""},
                                  {"password": "x"}, {"email": "   ", "password": "x"}])
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
