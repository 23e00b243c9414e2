"""Issue 12 item 4: bad input on authenticated routes is a 400 (or 404), never a 5xx.

NUL and lone surrogates in any text field or query parameter, numbers beyond what a column
holds, and digits that are not ASCII all once reached the database (500 on PostgreSQL).
"""

from __future__ import annotations

import json

import pytest

from tests.support import factories
from tests.support.live import api_message

BAD_TEXT = ["a\u0000b", "a\ud800b"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def ticket(app, api, drain):
    channel = factories.channel(app, "api")
    assert api.post_api_webhook(channel, api_message()).status_code == 200
    drain()
    return channel


def send(client, method: str, path: str, body: dict):
    return client.request(method, path, data=json.dumps(body).encode(), headers=dict(JSON))


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_text_fields_refuse_nul_and_surrogates(app, api, admin, ticket, bad):
    client = api.as_(admin)
    ticket_id = client.get("/api/v1/tickets").json()["items"][0]["id"]
    customer_id = client.get("/api/v1/customers").json()["items"][0]["id"]
    cases = [
        ("POST", "/api/v1/customers", {"name": bad, "identities": []}),
        ("POST", "/api/v1/customers", {"name": "Ana", "identities": [
            {"kind": "email", "value": bad}]}),
        ("POST", f"/api/v1/tickets/{ticket_id}/messages", {"text": bad}),
        ("PATCH", f"/api/v1/tickets/{ticket_id}", {"contact_reason": bad}),
        ("PATCH", f"/api/v1/tickets/{ticket_id}", {"tags": ["ok", bad]}),
        ("POST", f"/api/v1/tickets/{ticket_id}/escalate", {"level": 2, "reason": bad}),
        ("POST", "/api/v1/teams", {"name": bad}),
        ("POST", "/api/v1/channels", {"name": bad, "kind": "api", "provider": "api",
                                      "secrets": {"signing_secret": "x"}}),
        ("POST", "/api/v1/agents", {"email": "b@example.com", "name": bad}),
        ("PATCH", "/api/v1/settings", {"contact_reasons": [bad]}),
        ("POST", f"/api/v1/customers/{customer_id}/merge", {bad: 1}),
    ]
    for method, path, body in cases:
        response = send(client, method, path, body)
        assert response.status_code == 400, (method, path, body, response.text)
        assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("query", [
    "/api/v1/tickets?q=a%00b", "/api/v1/customers?identity=email:a%00b@example.com",
    "/api/v1/tickets?page=10000000000000000000", "/api/v1/tickets?assignee=%C2%B2",
    "/api/v1/tickets?assignee=99999999999999999999", "/api/v1/tickets?channel=99999999999",
    "/api/v1/customers?per_page=5&page=99999999999", "/api/v1/deliveries?channel=9999999999",
    "/api/v1/audit?subject_id=99999999999", "/api/v1/surveys?ticket=99999999999",
    "/api/v1/metrics/summary?from=9990-01-01&to=9999-12-31&group_by=day",
    "/api/v1/metrics/summary?from=1000-01-01&to=3000-01-01",
    "/api/v1/metrics/contact-reasons?from=a%00&to=b",
    "/api/v1/tickets?assignee=" + "9" * 5000,  # (int() refuses over 4,300 digits)
    "/api/v1/metrics/summary?from=0001-01-01T00:00:00%2B01:00&to=0001-01-02",
    "/api/v1/metrics/summary?from=9999-12-31&to=9999-12-31",
])
def test_query_parameters_out_of_range_are_400(api, admin, query):
    response = api.as_(admin).get(query)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("path", ["/api/v1/tickets/99999999999999999999",
                                  "/api/v1/customers/9999999999/timeline",
                                  "/api/v1/channels/99999999999"])
def test_ids_beyond_any_row_are_404(api, admin, path):
    assert api.as_(admin).get(path).status_code == 404
    # ... once the token is checked: without one, 401 as for any id (API.md)
    assert api.get(path).status_code == 401


@pytest.mark.parametrize("body", [
    {"first_response_seconds": 10**12}, {"resolution_seconds": 1e12},
    {"first_response_seconds": 10**40},
])
def test_sla_policy_beyond_the_column_is_400(api, admin, body):
    response = send(api.as_(admin), "PUT", "/api/v1/sla-policies/high", body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("body", [{"assignee_id": 10**12}, {"assignee_id": 2**63}])
def test_ticket_assignee_beyond_the_column_is_400(api, admin, ticket, body):
    client = api.as_(admin)
    ticket_id = client.get("/api/v1/tickets").json()["items"][0]["id"]
    assert send(client, "PATCH", f"/api/v1/tickets/{ticket_id}", body).status_code == 400
    response = send(client, "POST", "/api/v1/customers/1/merge", {"other_id": 10**12})
    assert response.status_code == 400
    response = send(client, "PATCH", f"/api/v1/agents/{admin.id}", {"team_id": 10**12})
    assert response.status_code == 400


def test_metrics_in_year_9999_answer(api, admin):
    response = api.as_(admin).get("/api/v1/metrics/summary?from=9999-01-01&to=9999-12-31"
                                  "&group_by=day")
    assert response.status_code == 200 and len(response.json()["groups"]) == 364


@pytest.mark.parametrize("query", [
    "from=9999-12-31T01:00:00&to=9999-12-31T02:00:00",
    "from=9999-12-05&to=9999-12-31T23:00:00&group_by=day",
    "from=0001-01-01T00:00:00&to=0001-01-01T05:00:00",
])
def test_metrics_at_the_ends_of_the_calendar_answer(api, admin, query):
    for path in ("/api/v1/metrics/summary", "/api/v1/metrics/contact-reasons",
                 "/api/v1/metrics/summary.csv"):
        asked = query.replace("&group_by=day", "") if "reasons" in path else query
        response = api.as_(admin).get(f"{path}?{asked}")
        assert response.status_code == 200, (path, response.text)
    assert api.as_(admin).get(f"/api/v1/metrics/summary?{query}").json()["totals"][
        "tickets_created"] == 0


@pytest.mark.parametrize("body", [{"level": "3"}, {"level": 3.0}, {"active": "no"},
                                  {"active": 0}, {"active": "off"}])
def test_an_agents_level_and_activity_take_json_numbers_and_booleans_only(api, admin, body):
    """A string or a number where JSON's true/false belongs deactivated the agent (and
    revoked their tokens); a level as text was read as a number."""
    agent = api.as_(admin).post("/api/v1/agents", json={
        "email": "typed@example.com", "name": "Typed"}).json()
    response = api.as_(admin).patch(f"/api/v1/agents/{agent['id']}", json=body)
    assert response.status_code == 400, response.text
    assert set(body) <= set(response.json()["error"]["fields"])
    after = [a for a in api.as_(admin).get("/api/v1/agents").json()["items"]
             if a["id"] == agent["id"]]
    assert (after[0]["active"], after[0]["level"]) == (True, 1)
    created = api.as_(admin).post("/api/v1/agents", json={
        "email": "typed2@example.com", "name": "Typed 2", **body})
    assert created.status_code == 400, created.text


@pytest.mark.parametrize("body", [
    {"text": "Thanks, sorted", "internal": "no"}, {"text": "Thanks, sorted", "internal": 0},
    {"text": "Thanks, sorted", "internal": "true"}, {"text": "Thanks, sorted", "internal": None},
    {"text": "   "}, {"text": "\n\t"}])
def test_a_reply_takes_json_booleans_and_some_text(api, admin, ticket, body):
    """`"internal": "no"` was read as false and the note went out to the customer as a
    reply; a blank text sent the customer an empty-looking message."""
    ticket_id = api.as_(admin).get("/api/v1/tickets").json()["items"][0]["id"]
    response = api.as_(admin).post(f"/api/v1/tickets/{ticket_id}/messages", json=body)
    assert response.status_code == 400, response.text
    assert set(body) & set(response.json()["error"]["fields"])
    messages = api.as_(admin).get(f"/api/v1/tickets/{ticket_id}").json()["messages"]
    assert [m["direction"] for m in messages] == ["inbound"]  # nothing stored, nothing sent


def test_an_escalation_needs_a_reason_that_is_not_blank(api, admin, ticket):
    ticket_id = api.as_(admin).get("/api/v1/tickets").json()["items"][0]["id"]
    response = api.as_(admin).post(f"/api/v1/tickets/{ticket_id}/escalate",
                                   json={"level": 2, "reason": "  "})
    assert response.status_code == 400, response.text
    assert "reason" in response.json()["error"]["fields"]
    assert api.as_(admin).get(f"/api/v1/tickets/{ticket_id}").json()["level"] == 1


@pytest.mark.parametrize("identity", ["pager:1", "phone:call me", "email:", "email:not-an-email",
                                      "telegram:   "])
def test_looking_up_a_customer_by_an_impossible_identity_is_400(api, admin, identity):
    """As at POST /customers: an unknown kind or a value no identity of its kind can hold
    is a 400 naming `identity`, not an empty list that reads as 'nobody'."""
    response = api.as_(admin).get("/api/v1/customers", params={"identity": identity})
    assert response.status_code == 400, response.text
    assert "identity" in response.json()["error"]["fields"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_numbers_that_json_does_not_have_are_400(api, admin, number):
    """Python reads NaN, Infinity and 1e999 (as infinity): PostgreSQL refused them in a JSON
    column (500) and SQLite stored them, written back as a bare `Infinity` no browser reads."""
    raw = (b'{"name": "Mail", "kind": "email", "provider": "raw_mime", '
           b'"settings": {"address": ' + number.encode() + b'}}')
    response = api.as_(admin).request("POST", "/api/v1/channels", data=raw, headers=dict(JSON))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
    assert number in response.json()["error"]["message"]
    listing = api.as_(admin).get("/api/v1/channels")
    assert json.loads(listing.text, parse_constant=pytest.fail)["total"] == 0


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/v1/agents", {"email": "blank@example.com", "name": "   "}),
    ("PATCH", "/api/v1/agents/{agent}", {"name": "\t"}),
    ("POST", "/api/v1/customers", {"name": " ", "identities": [
        {"kind": "email", "value": "blank@example.com"}]}),
])
def test_names_of_people_are_not_blank(api, admin, agent, method, path, body):
    """A blank agent's or customer's name was stored (channels' and teams' names were
    refused): the agents board and the customer panel showed nobody."""
    response = api.as_(admin).request(method, path.format(agent=agent.id), json=body)
    assert response.status_code == 400, response.text
    assert "name" in response.json()["error"]["fields"]
    names = {a["name"] for a in api.as_(admin).get("/api/v1/agents").json()["items"]}
    assert all(name.strip() for name in names)
