"""Several workers draining the same customers' deliveries at once produce exactly the tickets
one worker would: threading is serialised per customer, never left to batch timing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from helpdesk.extensions import db
from helpdesk.models import Delivery, Message, Ticket
from tests.support import factories
from tests.support.live import api_message

CUSTOMERS = 24
MESSAGES_EACH = 3


def _drain_concurrently(app, workers: int, batch: int) -> None:
    from helpdesk.services.ingest.batches import process_batch

    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work() -> None:
        try:
            with app.app_context():
                start.wait()
                while process_batch(batch)[0]:
                    pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


@pytest.mark.parametrize(("workers", "batch"), [(2, 1), (4, 2), (8, 1)])
def test_existing_customers_writing_across_concurrent_batches_get_one_ticket(
        app, api, drain, workers, batch):
    channel = factories.channel(app, "api")
    for n in range(CUSTOMERS):  # known customers, whose last ticket is long quiet
        api.post_api_webhook(channel, api_message(f"old{n}", f"old{n}",
                                                  email=f"c{n}@example.com"))
    drain()
    with app.app_context():
        db.session.execute(update(Ticket).values(
            last_activity_at=datetime.now(UTC) - timedelta(days=30)))
        db.session.commit()
    for n in range(CUSTOMERS):  # each customer's messages side by side: in different batches
        for m in range(MESSAGES_EACH):
            response = api.post_api_webhook(channel, api_message(
                f"e{n}-{m}", f"m{n}-{m}", text=f"still waiting {m}", email=f"c{n}@example.com"))
            assert response.status_code == 200
    _drain_concurrently(app, workers, batch)
    with app.app_context():
        assert db.session.execute(select(Delivery.status, func.count())
                                  .group_by(Delivery.status)).all() == [
            ("processed", CUSTOMERS * (MESSAGES_EACH + 1))]
        per_customer = db.session.execute(
            select(Ticket.customer_id, func.count(Ticket.id)).group_by(Ticket.customer_id)
        ).all()
        assert sorted(count for _, count in per_customer) == [2] * CUSTOMERS  # old + one new
        assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == \
            CUSTOMERS * (MESSAGES_EACH + 1)


def test_new_customers_writing_across_concurrent_batches_are_created_once(app, api, caplog):
    """A batch writes the customers it creates at its end: a concurrent batch creating the
    same customer waits for it (a lock per identity) and joins its customer and ticket,
    instead of failing on the identities' unique index and sending its whole batch down
    the one-by-one path."""
    channel = factories.channel(app, "api")
    for n in range(CUSTOMERS):  # each new customer's messages side by side: in batches
        for m in range(MESSAGES_EACH):  # that run at once
            response = api.post_api_webhook(channel, api_message(
                f"e{n}-{m}", f"m{n}-{m}", text=f"hello {m}", email=f"new{n}@example.com"))
            assert response.status_code == 200
    _drain_concurrently(app, 4, 1)
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]
    with app.app_context():
        assert db.session.execute(select(Delivery.status, func.count())
                                  .group_by(Delivery.status)).all() == [
            ("processed", CUSTOMERS * MESSAGES_EACH)]
        per_customer = db.session.execute(
            select(Ticket.customer_id, func.count(Ticket.id)).group_by(Ticket.customer_id)
        ).all()
        assert sorted(count for _, count in per_customer) == [1] * CUSTOMERS
        assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == \
            CUSTOMERS * MESSAGES_EACH
