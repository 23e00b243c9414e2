"""What waits for a commit: kept through a savepoint that rolls back, dropped with the rest."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from helpdesk.extensions import db
from helpdesk.models import Setting, Ticket
from helpdesk.realtime import events
from helpdesk.services import transaction
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


def test_a_commit_s_events_go_out_before_the_jobs_it_enqueued(app):
    with app.app_context():
        ran = []
        transaction.after_commit(lambda: ran.append("enqueue routing"))
        transaction.after_commit(lambda: ran.append("emit events"), first=True)
        transaction.commit()
        assert ran == ["emit events", "enqueue routing"]
