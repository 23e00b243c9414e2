"""Administration: agents, teams, SLA policies and settings as an admin changes them;
what is kept, what is refused (4xx, never 500) and what the audit log says."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("body", [
    {"email": "a" * 400 + "@example.com", "name": "Long"},  # over the column's 320
    {"email": "level@example.com", "name": "Fraction", "level": 1.9},
])
def test_agent_fields_a_column_would_refuse_or_round_are_400(api, admin, body):
    response = api.as_(admin).post("/api/v1/agents", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_agent_changes_are_audited_without_the_password(api, admin):
    created = api.as_(admin).post("/api/v1/agents", json={
        "email": "New@Example.com", "name": "New", "password": "correct horse battery"})
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]
    changed = api.as_(admin).patch(f"/api/v1/agents/{agent_id}", json={
        "role": "supervisor", "name": "New", "password": "another good password"})
    assert changed.status_code == 200, changed.text
    entries = api.as_(admin).get("/api/v1/audit", params={
        "subject_type": "agent", "subject_id": agent_id}).json()["items"]
    assert [e["action"] for e in entries] == ["agent.updated", "agent.created"]
    updated, made = entries
    assert updated["actor_id"] == admin.id and made["actor_id"] == admin.id
    assert updated["data"] == {"changed": ["role", "password"], "role": "supervisor"}
    assert made["data"]["email"] == "new@example.com" and made["data"]["role"] == "agent"
    assert "correct horse" not in str(entries) and "another good" not in str(entries)


def test_teams_refuse_blank_names_and_come_in_pages(api, admin, supervisor):
    blank = api.as_(admin).post("/api/v1/teams", json={"name": "   "})
    assert blank.status_code == 400 and "name" in blank.json()["error"]["fields"]
    for n in range(3):
        assert api.as_(admin).post("/api/v1/teams", json={"name": f"Team {n}"}).status_code == 201
    again = api.as_(admin).post("/api/v1/teams", json={"name": " Team 1 "})
    assert again.status_code == 409
    page = api.as_(supervisor).get("/api/v1/teams", params={"per_page": 2, "page": 2}).json()
    assert (page["page"], page["per_page"], page["total"]) == (2, 2, 3)
    assert [t["name"] for t in page["items"]] == ["Team 2"]
    assert api.as_(supervisor).get("/api/v1/teams", params={"per_page": 201}).status_code == 400


def test_sla_policies_come_in_pages(api, admin, supervisor):
    for priority in ("low", "normal", "high"):
        assert api.as_(admin).put(f"/api/v1/sla-policies/{priority}", json={
            "first_response_seconds": 600, "resolution_seconds": 3600}).status_code == 200
    whole = api.as_(supervisor).get("/api/v1/sla-policies").json()
    assert (whole["page"], whole["per_page"], whole["total"]) == (1, 200, 3)
    second = api.as_(supervisor).get("/api/v1/sla-policies",
                                     params={"per_page": 2, "page": 2}).json()
    assert len(second["items"]) == 1 and second["total"] == 3


def test_a_partial_change_of_capacity_weights_keeps_the_other_kinds(api, admin):
    changed = api.as_(admin).patch("/api/v1/settings", json={"capacity_weights": {"chat": 0.5}})
    assert changed.status_code == 200, changed.text
    weights = api.as_(admin).get("/api/v1/settings").json()["capacity_weights"]
    assert weights == {"voice": 1.0, "chat": 0.5, "default": 0.1}
    dropped = api.as_(admin).patch("/api/v1/settings", json={"capacity_weights": {"chat": None}})
    assert dropped.status_code == 200
    assert api.as_(admin).get("/api/v1/settings").json()["capacity_weights"] == {
        "voice": 1.0, "default": 0.1}
    unknown = api.as_(admin).patch("/api/v1/settings", json={"capacity_weights": {"fax": 0.2}})
    assert unknown.status_code == 400
    assert "capacity_weights" in unknown.json()["error"]["fields"]
