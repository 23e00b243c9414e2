"""Working a ticket through the REST API: change, reply, note, escalate; errors as JSON."""

from __future__ import annotations

import pytest

from tests.support import factories
from tests.support.live import api_message


def test_ticket_resource_has_the_contract_fields(api, agent, ticket):
    body = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    expected = {"id", "subject", "status", "priority", "level", "urgency", "urgency_reasons",
                "language", "assignee_id", "customer_id", "customer", "channel",
                "contact_reason", "tags", "identity_verified", "sla", "created_at",
                "updated_at", "first_response_at", "solved_at", "messages"}
    assert expected <= set(body)
    assert set(body["sla"]) == {"first_response_due_at", "resolution_due_at", "breached"}
    assert set(body["channel"]) == {"id", "kind", "provider", "name"}
    message = body["messages"][0]
    assert {"id", "ticket_id", "direction", "internal", "author", "channel", "text", "html",
            "attachments", "delivery_status", "flags", "created_at"} <= set(message)
    assert message["author"]["type"] == "customer"
    assert message["delivery_status"] == "received"


def test_public_reply_assigns_sets_first_response_and_queues(api, agent, ticket, sockets):
    watcher = sockets(agent.token)
    response = api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/messages",
                                   json={"text": "It ships today", "status": "pending"})
    assert response.status_code == 201
    message = response.json()
    assert message["direction"] == "outbound" and message["internal"] is False
    assert message["delivery_status"] in ("queued", "skipped")
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["assignee_id"] == agent.id
    assert after["status"] == "pending"
    assert after["first_response_at"] is not None
    created = watcher.wait_for("message.created", lambda e: e["data"]["id"] == message["id"])
    assert created["data"]["text"] == "It ships today"


def test_internal_note_is_not_a_first_response(api, agent, ticket):
    response = api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/messages",
                                   json={"text": "customer called twice", "internal": True})
    assert response.status_code == 201 and response.json()["internal"] is True
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["first_response_at"] is None and after["assignee_id"] is None


def test_manual_priority_sticks_and_tags_and_reason_are_saved(api, agent, ticket, drain):
    response = api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}",
                                    json={"priority": "urgent", "tags": ["vip", "parcel", "vip"],
                                          "contact_reason": "delivery"})
    assert response.status_code == 200
    drain("routing")
    body = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert body["priority"] == "urgent"
    assert body["tags"] == ["parcel", "vip"]
    assert body["contact_reason"] == "delivery"


def test_agent_cannot_assign_to_others_but_supervisor_can(api, agent, supervisor, ticket):
    denied = api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}",
                                  json={"assignee_id": supervisor.id})
    assert denied.status_code == 403
    allowed = api.as_(supervisor).patch(f"/api/v1/tickets/{ticket['id']}",
                                        json={"assignee_id": agent.id})
    assert allowed.status_code == 200 and allowed.json()["assignee_id"] == agent.id


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "done"}, "status"), ({"priority": "asap"}, "priority"),
    ({"assignee_id": "7"}, "assignee_id"), ({"unknown": 1}, "unknown"),
    ({"tags": "vip"}, "tags"),
])
def test_invalid_patches_are_400_naming_the_field(api, agent, ticket, body, field):
    response = api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}", json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_non_json_and_malformed_bodies(api, agent, ticket):
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    assert api.as_(agent).post(path, data="text=hi").status_code == 415
    malformed = api.as_(agent).post(path, data="{bad", headers={"Content-Type":
                                                                "application/json"})
    assert malformed.status_code == 400
    assert api.as_(agent).post(path, json={"text": ""}).status_code == 400
    assert api.as_(agent).post(path, json=["text"]).status_code == 400
    # Nothing sent at all (no body, no type): the required fields are missing, a 400
    # naming them (API.md: missing fields included), not a 415 for a type never given.
    empty = api.as_(agent).post(path)
    assert empty.status_code == 400, empty.text
    assert "text" in empty.json()["error"]["fields"]
    login = api.post("/api/v1/auth/login")
    assert login.status_code == 400 and set(login.json()["error"]["fields"]) == {
        "email", "password"}
    # ... while a route with nothing required (a PATCH) keeps its 415: it would act on nothing
    before = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    patched = api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}")
    assert patched.status_code == 415, patched.text
    assert api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json() == before


def test_unknown_ticket_is_404_json(api, agent):
    response = api.as_(agent).get("/api/v1/tickets/987654")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_escalation_unassigns_a_lower_level_agent(api, agent, ticket):
    api.as_(agent).post("/api/v1/queue/next")
    response = api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/escalate",
                                   json={"level": 2, "reason": "refund over limit"})
    assert response.status_code == 200
    assert response.json()["level"] == 2 and response.json()["assignee_id"] is None
    again = api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/escalate",
                                json={"level": 2, "reason": "again"})
    assert again.status_code == 422


def test_an_agent_below_the_tickets_level_may_still_reply(api, agent, ticket):
    """Every role may work any ticket: a level-1 agent answers the ticket they escalated;
    the reply goes out, and the ticket stays in the queue for a level-2 agent."""
    path = f"/api/v1/tickets/{ticket['id']}"
    api.as_(agent).post(f"{path}/escalate", json={"level": 2, "reason": "refund over limit"})
    reply = api.as_(agent).post(f"{path}/messages", json={"text": "A colleague will follow up."})
    assert reply.status_code == 201, reply.text
    assert reply.json()["delivery_status"] == "queued"
    after = api.as_(agent).get(path).json()
    assert after["assignee_id"] is None and after["level"] == 2
    assert after["first_response_at"] is not None


def test_list_filters_and_pagination(app, api, agent, drain):
    channel = factories.channel(app, "api")
    for n in range(5):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text=f"topic {n}",
                                                  email=f"p{n}@example.com"))
    drain("ingest")
    page = api.as_(agent).get("/api/v1/tickets?per_page=2&page=2").json()
    assert page["total"] == 5 and page["page"] == 2 and page["per_page"] == 2
    assert len(page["items"]) == 2
    found = api.as_(agent).get("/api/v1/tickets?q=TOPIC 3").json()
    assert [t["subject"] for t in found["items"]] == ["topic 3"]
    assert api.as_(agent).get("/api/v1/tickets?per_page=201").status_code == 400
    assert api.as_(agent).get("/api/v1/tickets?status=nope").status_code == 400
    assert api.as_(agent).get("/api/v1/tickets?assignee=none").json()["total"] == 5
    # a form's empty fields (API.md writes `?status=&priority=&…`) are no filter
    everything = api.as_(agent).get("/api/v1/tickets?status=&priority=&assignee=&channel="
                                    "&customer=&q=")
    assert everything.status_code == 200 and everything.json()["total"] == 5


def test_search_takes_percent_underscore_and_backslash_as_written(app, api, agent, drain):
    channel = factories.channel(app, "api")
    for n, text in enumerate(["100% refund", "1000 refund", "a_b path", "axb path",
                              "C:\\temp folder"]):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text=text,
                                                  email=f"w{n}@example.com"))
    drain("ingest")

    def found(q: str) -> list[str]:
        response = api.as_(agent).get("/api/v1/tickets", params={"q": q})
        assert response.status_code == 200, response.text
        return sorted(t["subject"] for t in response.json()["items"])

    assert found("0%") == ["100% refund"]
    assert found("a_b") == ["a_b path"]
    assert found("\\") == ["C:\\temp folder"]
    assert found("c:\\t") == ["C:\\temp folder"]


def test_search_ignores_the_case_of_every_letter(app, api, agent, drain):
    """Not only ASCII's: SQLite's own lower() left "É" and "Ü" as they were."""
    channel = factories.channel(app, "api")
    for n, text in enumerate(["ÉCOLE FERMÉE demain", "Größe ÜBERPRÜFEN", "школа закрыта"]):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text=text,
                                                  email=f"w{n}@example.com"))
    drain("ingest")
    for q, subject in (("école fermée", "ÉCOLE FERMÉE demain"),
                       ("überprüfen", "Größe ÜBERPRÜFEN"), ("ШКОЛА", "школа закрыта")):
        response = api.as_(agent).get("/api/v1/tickets", params={"q": q})
        assert [t["subject"] for t in response.json()["items"]] == [subject], q


def test_a_ticket_does_not_go_back_to_new_and_a_blank_reason_is_refused(api, agent, ticket):
    path = f"/api/v1/tickets/{ticket['id']}"
    assert api.as_(agent).patch(path, json={"status": "open"}).status_code == 200
    back = api.as_(agent).patch(path, json={"status": "new"})
    assert back.status_code == 422 and back.json()["error"]["code"] == "not_new"
    for blank in ("", "   "):
        refused = api.as_(agent).patch(path, json={"contact_reason": blank})
        assert refused.status_code == 400
        assert "contact_reason" in refused.json()["error"]["fields"]
    assert api.as_(agent).patch(path, json={"contact_reason": None}).status_code == 200
    assert api.as_(agent).get(path).json()["status"] == "open"


def test_a_tickets_messages_and_the_contact_reasons_come_in_pages(app, api, agent, admin,
                                                                 ticket):
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    for n in range(4):
        api.as_(agent).post(path, json={"text": f"note {n}", "internal": True})
    first = api.as_(agent).get(path, params={"per_page": 2}).json()
    assert (first["page"], first["per_page"], first["total"]) == (1, 2, 5)
    assert [m["text"] for m in first["items"]] == ["Where is my parcel?", "note 0"]
    last = api.as_(agent).get(path, params={"per_page": 2, "page": 3}).json()
    assert [m["text"] for m in last["items"]] == ["note 3"]
    assert api.as_(agent).get(path, params={"per_page": 201}).status_code == 400

    reasons = [f"reason {n:03}" for n in range(120)]
    assert api.as_(admin).patch("/api/v1/settings",
                                json={"contact_reasons": reasons}).status_code == 200
    whole = api.as_(agent).get("/api/v1/contact-reasons").json()
    assert whole["items"] == reasons and whole["per_page"] == 200 and whole["total"] == 120
    second = api.as_(agent).get("/api/v1/contact-reasons", params={"per_page": 100,
                                                                   "page": 2}).json()
    assert second["items"] == reasons[100:]
    too_many = api.as_(admin).patch("/api/v1/settings",
                                    json={"contact_reasons": [f"r{n}" for n in range(201)]})
    assert too_many.status_code == 400
