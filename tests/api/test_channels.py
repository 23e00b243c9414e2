"""Channels (admin): secrets are write-only; settings are checked per provider."""

from __future__ import annotations

import json

import pytest


def test_create_returns_key_and_webhook_url_but_never_secrets(api, admin):
    response = api.as_(admin).post("/api/v1/channels", json={
        "name": "CRM", "kind": "api", "provider": "api",
        "settings": {"callback_url": "http://127.0.0.1:9/cb"},
        "secrets": {"signing_secret": "top-secret"}})
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "name", "kind", "provider", "key", "webhook_url", "settings"}
    assert body["webhook_url"].endswith(f"/webhooks/api/{body['key']}")
    assert "top-secret" not in response.text and "secrets" not in body
    listed = api.as_(admin).get("/api/v1/channels")
    assert "top-secret" not in listed.text and listed.json()["total"] == 1


def test_unknown_settings_secrets_and_providers_are_400(api, admin):
    cases = [
        {"name": "x", "kind": "api", "provider": "api", "secrets": {"signing_secret": "s",
                                                                    "extra": "1"}},
        {"name": "x", "kind": "api", "provider": "api", "secrets": {"signing_secret": "s"},
         "settings": {"colour": "red"}},
        {"name": "x", "kind": "api", "provider": "nope"},
        {"name": "x", "kind": "email", "provider": "api", "secrets": {"signing_secret": "s"}},
        {"name": "x", "kind": "api", "provider": "api"},
        {"kind": "api", "provider": "api"},
        # A secret that is not text: every webhook's HMAC then failed with a 500.
        {"name": "x", "kind": "api", "provider": "api", "secrets": {"signing_secret": 12345}},
        {"name": "x", "kind": "email", "provider": "raw_mime",
         "secrets": {"signing_secret": ["s"]}},
    ]
    for body in cases:
        response = api.as_(admin).post("/api/v1/channels", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["fields"], body


API = {"name": "CRM", "kind": "api", "provider": "api", "secrets": {"signing_secret": "s"}}
CHAT = {"name": "Site", "kind": "chat", "provider": "widget"}
MAIL = {"name": "Mail", "kind": "email", "provider": "raw_mime"}


@pytest.mark.parametrize("body, name", [
    # an ftp: callback was stored, and every reply retried for an hour before it failed
    ({**API, "settings": {"callback_url": "ftp://crm.example/cb"}}, "callback_url"),
    ({**API, "settings": {"callback_url": "crm.example/cb"}}, "callback_url"),
    ({**API, "settings": {"callback_url": True}}, "callback_url"),
    # a website no browser's Origin header can equal: CORS never allowed it
    ({**CHAT, "settings": {"website": "https://shop.example.com/help"}}, "website"),
    ({**CHAT, "settings": {"website": {"url": "https://shop.example.com"}}}, "website"),
    ({**API, "settings": {"callback_url": "http://[::1/cb"}}, "callback_url"),  # (was a 500)
    ({**API, "settings": {"callback_url": "http://exa mple.com/cb"}}, "callback_url"),
    ({**API, "settings": {"callback_url": "http://crm.example/cb\r\nX: y"}}, "callback_url"),
    ({**API, "settings": {"callback_url": "https://crm.example:99999/cb"}}, "callback_url"),
    ({**CHAT, "settings": {"website": "https://user:pw@shop.example.com"}}, "website"),
    ({**MAIL, "settings": {"address": "help desk"}}, "address"),
    ({**MAIL, "settings": {"address": "help@"}}, "address"),
    ({**MAIL, "settings": {"address": "@"}}, "address"),
    ({**MAIL, "settings": {"address": ["help@acme.test"]}}, "address"),
])
def test_setting_values_are_checked(api, admin, body, name):
    response = api.as_(admin).post("/api/v1/channels", json=body)
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]["fields"]["settings"], response.text
    assert api.as_(admin).get("/api/v1/channels").json()["total"] == 0


def test_a_change_checks_the_settings_it_changes(api, admin):
    created = api.as_(admin).post("/api/v1/channels", json={
        **CHAT, "settings": {"website": "https://shop.example.com/"}})
    assert created.status_code == 201, created.text
    path = f"/api/v1/channels/{created.json()['id']}"
    refused = api.as_(admin).patch(path, json={"settings": {"website": "shop.example.com"}})
    assert refused.status_code == 400
    renamed = api.as_(admin).patch(path, json={"name": "Shop"})
    assert renamed.status_code == 200 and renamed.json()["settings"] == {
        "website": "https://shop.example.com/"}


def test_patch_and_delete(api, admin, http):
    created = api.as_(admin).post("/api/v1/channels", json={
        "name": "Mail", "kind": "email", "provider": "raw_mime"}).json()
    patched = api.as_(admin).patch(f"/api/v1/channels/{created['id']}",
                                   json={"name": "Support mail",
                                         "settings": {"address": "help@acme.test"}})
    assert patched.status_code == 200
    assert patched.json()["settings"] == {"address": "help@acme.test"}
    assert api.as_(admin).delete(f"/api/v1/channels/{created['id']}").status_code == 204
    assert api.as_(admin).get(f"/api/v1/channels/{created['id']}").status_code == 404
    gone = http.post(f"{api.base_url}/webhooks/raw_mime/{created['key']}", data=b"x",
                     headers={"Content-Type": "message/rfc822"})
    assert gone.status_code == 404


@pytest.mark.parametrize("part", ["settings", "secrets"])
def test_patch_refuses_an_unknown_name_even_with_a_null_value(api, admin, part):
    """API.md: unknown setting or secret names are a 400; a null value (which removes a
    known one) was let through for an unknown name, and its name written to the audit."""
    created = api.as_(admin).post("/api/v1/channels", json={
        "name": "Mail", "kind": "email", "provider": "raw_mime"}).json()
    for value in (None, "x"):
        answer = api.as_(admin).patch(f"/api/v1/channels/{created['id']}",
                                      json={part: {"bogus": value}})
        assert answer.status_code == 400, (value, answer.text)
        assert "bogus" in answer.json()["error"]["fields"][part]


def _webhook(n: int, secret: str) -> tuple[bytes, dict]:
    import time

    from helpdesk.connectors.api import sign

    body = json.dumps({"event_id": f"e{n}", "type": "message", "customer": {"email": "a@b.test"},
                       "message": {"id": f"m{n}", "text": "hi"}}).encode()
    ts = str(int(time.time()))
    return body, {"Content-Type": "application/json", "X-Helpdesk-Timestamp": ts,
                  "X-Helpdesk-Signature": sign(secret, ts, body)}


def test_a_changed_or_deleted_channel_takes_effect_on_the_next_webhook(app, api, admin, http):
    """Web processes remember channels; a change must still count from the next request on,
    in this process and in another one (a second app has a memory of its own)."""
    from helpdesk import create_app

    other = create_app({key: app.config[key] for key in (
        "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "DATA_DIR", "SECRET_KEY")},
        socket_server=False).test_client()
    created = api.as_(admin).post("/api/v1/channels", json={
        "name": "CRM", "kind": "api", "provider": "api",
        "secrets": {"signing_secret": "old"}}).json()
    url = f"/webhooks/api/{created['key']}"
    sequence = iter(range(100))

    def statuses(secret: str) -> tuple[int, int]:
        """(this process, the other one) for a webhook signed with `secret`."""
        body, headers = _webhook(next(sequence), secret)
        here = http.post(api.base_url + url, data=body, headers=headers).status_code
        body, headers = _webhook(next(sequence), secret)
        return here, other.post(url, data=body, headers=headers).status_code

    assert statuses("old") == (200, 200)  # both remember the channel now
    assert api.as_(admin).patch(f"/api/v1/channels/{created['id']}",
                                json={"secrets": {"signing_secret": "new"}}).status_code == 200
    assert statuses("old") == (401, 401)
    assert statuses("new") == (200, 200)
    assert api.as_(admin).delete(f"/api/v1/channels/{created['id']}").status_code == 204
    assert statuses("new") == (404, 404)
