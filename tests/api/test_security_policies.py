"""The security policies (README "Security"): roles, login limits, stored headers, the
public URL in production."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Delivery
from tests.support import factories
from tests.support.live import api_message


def test_unassigning_another_agents_ticket_takes_a_supervisor(app, api, agent, supervisor,
                                                              ticket):
    other = factories.agent(app)
    path = f"/api/v1/tickets/{ticket['id']}"
    assert api.as_(other).patch(path, json={"assignee_id": other.id}).status_code == 200
    refused = api.as_(agent).patch(path, json={"assignee_id": None})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert api.as_(agent).get(path).json()["assignee_id"] == other.id
    assert api.as_(other).patch(path, json={"assignee_id": None}).status_code == 200  # own
    assert api.as_(other).patch(path, json={"assignee_id": other.id}).status_code == 200
    unassigned = api.as_(supervisor).patch(path, json={"assignee_id": None})
    assert unassigned.status_code == 200 and unassigned.json()["assignee_id"] is None


def test_login_is_rate_limited_per_ip_across_emails(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_IP_RATE", "5/minute")
    codes = [api.post("/api/v1/auth/login", json={"email": f"spray{n}@example.com",
                                                  "password": "Winter2026!"}).status_code
             for n in range(6)]
    assert codes == [401] * 5 + [429]


def test_the_per_ip_login_limit_counts_failed_logins_only(app, api, monkeypatch):
    """Many colleagues signing in from one address are not refused; once an address has
    failed too often, it is refused whatever it sends, the right password included."""
    monkeypatch.setitem(app.config, "LOGIN_IP_RATE", "3/minute")
    staff = [factories.agent(app) for _ in range(5)]

    def login(who, password: str) -> int:
        return api.post("/api/v1/auth/login", json={"email": who.email,
                                                    "password": password}).status_code

    assert [login(who, "correct horse") for who in staff] == [200] * 5
    assert [login(who, "wrong horse!") for who in staff[:4]] == [401] * 3 + [429]
    refused = api.post("/api/v1/auth/login", json={"email": staff[4].email,
                                                   "password": "correct horse"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("proxies", [0, 1])
def test_behind_a_load_balancer_the_login_limit_counts_each_client(app, proxies):
    """Behind HAProxy every request comes from its address: with HELPDESK_TRUSTED_PROXIES=1
    the per-IP limit counts the client named in X-Forwarded-For, so one client's failures
    do not lock every colleague out. Without it the header (which a client can forge) is
    ignored."""
    from helpdesk import create_app

    keep = ("SQLALCHEMY_DATABASE_URI", "DATA_DIR", "REDIS_URL")
    fronted = create_app({**{k: app.config[k] for k in keep}, "TESTING": True,
                          "TRUSTED_PROXIES": proxies, "LOGIN_IP_RATE": "2/minute"},
                         socket_server=False)
    client = fronted.test_client()
    colleague = factories.agent(app)

    def login(forwarded_for: str, password: str) -> int:
        return client.post("/api/v1/auth/login", headers={"X-Forwarded-For": forwarded_for},
                           json={"email": colleague.email, "password": password},
                           environ_base={"REMOTE_ADDR": f"10.9.{proxies}.1"}).status_code

    assert [login("203.0.113.7", "wrong horse!") for _ in range(3)] == [401, 401, 429]
    assert login("198.51.100.20", "correct horse") == (200 if proxies else 429)


def test_telegrams_secret_token_header_is_not_stored_with_the_delivery(app, api):
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret-abc",
                                                          "bot_token": "1:x"})
    update = {"update_id": 77, "message": {
        "message_id": 1, "from": {"id": 5, "is_bot": False, "first_name": "Ana"},
        "chat": {"id": 5, "type": "private"}, "date": int(time.time()), "text": "hi"}}
    response = api.session.post(
        f"{api.base_url}/webhooks/telegram/{channel.key}", data=json.dumps(update),
        headers={"Content-Type": "application/json",
                 "X-Telegram-Bot-Api-Secret-Token": "tg-secret-abc"}, timeout=30)
    assert response.status_code == 200
    with app.app_context():
        headers = db.session.execute(select(Delivery.headers)).scalar_one()
    assert headers and "tg-secret-abc" not in json.dumps(headers)


def _production_servers(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://helpdesk@db.example/helpdesk")
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6379/0")


def test_production_requires_its_database_and_redis(monkeypatch):
    """README: production refuses to start without them; it started on a SQLite file in
    the instance folder and without Redis (no rate limits: login and webhooks unlimited)."""
    from helpdesk.config import from_environment

    monkeypatch.setenv("HELPDESK_ENV", "production")
    monkeypatch.setenv("HELPDESK_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("HELPDESK_PUBLIC_URL", "https://help.example.com")
    _production_servers(monkeypatch)
    assert from_environment()["REDIS_URL"] == "redis://redis.example:6379/0"
    for name in ("DATABASE_URL", "REDIS_URL"):
        _production_servers(monkeypatch)
        monkeypatch.delenv(name)
        with pytest.raises(RuntimeError, match=f"{name} must be set"):
            from_environment()


def test_production_requires_a_public_url(monkeypatch):
    from helpdesk.config import from_environment

    monkeypatch.setenv("HELPDESK_ENV", "production")
    monkeypatch.setenv("HELPDESK_SECRET_KEY", "k" * 32)
    monkeypatch.delenv("HELPDESK_PUBLIC_URL", raising=False)
    _production_servers(monkeypatch)
    with pytest.raises(RuntimeError, match="HELPDESK_PUBLIC_URL is required"):
        from_environment()
    monkeypatch.setenv("HELPDESK_PUBLIC_URL", "https://help.example.com/")
    assert from_environment()["PUBLIC_URL"] == "https://help.example.com"


def test_private_callbacks_are_refused_by_default_in_production_only(monkeypatch):
    """A developer's local stand-in of an integrator's server receives callbacks; a
    production deployment refuses private addresses unless told otherwise."""
    from helpdesk.config import from_environment

    monkeypatch.setenv("HELPDESK_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("HELPDESK_PUBLIC_URL", "https://help.example.com")
    _production_servers(monkeypatch)
    monkeypatch.delenv("HELPDESK_ALLOW_PRIVATE_CALLBACKS", raising=False)
    for env, unset in (("development", True), ("production", False)):
        monkeypatch.setenv("HELPDESK_ENV", env)
        monkeypatch.delenv("HELPDESK_ALLOW_PRIVATE_CALLBACKS", raising=False)
        assert from_environment()["ALLOW_PRIVATE_CALLBACKS"] is unset, env
        monkeypatch.setenv("HELPDESK_ALLOW_PRIVATE_CALLBACKS", "1")
        assert from_environment()["ALLOW_PRIVATE_CALLBACKS"] is True, env
        monkeypatch.setenv("HELPDESK_ALLOW_PRIVATE_CALLBACKS", "0")
        assert from_environment()["ALLOW_PRIVATE_CALLBACKS"] is False, env
        monkeypatch.setenv("HELPDESK_ALLOW_PRIVATE_CALLBACKS", "true")  # (was read as 0)
        assert from_environment()["ALLOW_PRIVATE_CALLBACKS"] is True, env


def test_webhooks_past_the_channels_rate_are_429_and_not_stored(app, api, monkeypatch):
    """Per channel (`HELPDESK_WEBHOOK_RATE`): past the limit the provider is told to retry
    later (429 with Retry-After) and nothing of the refused delivery is stored."""
    monkeypatch.setitem(app.config, "WEBHOOK_RATE", "3/minute")
    channel = factories.channel(app, "api")
    answers = [api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}"))
               for n in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    with app.app_context():
        stored = db.session.execute(select(Delivery.dedupe_key)).scalars().all()
    assert sorted(stored) == ["event:e0", "event:e1", "event:e2"]


def test_api_answers_are_kept_by_no_cache(api, admin):
    """A customer's export, the metrics CSV: personal data no browser or proxy may keep."""
    customer = api.as_(admin).post("/api/v1/customers", json={
        "name": "Ana", "identities": [{"kind": "email", "value": "ana@example.com"}]}).json()
    for path in (f"/api/v1/customers/{customer['id']}/export", "/api/v1/metrics/summary.csv",
                 "/api/v1/queue"):
        response = api.as_(admin).get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path
