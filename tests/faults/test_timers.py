"""Timers rebuilt from the database: with Redis emptied, SLA warnings and breaches, surveys and
outbound retries still fire (late, once) from what the database stores; a warning whose
deadline has passed is dropped, never sent after the breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from helpdesk import jobs
from helpdesk.extensions import db
from helpdesk.models import Message, Survey, Ticket, TicketEvent
from helpdesk.queues import redis_connection
from tests.support import factories
from tests.support.live import api_message

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _sla_events(app, ticket_id: int) -> list[str]:
    with app.app_context():
        names = list(db.session.execute(select(TicketEvent.name).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.name.like("sla.%"))
            .order_by(TicketEvent.id)).scalars())
        db.session.rollback()
        return names


def _sweep(app) -> None:
    """One sweeper pass, as a worker's sweeper thread runs it (and as a worker starts)."""
    from workers.worker import SWEEP_LOCK, sweep_once

    redis_connection(app).delete(SWEEP_LOCK)
    sweep_once(app)


def _policy(api, admin) -> None:
    for priority in ("low", "normal", "high", "urgent"):
        assert api.as_(admin).put(f"/api/v1/sla-policies/{priority}", json={
            "first_response_seconds": 3600, "resolution_seconds": 4 * 3600}).status_code == 200


def _ticket(app, api, admin, drain) -> int:
    api.post_api_webhook(factories.channel(app, "api"), api_message(text="where is my order"))
    drain()
    return api.as_(admin).get("/api/v1/tickets").json()["items"][0]["id"]


def test_sla_timers_lost_with_redis_fire_once_from_the_stored_deadlines(
        app, api, admin, drain, fire_due_timers):
    _policy(api, admin)
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _ticket(app, api, admin, drain)
        redis_connection(app).flushdb()  # every scheduled timer gone

        clock.move_to(T0 + timedelta(minutes=50))  # past the warning point (80%)
        _sweep(app)
        drain()
        _sweep(app)  # again: nothing new
        drain()
        assert _sla_events(app, ticket_id) == ["sla.warning"]

        clock.move_to(T0 + timedelta(hours=1, minutes=1))
        _sweep(app)
        drain()
        _sweep(app)
        fire_due_timers()
        assert _sla_events(app, ticket_id) == ["sla.warning", "sla.breached"]


def test_a_warning_whose_deadline_passed_is_dropped_never_sent_after_the_breach(
        app, api, admin, drain, fire_due_timers):
    _policy(api, admin)
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _ticket(app, api, admin, drain)
        redis_connection(app).flushdb()
        clock.move_to(T0 + timedelta(hours=1, minutes=1))  # the worker was away all along
        _sweep(app)
        drain()
        assert _sla_events(app, ticket_id) == ["sla.breached"]

        # The warning's own timer, late (a worker busy, a timer restored): dropped.
        with app.app_context():
            due = db.session.get(Ticket, ticket_id).first_response_due_at
            jobs.CHECK_SLA.enqueue(ticket_id, "first_response", "warning", due.isoformat())
        drain()
        assert _sla_events(app, ticket_id) == ["sla.breached"]


def test_a_survey_whose_job_was_lost_is_sent_once_by_the_sweep(app, api, admin, agent, drain):
    response = api.as_(admin).patch("/api/v1/settings", json={"surveys": {"delay_seconds": 60}})
    assert response.status_code == 200, response.text
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = _ticket(app, api, admin, drain)
        assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}", json={
            "assignee_id": agent.id, "status": "solved"}).status_code == 200
        redis_connection(app).flushdb()
        _sweep(app)
        drain()
        with app.app_context():
            assert db.session.execute(select(Survey.status)).scalars().all() == ["scheduled"]
            db.session.rollback()

        clock.shift(timedelta(minutes=5))
        for _ in range(2):
            _sweep(app)
            drain()
        with app.app_context():
            assert db.session.execute(select(Survey.status)).scalars().all() == ["sent"]
            sent = db.session.execute(select(Message).where(
                Message.ticket_id == ticket_id, Message.author_type == "system")).scalars().all()
            assert len(sent) == 1


def _a_reply_whose_send_job_is_lost(app, api, agent, drain, channel):
    """A customer's message, the agent's reply to it, then Redis emptied: the reply stays
    `queued` with no job to send it. The reply's API answer."""
    api.post_api_webhook(channel, api_message())
    drain()
    ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
    answer = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages",
                                 json={"text": "Your parcel ships today."})
    assert answer.status_code == 201, answer.text
    redis_connection(app).flushdb()  # the send job is gone
    return answer


def test_a_reply_whose_send_job_was_lost_is_sent_once_by_the_sweep(app, api, agent, drain,
                                                                   monkeypatch):
    """Minutes later, not after the reply's whole retry schedule (45 minutes by default): a
    job waiting for its next attempt is seen as waiting, so the sweep needs no longer wait
    (a customer waited that long for an answer sent during a Redis blip)."""
    from tests.support.fake_providers import CALLBACK, FakeProviders

    monkeypatch.setitem(app.config, "OUTBOUND_RETRY_INTERVALS", [600, 1800])
    providers = FakeProviders().start()
    try:
        channel = factories.channel(app, "api",
                                    settings={"callback_url": providers.url + "/callback"})
        with time_machine.travel(T0, tick=False) as clock:
            answer = _a_reply_whose_send_job_is_lost(app, api, agent, drain, channel)
            _sweep(app)
            drain()
            assert providers.to(CALLBACK) == []  # not yet: its own job may still come

            clock.shift(timedelta(minutes=3))
            for _ in range(2):
                _sweep(app)
                drain()
            assert len(providers.to(CALLBACK)) == 1
            with app.app_context():
                assert db.session.get(Message, answer.json()["id"]).delivery_status == "sent"
    finally:
        providers.stop()


def test_a_reply_enqueued_again_by_the_sweep_keeps_the_outbound_retry_schedule(
        app, api, agent, drain, monkeypatch):
    """The sweep's job for a lost send retries on `HELPDESK_OUTBOUND_RETRY_INTERVALS`, as
    the reply's own job does, not on the generic job schedule."""
    from rq import Queue

    from helpdesk.queues import OUTBOUND
    from helpdesk.services.outbound import sending

    monkeypatch.setitem(app.config, "OUTBOUND_RETRY_INTERVALS", [7, 11, 13])
    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        _a_reply_whose_send_job_is_lost(app, api, agent, drain, channel)
        clock.shift(timedelta(hours=1))
        with app.app_context():
            assert sending.sweep_stuck(0) == 1
            [job] = Queue(OUTBOUND, connection=redis_connection(app)).jobs
    assert (job.retries_left, job.retry_intervals) == (3, [7, 11, 13])


def test_a_reply_sent_again_is_not_handed_a_second_job_by_the_sweep(app, api, agent, drain):
    """`resend` queues a failed reply again with its own job; its `created_at` is old, but
    the sweep counts from when it was queued, so it does not enqueue a second send of it
    (two jobs would race to send it twice)."""
    from rq import Queue

    from helpdesk.queues import OUTBOUND
    from helpdesk.services.outbound import sending

    channel = factories.channel(app, "api")
    with time_machine.travel(T0, tick=False) as clock:
        answer = _a_reply_whose_send_job_is_lost(app, api, agent, drain, channel)
        message_id = answer.json()["id"]
        with app.app_context():
            db.session.get(Message, message_id).delivery_status = "failed"
            db.session.commit()
        clock.shift(timedelta(days=1))
        ticket_id = answer.json()["ticket_id"]
        again = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages/{message_id}/resend")
        assert again.status_code == 200, again.text
        with app.app_context():
            outbound = Queue(OUTBOUND, connection=redis_connection(app))
            assert len(outbound.jobs) == 1  # its own job
            assert sending.sweep_stuck(0) == 0
            clock.shift(timedelta(hours=2))  # its own job lost too, past the schedule
            redis_connection(app).flushdb()
            assert sending.sweep_stuck(0) == 1


def test_a_failing_sweeper_step_does_not_stop_the_steps_after_it(app, api, admin, drain,
                                                                monkeypatch, tmp_path):
    """An overdue ticket the scorer cannot take (here: an urgency config that does not
    parse) failed the SLA step of every pass, and every step after it never ran again:
    surveys, outbound retries, idle sessions, closing solved tickets past their window."""
    import pytest

    _policy(api, admin)
    monkeypatch.setitem(app.config, "REOPEN_WINDOW_SECONDS", 60)
    with time_machine.travel(T0, tick=False) as clock:
        overdue = _ticket(app, api, admin, drain)
        api.post_api_webhook(factories.channel(app, "api", name="second"), api_message(
            "e2", "m2", text="thanks, all good", email="done@example.com"))
        drain()
        [solved] = [t["id"] for t in api.as_(admin).get("/api/v1/tickets").json()["items"]
                    if t["id"] != overdue]
        assert api.as_(admin).patch(f"/api/v1/tickets/{solved}",
                                    json={"status": "solved"}).status_code == 200
        redis_connection(app).flushdb()  # the breach's timer lost
        broken = tmp_path / "urgency.json"
        broken.write_text("{ not json", encoding="utf-8")
        monkeypatch.setitem(app.config, "URGENCY_CONFIG", str(broken))
        clock.move_to(T0 + timedelta(hours=1, minutes=1))
        with pytest.raises(ValueError):
            _sweep(app)  # (the pass still says it failed)
        status = api.as_(admin).get(f"/api/v1/tickets/{solved}").json()["status"]
    assert status == "closed"
