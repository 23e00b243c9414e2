"""DESIGN.md: `solved` → `closed`, no reopen after the reopen window. Within the window a
solved ticket can be reopened; after it an agent can only close it, the sweeper closes it,
and the customer's next message opens a new ticket linked to it."""

from __future__ import annotations

import time

import pytest

from helpdesk.queues import redis_connection
from tests.support import factories
from tests.support.live import api_message

WINDOW_SECONDS = 1


@pytest.fixture
def solved(app, api, agent, drain):
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", text="my parcel is lost",
                                              email="lost@example.com"))
    drain("ingest")
    ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
    solved = api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "solved"})
    assert solved.status_code == 200 and solved.json()["status"] == "solved"
    return channel, solved.json()


def _past_the_window(app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "REOPEN_WINDOW_SECONDS", WINDOW_SECONDS)
    time.sleep(WINDOW_SECONDS + 0.2)


def _sweep(app) -> None:
    """One sweeper pass, as a worker's sweeper thread runs it."""
    from workers.worker import SWEEP_LOCK, sweep_once

    redis_connection(app).delete(SWEEP_LOCK)
    sweep_once(app)


def test_within_the_window_an_agent_reopens_a_solved_ticket(api, agent, solved):
    _channel, ticket = solved
    reopened = api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "open"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"


def test_after_the_window_a_solved_ticket_can_only_be_closed(app, api, agent, solved,
                                                              monkeypatch):
    _channel, ticket = solved
    _past_the_window(app, monkeypatch)
    path = f"/api/v1/tickets/{ticket['id']}"
    for status in ("open", "pending"):
        refused = api.as_(agent).patch(path, json={"status": status})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "reopen_window_passed"
    assert api.as_(agent).get(path).json()["status"] == "solved"
    closed = api.as_(agent).patch(path, json={"status": "closed"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"


def test_the_sweeper_closes_solved_tickets_after_the_window_and_the_figures_stay(
        app, api, agent, supervisor, solved, drain, monkeypatch):
    channel, ticket = solved
    path = f"/api/v1/tickets/{ticket['id']}"
    figures = ("tickets_created", "tickets_solved", "backlog", "flr_rate", "fcr_rate")

    def summary() -> dict:
        totals = api.as_(supervisor).get("/api/v1/metrics/summary").json()["totals"]
        return {name: totals[name] for name in figures}

    before = summary()
    assert before["tickets_solved"] == 1 and before["backlog"] == 0
    _sweep(app)  # within the window: nothing to close
    assert api.as_(agent).get(path).json()["status"] == "solved"

    _past_the_window(app, monkeypatch)
    _sweep(app)
    after = api.as_(agent).get(path).json()
    assert after["status"] == "closed" and after["solved_at"] == ticket["solved_at"]
    assert summary() == before  # closing a solved ticket is not another solve
    timeline = api.as_(agent).get(f"/api/v1/customers/{ticket['customer']['id']}/timeline")
    changes = [item["event"]["data"] for item in timeline.json()["items"]
               if item["type"] == "event" and item["event"]["name"] == "status.changed"]
    assert changes[-1] == {"from": "solved", "to": "closed"}
    refused = api.as_(agent).patch(path, json={"status": "open"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "ticket_closed"

    api.post_api_webhook(channel, api_message("e2", "m2", text="it is still lost",
                                              email="lost@example.com"))
    drain("ingest")
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    follow_up = next(item for item in tickets if item["id"] != ticket["id"])
    assert follow_up["status"] == "new"
    assert follow_up["previous_ticket_id"] == ticket["id"]


def test_a_conversations_next_message_after_its_ticket_closed_links_to_it(app, api, agent,
                                                                          drain):
    """A conversation with a thread of its own (an `api` thread, a chat session): once its
    ticket is closed, the next message opens a new ticket linked to it, as an email reply
    or a messaging message does."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", thread_id="order-77", text="hi"))
    drain("ingest")
    ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
    path = f"/api/v1/tickets/{ticket['id']}"
    assert api.as_(agent).patch(path, json={"status": "closed"}).status_code == 200
    api.post_api_webhook(channel, api_message("e2", "m2", thread_id="order-77", text="again"))
    drain("ingest")
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    follow_up = next(item for item in tickets if item["id"] != ticket["id"])
    assert (follow_up["status"], follow_up["previous_ticket_id"]) == ("new", ticket["id"])
    api.post_api_webhook(channel, api_message("e3", "m3", thread_id="order-77", text="more"))
    drain("ingest")
    assert len(api.as_(agent).get("/api/v1/tickets").json()["items"]) == 2  # joins the new one


def test_a_message_soon_after_the_solve_reopens_the_ticket(app, api, agent, drain):
    """The threading window (24 h) counts from the ticket's last activity, and solving it is
    activity: written 23 h after the first message, solved then, answered 2 h later, the
    customer's message reopens the ticket rather than opening another."""
    from datetime import UTC, datetime, timedelta

    import time_machine

    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    channel = factories.channel(app, "api")
    with time_machine.travel(start, tick=False) as clock:
        api.post_api_webhook(channel, api_message("e1", "m1", email="late@example.com"))
        drain("ingest")
        ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
        clock.move_to(start + timedelta(hours=23))
        path = f"/api/v1/tickets/{ticket['id']}"
        assert api.as_(agent).patch(path, json={"status": "solved"}).status_code == 200
        clock.move_to(start + timedelta(hours=25))
        api.post_api_webhook(channel, api_message("e2", "m2", email="late@example.com",
                                                  text="It is broken again"))
        drain("ingest")
        tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert [(t["id"], t["status"]) for t in tickets] == [(ticket["id"], "open")]


def test_a_message_joins_the_customers_open_ticket_not_the_one_just_solved(app, api, agent,
                                                                         drain):
    """A customer with an open ticket and another solved a moment ago: their next message
    (no thread of its own) went to the solved one, the latest active, and reopened it; its
    answer then went out on that ticket's channel."""
    channel = factories.channel(app, "api")
    email = "two@example.com"
    api.post_api_webhook(channel, api_message("e1", "m1", email=email, thread_id="order-1"))
    api.post_api_webhook(channel, api_message("e2", "m2", email=email, thread_id="order-2"))
    drain("ingest")
    first, second = sorted(t["id"] for t in api.as_(agent).get("/api/v1/tickets").json()["items"])
    assert api.as_(agent).patch(f"/api/v1/tickets/{second}",
                                json={"status": "solved"}).status_code == 200
    api.post_api_webhook(channel, api_message("e3", "m3", email=email,
                                              text="Any news on my order?"))
    drain("ingest")
    news = [m for m in api.as_(agent).get(f"/api/v1/tickets/{first}").json()["messages"]
            if m["text"] == "Any news on my order?"]
    assert len(news) == 1
    assert api.as_(agent).get(f"/api/v1/tickets/{second}").json()["status"] == "solved"
