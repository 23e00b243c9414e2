"""The sweeper hands a claimed delivery to its own job only when the run that claimed it has
died: one that a live batch still holds (its row locked until the batch commits) is left
to that batch. PostgreSQL only: SQLite has no row locks to tell a live run by."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Delivery
from tests.support import factories
from tests.support.live import api_message


def _ingest_jobs(app) -> list[str]:
    from helpdesk.queues import INGEST, get_queue

    with app.app_context():
        return sorted(get_queue(INGEST, app).job_ids)


def test_deliveries_a_live_batch_holds_are_not_handed_to_their_own_jobs(app, api, drain):
    from helpdesk.queues import INGEST, get_queue
    from helpdesk.services.ingest import batches, deliveries

    channel = factories.channel(app, "api")
    for n in range(3):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", email=f"c{n}@example.com"))
    with app.app_context():
        get_queue(INGEST, app).empty()  # the batch job the webhooks asked for: not run here
    time.sleep(1.1)  # older than the tests' sweep grace

    claimed, release, batch_ended = threading.Event(), threading.Event(), threading.Event()

    def live_batch() -> None:
        """A batch that claims the three and holds them, then dies without finishing."""
        with app.app_context():
            rows, _more = batches.claim(10)
            assert len(rows) == 3
            claimed.set()
            release.wait(30)
            db.session.rollback()  # the run dies: its locks go, its claims stay
        batch_ended.set()

    thread = threading.Thread(target=live_batch)
    thread.start()
    try:
        assert claimed.wait(30)
        with app.app_context():
            assert deliveries.sweep_unprocessed() == 0
        assert _ingest_jobs(app) == []
    finally:
        release.set()
        thread.join(30)
    assert batch_ended.is_set()

    with app.app_context():  # now the claims belong to a dead run: each gets its own job
        ids = db.session.execute(select(Delivery.id).order_by(Delivery.id)).scalars().all()
        assert deliveries.sweep_unprocessed() == 3
    assert _ingest_jobs(app) == sorted(f"delivery-{i}" for i in ids)
    drain("ingest")
    with app.app_context():
        statuses = db.session.execute(select(Delivery.status)).scalars().all()
    assert statuses == ["processed"] * 3


def test_deliveries_a_batch_finished_since_the_sweepers_first_look_are_not_handed_over(
        app, api, drain):
    """The sweeper reads the claimed deliveries, then asks which of them no live run holds:
    a batch that committed in between has released its locks, but its deliveries are
    processed, not orphaned."""
    from helpdesk.services.ingest import deliveries

    channel = factories.channel(app, "api")
    for n in range(3):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", email=f"c{n}@example.com"))
    with app.app_context():
        ids = db.session.execute(select(Delivery.id).order_by(Delivery.id)).scalars().all()
    drain("ingest")  # claimed, processed and committed: what the first look saw as claimed
    with app.app_context():
        assert deliveries._not_being_processed(ids) == []
        db.session.rollback()
