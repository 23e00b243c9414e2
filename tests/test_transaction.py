"""What waits for a commit: kept through a savepoint that rolls back, dropped with the rest."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.exc import IntegrityError

from helpdesk import transaction
from helpdesk.extensions import db
from helpdesk.models import Agent, Setting, Ticket
from helpdesk.outbox import events
from tests.support import factories
from tests.support.live import api_message


def _duplicate_in_a_savepoint() -> None:
    """What identity creation does when another worker created the same row first."""
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(Setting(key="duplicate", value=1))
        db.session.flush()


def test_a_savepoint_rolled_back_keeps_what_the_transaction_waits_to_do(app):
    with app.app_context():
        db.session.add(Setting(key="duplicate", value=0))
        transaction.commit()
        ran = []
        transaction.after_commit(lambda: ran.append("enqueued"))
        _duplicate_in_a_savepoint()
        transaction.commit()
        assert ran == ["enqueued"]


def test_a_rolled_back_transaction_drops_what_waited_for_it(app):
    with app.app_context():
        ran = []
        db.session.add(Setting(key="never", value=1))
        db.session.flush()
        transaction.after_commit(lambda: ran.append("enqueued"))
        db.session.rollback()
        transaction.commit()
        assert ran == []
        assert db.session.get(Setting, "never") is None


def test_events_survive_a_savepoint_rolled_back_in_their_transaction(app, api, agent, sockets,
                                                                    drain):
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e-s", "m-s", text="where is my parcel"))
    drain()
    watcher = sockets(agent.token)
    with app.app_context():
        db.session.add(Setting(key="duplicate", value=0))
        transaction.commit()
        ticket = db.session.execute(db.select(Ticket)).scalar_one()
        ticket.tags = ["savepoint"]
        events.ticket_changed(ticket)
        _duplicate_in_a_savepoint()
        transaction.commit()
        ticket_id = ticket.id
    updated = watcher.wait_for("ticket.updated", lambda e: e["data"]["id"] == ticket_id
                               and e["data"]["tags"] == ["savepoint"])
    assert updated["type"] == "ticket.updated"


def test_a_savepoint_committed_midway_announces_nothing_before_the_transaction(
        app, api, agent, sockets, drain):
    """SQLAlchemy fires `before_commit` for a savepoint too (identity creation, a delivery's
    messages): the ticket was serialized there, and again at the commit, and the two went
    out newest first, so clients were left with the older state."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e-n", "m-n", text="where is my parcel"))
    drain()
    watcher = sockets(agent.token)
    with app.app_context():
        ticket = db.session.execute(db.select(Ticket)).scalar_one()
        ticket.tags = ["first"]
        events.ticket_changed(ticket)
        with db.session.begin_nested():
            db.session.add(Setting(key="nested", value=1))
        ticket.tags = ["second"]
        events.ticket_changed(ticket)
        transaction.commit()
        ticket_id = ticket.id
    watcher.wait_for("ticket.updated", lambda e: e["data"]["id"] == ticket_id
                     and e["data"]["tags"] == ["second"])
    time.sleep(0.3)
    updates = [data["data"]["tags"] for name, data in watcher.events
               if name == "ticket.updated" and data["data"]["id"] == ticket_id]
    assert updates == [["second"]]


def test_a_commit_s_events_go_out_before_the_jobs_it_enqueued(app, api, agent, drain):
    """Escalating an assigned ticket announces it and enqueues its routing in one commit: the
    PUBLISH must reach Redis before the job does, or a fast worker could announce the
    ticket's next state first. Watched with MONITOR on the real Redis."""
    from helpdesk.queues import redis_connection
    from helpdesk.services.tickets import actions

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e-o", "m-o", text="my order is late"))
    drain()
    with app.app_context():
        ticket = db.session.execute(db.select(Ticket)).scalar_one()
        actor = db.session.get(Agent, agent.id)
        actions.update(ticket.id, {"assignee_id": agent.id}, actor)
        commands = _monitored(redis_connection(), lambda: actions.escalate(
            ticket.id, 2, "needs billing", actor))
    # The commit's own event; `queue.updated` is throttled and goes out later from a timer.
    published = [i for i, c in enumerate(commands)
                 if c.startswith("PUBLISH") and "ticket.updated" in c]
    routed = [i for i, c in enumerate(commands) if c.startswith(("RPUSH", "LPUSH"))
              and "rq:queue:routing" in c]
    assert published and routed
    assert max(published) < min(routed), commands


def _monitored(client, action) -> list[str]:
    """The Redis commands `action` sends, in the order the server ran them."""
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if command["command"] == "ECHO monitor-done":
                    return
                seen.append(command["command"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(5)
    time.sleep(0.1)  # MONITOR is registered once the server answered it
    action()
    client.echo("monitor-done")
    watcher.join(10)
    return seen
