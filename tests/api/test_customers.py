"""Customers: creation with identities, lookup, one timeline across tickets."""

from __future__ import annotations

from tests.support import factories
from tests.support.live import api_message


def test_create_and_find_by_normalized_identity(api, agent):
    created = api.as_(agent).post("/api/v1/customers", json={
        "name": "Ana", "tier": "vip",
        "identities": [{"kind": "email", "value": "Ana@Example.com"},
                       {"kind": "phone", "value": "+34 600 000 000"}]})
    assert created.status_code == 201
    body = created.json()
    assert body["tier"] == "vip"
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("email", "ana@example.com"), ("phone", "+34600000000")}
    found = api.as_(agent).get("/api/v1/customers",
                               params={"identity": "phone:+34600000000"}).json()
    assert [c["id"] for c in found["items"]] == [body["id"]]
    none = api.as_(agent).get("/api/v1/customers", params={"identity": "email:x@y.z"}).json()
    assert none == {"items": [], "page": 1, "per_page": 50, "total": 0}


def test_identity_belongs_to_one_customer(api, agent):
    first = {"name": "Ana", "identities": [{"kind": "email", "value": "ana@example.com"}]}
    assert api.as_(agent).post("/api/v1/customers", json=first).status_code == 201
    second = api.as_(agent).post("/api/v1/customers", json={
        "name": "Other", "identities": [{"kind": "email", "value": "ANA@example.com"}]})
    assert second.status_code == 409


def test_bad_identity_values_are_400(api, agent):
    response = api.as_(agent).post("/api/v1/customers", json={
        "name": "X", "identities": [{"kind": "phone", "value": "call me"}]})
    assert response.status_code == 400
    assert "identities" in response.json()["error"]["fields"]
    kind = api.as_(agent).post("/api/v1/customers", json={
        "name": "X", "identities": [{"kind": "pager", "value": "1"}]})
    assert kind.status_code == 400
    missing = api.as_(agent).post("/api/v1/customers", json={"name": "X"})  # API.md: required
    assert missing.status_code == 400
    assert "identities" in missing.json()["error"]["fields"]


def test_known_customer_gets_new_messages_and_a_time_ordered_timeline(app, api, agent, drain):
    customer = api.as_(agent).post("/api/v1/customers", json={
        "name": "Ana", "identities": [{"kind": "email", "value": "ana@example.com"}]}).json()
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", text="first",
                                              sent_at="2026-11-21T10:00:00Z"))
    api.post_api_webhook(channel, api_message("e2", "m2", text="second",
                                              sent_at="2026-11-21T11:00:00Z"))
    drain("ingest")
    timeline = api.as_(agent).get(f"/api/v1/customers/{customer['id']}/timeline").json()
    messages = [item for item in timeline["items"] if item["type"] == "message"]
    assert [item["message"]["text"] for item in messages] == ["first", "second"]
    assert all(item["channel"]["kind"] == "api" for item in timeline["items"])
    times = [item["at"] for item in timeline["items"]]
    assert times == sorted(times)
    assert any(item["type"] == "event" and item["event"]["name"] == "ticket.created"
               for item in timeline["items"])


def test_the_timeline_holds_agents_notes_and_replies_but_not_their_echo_events(
        app, api, agent, drain):
    """DESIGN.md: every message, call and ticket event of the customer's tickets. An
    internal note is a message on the agents' side of the timeline; `reply.added` and
    `note.added` would only repeat a message that is already an item."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", text="my parcel is lost",
                                              email="lost@example.com"))
    drain("ingest")
    ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
    as_agent = api.as_(agent)
    assert as_agent.post(f"/api/v1/tickets/{ticket['id']}/messages",
                         json={"text": "checked the carrier", "internal": True}).status_code == 201
    assert as_agent.post(f"/api/v1/tickets/{ticket['id']}/messages",
                         json={"text": "we are on it"}).status_code == 201
    customer_id = ticket["customer"]["id"]
    items = as_agent.get(f"/api/v1/customers/{customer_id}/timeline").json()["items"]
    messages = [(item["message"]["text"], item["message"]["internal"])
                for item in items if item["type"] == "message"]
    assert messages == [("my parcel is lost", False), ("checked the carrier", True),
                        ("we are on it", False)]
    names = [item["event"]["name"] for item in items if item["type"] == "event"]
    assert "ticket.created" in names
    assert not {"reply.added", "note.added"} & set(names)


def test_unknown_customer_is_404(api, agent):
    assert api.as_(agent).get("/api/v1/customers/424242").status_code == 404
    assert api.as_(agent).get("/api/v1/customers/424242/timeline").status_code == 404


def test_creating_the_same_identity_at_once_gives_one_customer_and_409s(api, agent):
    """Two integrations (or an integration and a webhook) create the same person at the same
    moment: one wins, the others are told the identity is taken (the loser got a 500)."""
    from concurrent.futures import ThreadPoolExecutor

    def create(n: int) -> int:
        return api.as_(agent).post("/api/v1/customers", json={
            "name": f"Ana {n}", "identities": [{"kind": "email",
                                               "value": "same@example.com"}]}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(8)))
    assert codes == [201] + [409] * 7, codes
