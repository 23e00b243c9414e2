"""SLA: deadlines from policies, exact timers at the warning point and the deadline, pauses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import SlaPolicy, Ticket, TicketEvent
from tests.support import factories
from tests.support.live import api_message

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


def put_policy(api, admin, first=3600, resolution=4 * 3600, **extra):
    for priority in ("low", "normal", "high", "urgent"):
        response = api.as_(admin).put(f"/api/v1/sla-policies/{priority}", json={
            "first_response_seconds": first, "resolution_seconds": resolution, **extra})
        assert response.status_code == 200, response.text


def event_names(app, ticket_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.execute(select(TicketEvent.name).where(
            TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)).scalars())


def test_deadlines_and_timers_fire_at_the_right_moments(app, api, admin, fire_due_timers,
                                                        drain):
    put_policy(api, admin)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        api.post_api_webhook(channel, api_message(text="hello, question about my order"))
        drain()
        ticket = api.as_(admin).get("/api/v1/tickets").json()["items"][0]
        due = datetime.fromisoformat(ticket["sla"]["first_response_due_at"])
        assert due == T0 + timedelta(hours=1)
        assert datetime.fromisoformat(ticket["sla"]["resolution_due_at"]) == T0 + timedelta(
            hours=4)

        clock.move_to(T0 + timedelta(minutes=47))
        fire_due_timers()
        assert "sla.warning" not in event_names(app, ticket["id"])

        clock.move_to(T0 + timedelta(minutes=48, seconds=1))  # 80% of the hour
        fire_due_timers()
        assert event_names(app, ticket["id"]).count("sla.warning") == 1
        assert "sla.breached" not in event_names(app, ticket["id"])

        clock.move_to(T0 + timedelta(hours=1, seconds=1))
        fire_due_timers()
        after = api.as_(admin).get(f"/api/v1/tickets/{ticket['id']}").json()
        assert after["sla"]["breached"] is True
        assert "sla" in {reason["factor"] for reason in after["urgency_reasons"]}
        assert after["priority"] in ("high", "urgent")
        assert event_names(app, ticket["id"]).count("sla.breached") == 1


def test_a_message_processed_late_counts_from_when_it_reached_us(app, api, admin, drain):
    """Stored at 09:00, processed at 09:40 (the worker down, Redis away, a replay): the
    ticket's clocks start at 09:00, and a message that says nothing of when it was sent is
    dated 09:00 too (both were the processing time: the customer's 40 minutes were lost)."""
    put_policy(api, admin)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        assert api.post_api_webhook(channel, api_message(text="hello?")).status_code == 200
        clock.move_to(T0 + timedelta(minutes=40))
        drain()
        (ticket,) = api.as_(admin).get("/api/v1/tickets").json()["items"]
        assert datetime.fromisoformat(ticket["created_at"]) == T0
        assert datetime.fromisoformat(ticket["sla"]["first_response_due_at"]) == (
            T0 + timedelta(hours=1))
        (message,) = api.as_(admin).get(f"/api/v1/tickets/{ticket['id']}").json()["messages"]
        assert datetime.fromisoformat(message["created_at"]) == T0
        with app.app_context():
            opened = db.session.execute(select(TicketEvent.created_at).where(
                TicketEvent.ticket_id == ticket["id"],
                TicketEvent.name == "ticket.created")).scalar_one()
        assert opened == T0


def test_a_met_deadline_fires_nothing(app, api, admin, agent, fire_due_timers, drain):
    put_policy(api, admin)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        api.post_api_webhook(channel, api_message())
        drain()
        ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
        clock.move_to(T0 + timedelta(minutes=10))
        api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/messages", json={"text": "On it"})
        clock.move_to(T0 + timedelta(hours=1, minutes=1))
        fire_due_timers()
    names = event_names(app, ticket["id"])
    assert "sla.warning" not in names and "sla.breached" not in names


def _first_message(api, agent, drain, channel) -> int:
    """The customer's first message on thread "t", processed: its ticket's id."""
    api.post_api_webhook(channel, api_message("e1", "m1", thread_id="t"))
    drain()
    return api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]


def test_pending_pauses_the_resolution_clock(app, api, admin, agent, drain):
    put_policy(api, admin)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _first_message(api, agent, drain, channel)
        api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                            json={"text": "Can you send a photo?", "status": "pending"})
        clock.move_to(T0 + timedelta(minutes=90))
        api.post_api_webhook(channel, api_message("e2", "m2", thread_id="t", text="photo"))
        drain()
        ticket = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    assert ticket["status"] == "open"
    assert datetime.fromisoformat(ticket["sla"]["resolution_due_at"]) == T0 + timedelta(
        hours=5, minutes=30)


def test_time_solved_does_not_count_when_the_ticket_is_reopened(app, api, admin, agent,
                                                                 fire_due_timers, drain):
    """Solved after 1 h of a 4 h target, reopened by the customer two days later: the
    resolution deadline moves by the time it was solved (3 h left, not breached at once);
    an agent's reopen does the same."""
    put_policy(api, admin)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _first_message(api, agent, drain, channel)
        path = f"/api/v1/tickets/{ticket_id}"
        clock.move_to(T0 + timedelta(hours=1))
        api.as_(agent).post(f"{path}/messages", json={"text": "Done!", "status": "solved"})
        reopened_at = T0 + timedelta(days=2)
        clock.move_to(reopened_at)
        api.post_api_webhook(channel, api_message("e2", "m2", thread_id="t", text="not yet"))
        drain()
        fire_due_timers()
        ticket = api.as_(agent).get(path).json()
        assert ticket["status"] == "open" and ticket["sla"]["breached"] is False
        assert datetime.fromisoformat(ticket["sla"]["resolution_due_at"]) == (
            reopened_at + timedelta(hours=3))
        assert "sla.breached" not in event_names(app, ticket_id)
        clock.move_to(reopened_at + timedelta(hours=1))
        api.as_(agent).patch(path, json={"status": "solved"})
        clock.move_to(reopened_at + timedelta(hours=5))
        assert api.as_(agent).patch(path, json={"status": "open"}).status_code == 200
        ticket = api.as_(agent).get(path).json()
        assert datetime.fromisoformat(ticket["sla"]["resolution_due_at"]) == (
            reopened_at + timedelta(hours=5) + timedelta(hours=2))
        clock.move_to(reopened_at + timedelta(hours=7, seconds=1))
        fire_due_timers()
        assert api.as_(agent).get(path).json()["sla"]["breached"] is True
        # solved, then closed days later: closing is no reopen, the deadline stays put
        api.as_(agent).patch(path, json={"status": "solved"})
        due = api.as_(agent).get(path).json()["sla"]["resolution_due_at"]
        clock.move_to(reopened_at + timedelta(days=3))
        assert api.as_(agent).patch(path, json={"status": "closed"}).status_code == 200
        assert api.as_(agent).get(path).json()["sla"]["resolution_due_at"] == due


def test_business_hours_calendar_moves_deadlines_past_the_weekend(app, api, admin, drain):
    put_policy(api, admin, first=2 * 3600, calendar={
        "timezone": "UTC", "hours": {d: [["09:00", "17:00"]] for d in
                                     ("mon", "tue", "wed", "thu", "fri")}})
    channel = factories.channel(app, "api")
    friday_4pm = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    with time_machine.travel(friday_4pm, tick=False):
        api.post_api_webhook(channel, api_message())
        drain()
    ticket = api.as_(admin).get("/api/v1/tickets").json()["items"][0]
    assert datetime.fromisoformat(ticket["sla"]["first_response_due_at"]) == datetime(
        2026, 11, 30, 10, 0, tzinfo=UTC)


def test_the_warning_point_counts_business_hours_too(app, api, admin, drain,
                                                     fire_due_timers):
    """A quarter of two business hours from Friday 16:00 is Friday 16:30, not a quarter of
    the wall-clock time before Monday's 10:00 deadline (Monday 08:30)."""
    put_policy(api, admin, first=2 * 3600, warning_ratio=0.25, calendar={
        "timezone": "UTC", "hours": {d: [["09:00", "17:00"]] for d in
                                     ("mon", "tue", "wed", "thu", "fri")}})
    channel = factories.channel(app, "api")
    friday_4pm = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    with time_machine.travel(friday_4pm, tick=False) as clock:
        api.post_api_webhook(channel, api_message())
        drain()
        ticket = api.as_(admin).get("/api/v1/tickets").json()["items"][0]
        clock.move_to(friday_4pm + timedelta(minutes=29))
        fire_due_timers()
        assert "sla.warning" not in event_names(app, ticket["id"])
        clock.move_to(friday_4pm + timedelta(minutes=30, seconds=1))
        with app.app_context():  # the sweep's rebuild (a timer lost with Redis) agrees
            from helpdesk.services.sla import clocks

            assert [(t, c) for t, c, _due in clocks.warnings_due()] == [
                (ticket["id"], "first_response")]
        fire_due_timers()
        assert event_names(app, ticket["id"]).count("sla.warning") == 1


def test_policy_validation(api, admin, agent):
    assert api.as_(agent).put("/api/v1/sla-policies/normal",
                              json={"first_response_seconds": 60}).status_code == 403
    assert api.as_(admin).put("/api/v1/sla-policies/whenever",
                              json={"first_response_seconds": 60}).status_code == 404
    bad = api.as_(admin).put("/api/v1/sla-policies/normal", json={
        "first_response_seconds": 60, "calendar": {"timezone": "Mars/Olympus", "hours": {}}})
    assert bad.status_code == 400 and "calendar" in bad.json()["error"]["fields"]
    empty = api.as_(admin).put("/api/v1/sla-policies/normal", json={})
    assert empty.status_code == 400


def test_real_timer_with_a_worker_process_emits_warning_and_breach(
        app, api, admin, sockets, redis_url, database_url):
    put_policy(api, admin, first=3, resolution=3600, warning_ratio=0.5)
    channel = factories.channel(app, "api")
    supervisor_socket = sockets(admin.token)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "HELPDESK_DATA_DIR": app.config["DATA_DIR"]}
    worker = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "worker"], env=env,
                              start_new_session=True)
    try:
        # A running system: the ticket's clocks start when the message reaches us, so a
        # worker still starting up (seconds on a busy machine) would take the 1.5 s to
        # the warning with it.
        from rq import Worker

        from helpdesk.queues import redis_connection

        deadline = time.monotonic() + 30
        while not Worker.all(connection=redis_connection(app)):
            assert worker.poll() is None and time.monotonic() < deadline, "no worker"
            time.sleep(0.1)
        api.post_api_webhook(channel, api_message(text="hello, question about my order"))
        warning = supervisor_socket.wait_for("sla.warning", timeout=20)
        breached = supervisor_socket.wait_for("sla.breached", timeout=20)
    finally:
        worker.terminate()
        worker.wait(20)
    assert warning["data"]["clock"] == "first_response"
    assert breached["data"]["clock"] == "first_response"
    assert breached["data"]["ticket"]["sla"]["breached"] is True
    warned_at = datetime.fromisoformat(warning["at"])
    breached_at = datetime.fromisoformat(breached["at"])
    due = datetime.fromisoformat(breached["data"]["due_at"])
    assert abs((breached_at - due).total_seconds()) < 3  # exact timers, not a sweep
    assert breached_at - warned_at > timedelta(seconds=0.5)


def test_a_policy_in_use_cannot_be_deleted(app, api, admin, drain):
    put_policy(api, admin)
    assert api.as_(admin).delete("/api/v1/sla-policies/urgent").status_code == 204
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message(text="hello"))
    drain()
    with app.app_context():
        ticket = db.session.execute(select(Ticket)).scalar_one()
        used = db.session.get(SlaPolicy, ticket.sla_policy_id).priority
    answer = api.as_(admin).delete(f"/api/v1/sla-policies/{used}")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "policy_in_use"
    listed = api.as_(admin).get("/api/v1/sla-policies").json()["items"]
    assert used in {policy["priority"] for policy in listed}


@pytest.mark.parametrize("calendar", [
    {"timezone": "America", "hours": {"mon": [["09:00", "17:00"]]}},  # a zone folder: 500
    {"timezone": "UTC", "hours": {"mon": [["09:00", "09:01"]]}}])  # ten years: year 9999+
def test_a_calendar_whose_deadlines_cannot_be_computed_is_400(api, admin, calendar):
    response = api.as_(admin).put("/api/v1/sla-policies/low", json={
        "first_response_seconds": 3600, "resolution_seconds": 10 * 365 * 86400,
        "calendar": calendar})
    assert response.status_code == 400, response.text
    assert "calendar" in response.json()["error"]["fields"]
    assert api.as_(admin).get("/api/v1/sla-policies").json()["items"] == []


@pytest.mark.parametrize("calendar", [
    {"timezone": "UTC", "hours": {"mon": [["٠٩:٠٠", "17:00"]]}},  # Arabic-Indic digits
    {"timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]}, "holidays": ["20261225"]},
    {"timezone": "Factory", "hours": {"mon": [["09:00", "17:00"]]}}])
def test_a_calendar_outside_its_own_rules_is_400(api, admin, calendar):
    response = api.as_(admin).put("/api/v1/sla-policies/low", json={
        "first_response_seconds": 3600, "calendar": calendar})
    assert response.status_code == 400, response.text
    assert "calendar" in response.json()["error"]["fields"]


@pytest.mark.parametrize("late", ["reply", "solve"])
def test_a_deadline_passed_before_its_timer_fired_is_breached_when_the_clock_stops(
        app, api, admin, agent, fire_due_timers, drain, late):
    """The breach timer behind a backlog (or lost with Redis) and the agent a few seconds
    late: the ticket said `breached: false` and no `sla.breached` was sent, while the
    metrics counted the deadline missed."""
    put_policy(api, admin, first=600, resolution=1200)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        api.post_api_webhook(channel, api_message())
        drain()
        ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
        if late == "reply":
            clock.move_to(T0 + timedelta(minutes=10, seconds=5))
            response = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                                           json={"text": "Sorry for the wait"})
        else:
            clock.move_to(T0 + timedelta(minutes=9))
            assert api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                                       json={"text": "On it"}).status_code == 201
            clock.move_to(T0 + timedelta(minutes=20, seconds=5))
            response = api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                            json={"status": "solved"})
        assert response.status_code in (200, 201), response.text
        after = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
        assert after["sla"]["breached"] is True
        fire_due_timers()  # the late timers find their clock stopped: nothing twice
    assert event_names(app, ticket_id).count("sla.breached") == 1


def test_a_breach_timer_that_fires_early_waits_for_its_deadline(app, api, admin, agent,
                                                               fire_due_timers, drain):
    """RQ keeps a scheduled job's time to the whole second: a deadline at 09:10:00.700 was
    breached at 09:10:00.2, and a reply in between was late on the ticket, on time in the
    metrics."""
    from helpdesk.services.routing import scoring

    put_policy(api, admin, first=600)
    channel = factories.channel(app, "api")
    start = T0 + timedelta(microseconds=700_000)
    with time_machine.travel(start, tick=False) as clock:
        api.post_api_webhook(channel, api_message())
        drain()
        ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
        due = ticket["sla"]["first_response_due_at"]
        assert datetime.fromisoformat(due) == start + timedelta(minutes=10)
        clock.move_to(datetime.fromisoformat(due) - timedelta(milliseconds=500))
        with app.app_context():
            assert scoring.sla_timer(ticket["id"], "first_response", "breach", due) is False
        assert api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()[
            "sla"]["breached"] is False
        clock.move_to(datetime.fromisoformat(due) + timedelta(seconds=2))
        fire_due_timers()
        assert api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()[
            "sla"]["breached"] is True
    assert event_names(app, ticket["id"]).count("sla.breached") == 1


@pytest.mark.parametrize("body, field", [
    ({"first_response_seconds": 1.7}, "first_response_seconds"),
    ({"resolution_seconds": "3600"}, "resolution_seconds"),
    ({"first_response_seconds": 60, "calendar": {
        "timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]},
        "holiday": ["2026-12-25"]}}, "calendar"),
    ({"first_response_seconds": 60, "calendar": {
        "timezone": "UTC", "hours": {"mon": [["09:00", "12:00"]],
                                     "monday": [["13:00", "17:00"]]}}}, "calendar")])
def test_a_policy_says_what_it_means_or_is_refused(api, admin, body, field):
    """A fraction of a second was cut, a number as text read, a misspelt `holiday` gave a
    calendar without holidays, and `mon` beside `monday` silently dropped one of them."""
    response = api.as_(admin).put("/api/v1/sla-policies/normal", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"]


def test_a_changed_policy_leaves_open_tickets_deadlines_and_warnings_alone(
        app, api, admin, agent, fire_due_timers, drain):
    """README: policies apply to tickets created or re-prioritised after the change. A
    pause and its end recomputed the deadline from the new target (breached at once)."""
    from helpdesk.services.routing import scoring

    put_policy(api, admin)  # 1 h to the first response, 4 h to the resolution
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _first_message(api, agent, drain, channel)
        path = f"/api/v1/tickets/{ticket_id}"
        clock.move_to(T0 + timedelta(minutes=5))
        put_policy(api, admin, first=600, resolution=1800)  # 10 and 30 minutes from now on
        clock.move_to(T0 + timedelta(minutes=12))
        assert api.as_(agent).post(f"{path}/messages", json={
            "text": "Could you send a photo?", "status": "pending"}).status_code == 201
        clock.move_to(T0 + timedelta(minutes=40))
        api.post_api_webhook(channel, api_message("e2", "m2", thread_id="t", text="Here"))
        drain()
        ticket = api.as_(agent).get(path).json()
        assert ticket["status"] == "open" and ticket["sla"]["breached"] is False
        assert datetime.fromisoformat(ticket["sla"]["resolution_due_at"]) == (
            T0 + timedelta(hours=4, minutes=28))  # the old target, plus 28 minutes pending
        clock.move_to(T0 + timedelta(hours=1))
        fire_due_timers()
        with app.app_context():
            scoring.sweep_overdue()
        assert "sla.breached" not in event_names(app, ticket_id)


def test_the_sweepers_warning_comes_from_the_tickets_own_deadline(app, api, admin, agent,
                                                                  drain):
    """Its warning timer lost with Redis, a ticket is warned by the sweeper at 80% of the
    target its deadline was computed from: a longer target set since put the warning
    point after the deadline, and no warning came."""
    from helpdesk.queues import redis_connection
    from helpdesk.services.routing import scoring

    put_policy(api, admin, first=600)
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _first_message(api, agent, drain, channel)
        put_policy(api, admin, first=3600)  # for tickets from now on
        with app.app_context():
            redis_connection(app).flushdb()  # the timers, lost
        clock.move_to(T0 + timedelta(minutes=9))
        with app.app_context():
            scoring.sweep_overdue()
    assert event_names(app, ticket_id).count("sla.warning") == 1
