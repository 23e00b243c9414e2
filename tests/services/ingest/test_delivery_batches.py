"""Ingest in batches: many deliveries, one transaction, and nothing lost when one is bad."""

from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Delivery, Message, Ticket
from tests.support import factories
from tests.support.live import api_message
from tests.support.sql import statements


def _statuses(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        db.session.rollback()
    return dict(rows)


def _count(app, model) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _statements_of_one_batch(app) -> list[str]:
    """The SQL statements `process_waiting` sends for what is waiting now."""
    from helpdesk.services.ingest import batches as delivery_batches

    with statements(app) as seen, app.app_context():
        assert delivery_batches.process_waiting() == 1
    return seen


def test_a_backlog_larger_than_a_batch_is_processed_in_one_drain(app, api, drain):
    from helpdesk.services.ingest.batches import batch_size

    channel = factories.channel(app, "api")
    with app.app_context():
        total = batch_size() * 2 + 7
    for n in range(total):
        response = api.post_api_webhook(channel, api_message(
            f"e{n}", f"m{n}", text=f"message {n}", email=f"customer{n % 5}@example.com"))
        assert response.status_code == 200
    drain()
    assert _statuses(app) == {"processed": total}
    assert _count(app, Message) == total
    assert _count(app, Ticket) == 5  # one per customer: messages join their open ticket


def test_bodies_too_big_to_share_a_batch_are_each_processed(app, api, drain, monkeypatch):
    """Batches are cut by the size of their bodies (large emails): here every body is over
    the budget, so every batch holds one delivery, and the drain still gets through all."""
    from helpdesk.services.ingest import batches as delivery_batches

    monkeypatch.setattr(delivery_batches, "BATCH_BYTES", 1)
    channel = factories.channel(app, "api")
    for n in range(6):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text="x" * 500))
    drain()
    assert _statuses(app) == {"processed": 6}
    assert _count(app, Message) == 6


def test_one_bad_delivery_does_not_hold_up_the_others(app, api, admin, drain):
    """A delivery that fails while applied (here: no usable identity) fails its batch; the
    others are processed one by one, and the bad one ends `failed` at once (a sender no
    identity can be made of fails the same way every time: no retries)."""
    channel = factories.channel(app, "api")
    email = factories.channel(app, "raw_mime")
    api.post_api_webhook(channel, api_message("e1", "m1", email="ana@example.com"))
    # A provider's format is stored as it comes (the `api` format refuses this at the door).
    bad = api.post(f"/webhooks/raw_mime/{email.key}", headers={"Content-Type": "message/rfc822"},
                   data=b"From: not an email address\r\nSubject: hi\r\n"
                        b"Message-ID: <bad-1@example.com>\r\n\r\nhello\r\n")
    assert bad.status_code == 200
    api.post_api_webhook(channel, api_message("e3", "m3", email="bo@example.com"))
    drain()
    assert _statuses(app) == {"processed": 2, "failed": 1}
    assert _count(app, Message) == 2
    failed = api.as_(admin).get("/api/v1/deliveries?status=failed").json()["items"]
    assert "identity" in failed[0]["error"]
    assert failed[0]["attempts"] == 1  # quarantined on its own run, not retried


def test_a_batch_announces_each_message_once_and_its_ticket_once(app, api, admin, sockets,
                                                                  drain):
    channel = factories.channel(app, "api")
    supervisor = sockets(admin.token)
    for n in range(4):  # stored while no worker runs: one batch picks all four up
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text=f"part {n}",
                                                  thread_id="one-conversation"))
    drain("ingest")
    supervisor.wait_for("message.created", lambda e: e["data"]["text"] == "part 3")
    texts = [data["data"]["text"] for name, data in supervisor.events
             if name == "message.created"]
    assert sorted(texts) == ["part 0", "part 1", "part 2", "part 3"]
    tickets = [(name, data["data"]) for name, data in supervisor.events
               if name.startswith("ticket.")]
    assert [name for name, _ in tickets] == ["ticket.created"]
    announced = tickets[0][1]
    with app.app_context():
        ticket = db.session.get(Ticket, announced["id"])
        assert announced["updated_at"] == ticket.updated_at.isoformat()  # committed state
    assert _count(app, Ticket) == 1


def test_a_new_customers_message_asks_for_no_ticket_to_continue(app, api, drain):
    """The batch of one: a customer created by this batch has no ticket yet, so threading
    does not ask the database for their latest one (one statement less per new customer)."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", email="new@example.com"))
    seen = _statements_of_one_batch(app)
    reads = [s for s in seen if "tickets.last_activity_at >=" in s]  # the threading window
    assert reads == [], reads
    assert _count(app, Ticket) == 1


def test_a_batch_tells_stored_messages_from_new_ones_per_channel(app, api, drain, caplog):
    """The batch asks once which of its messages are stored, keyed by (channel, message id),
    one `channel = … AND id IN (…)` per channel (not a row-value IN list, which PostgreSQL
    plans as one OR branch per pair): the same provider message id is a duplicate on the
    channel that has it and a new message on another, and the batch knows it without
    falling back to one delivery at a time (which a missed duplicate would cause)."""
    first = factories.channel(app, "api", name="first")
    second = factories.channel(app, "api", name="second")
    api.post_api_webhook(first, api_message("e1", "m1", text="original"))
    api.post_api_webhook(second, api_message("e2", "m9", text="second's original"))
    drain("ingest")
    # Stored while no worker runs: one batch holds all four.
    api.post_api_webhook(first, api_message("e3", "m1", text="redelivered"))
    api.post_api_webhook(second, api_message("e4", "m9", text="redelivered too"))
    api.post_api_webhook(second, api_message("e5", "m1", text="same id, other channel"))
    api.post_api_webhook(second, api_message("e6", "m2", text="new on the second",
                                             email="bo@example.com"))
    with statements(app) as seen:
        drain("ingest")
    assert "one by one" not in caplog.text
    assert _statuses(app) == {"processed": 4, "duplicate": 2}
    with app.app_context():
        texts = sorted(db.session.execute(select(Message.text)).scalars())
        db.session.rollback()
    assert texts == ["new on the second", "original", "same id, other channel",
                     "second's original"]
    lookups = [s for s in seen if s.startswith("SELECT messages.channel_id, "
                                              "messages.external_id FROM messages")]
    assert len(lookups) == 1 and "messages.external_id) IN" not in lookups[0], lookups


def test_a_returning_customers_lone_message_costs_few_statements(app, api):
    """The batch of one for a customer writing again: the channel comes with the delivery's
    row, the customer's identities with the lookup, and nothing is asked twice."""
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", email="back@example.com"))
    assert len(_statements_of_one_batch(app)) > 0
    api.post_api_webhook(channel, api_message("e2", "m2", email="back@example.com",
                                              text="me again"))
    seen = _statements_of_one_batch(app)
    assert not [s for s in seen if s.startswith("SELECT") and "FROM channels" in s
                and "JOIN channels" not in s], seen  # no query for the channel alone
    identity_reads = [s for s in seen if s.startswith("SELECT") and "FROM identities" in s]
    assert len(identity_reads) == 1, identity_reads  # not again for the event's customer
    with app.app_context():
        dialect = db.engine.dialect.name
    if dialect == "postgresql":  # the claim is one statement; the lock and rows one SELECT
        assert len([s for s in seen if s.startswith("SELECT") and "FROM deliveries" in s]) == 1
        assert len([s for s in seen if "SET claims=" in s]) == 1, seen
        assert seen[0].startswith("WITH waiting AS"), seen
        # the customer's threading lock is taken by the identities' statement itself
        locks = [s for s in seen if "pg_advisory_xact_lock" in s]
        assert len(locks) == 1 and "FROM identities" in locks[0], locks
    # claim (PostgreSQL 1, SQLite 2), rows, duplicate check, identities (PostgreSQL: with
    # the lock), recent ticket, message, ticket, delivery status; nothing else (SQLite's
    # BEGIN aside)
    assert len([s for s in seen if not s.startswith("BEGIN")]) <= (
        8 if dialect == "postgresql" else 9), seen
    assert not [s for s in seen if s.startswith("SAVEPOINT")], seen
    assert _count(app, Message) == 2
    assert _count(app, Ticket) == 1


def test_a_new_customers_ticket_event_carries_its_identities(app, api):
    """The customer created by the batch is announced with its identities (from the batch,
    not read back)."""
    import json

    from helpdesk.outbox.event_log import LOG
    from helpdesk.queues import redis_connection

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", email="Fresh@Example.com"))
    seen = _statements_of_one_batch(app)
    # (PostgreSQL also asks, under the new identity's lock, whether it was created meanwhile)
    assert len([s for s in seen if s.startswith("SELECT identities.id")]) == 1
    with app.app_context():
        records = [json.loads(raw) for raw in redis_connection(app).zrange(LOG, 0, -1)]
    created = [r["message"]["data"] for r in records if r["event"] == "ticket.created"]
    assert len(created) == 1
    assert created[0]["customer"]["identities"] == [
        {"kind": "email", "value": "fresh@example.com", "verified": True}]


def test_a_lone_messages_routing_signal_rides_with_its_events(app, api, monkeypatch):
    """After the commit, the routing batch's pending flag is set by the one Redis call that
    numbers and publishes the message's events (the event log's script), not in a round
    trip of its own, and the routing batch job is enqueued once: after the events are out."""
    from redis import Redis
    from rq import Queue

    from helpdesk.queues import ROUTING, redis_connection
    from helpdesk.services.ingest import batches as delivery_batches

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", email="signal@example.com"))
    with app.app_context():
        redis_connection(app).delete("helpdesk:pending:routing-batch")
        Queue(ROUTING, connection=redis_connection(app)).empty()
    commands: list[tuple] = []
    execute_command = Redis.execute_command

    def record_command(self, *args, **options):
        commands.append(args)
        return execute_command(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", record_command)
    with app.app_context():
        assert delivery_batches.process_waiting() == 1
    monkeypatch.undo()

    flag = "helpdesk:pending:routing-batch"
    assert not [c for c in commands if c[0] == "SET" and c[1] == flag], commands
    def keys(command: tuple) -> tuple:
        return command[3:3 + int(command[2])]

    # (the same call twice when the script was not loaded yet: NOSCRIPT, load, again)
    scripted = {c for c in commands if c[0] == "EVALSHA" and flag in keys(c)}
    assert len(scripted) == 1, commands
    call, = scripted
    assert any("message.created" in str(arg) for arg in call[3 + len(keys(call)):])
    with app.app_context():
        assert Queue(ROUTING, connection=redis_connection(app)).count == 1


def _new_customers_in_one_batch(app, api, count: int) -> tuple[list[str], str, object]:
    """`count` messages of as many new customers, processed in one batch: the statements it
    sent, the database's dialect and the channel."""
    from helpdesk.services.ingest import batches as delivery_batches

    channel = factories.channel(app, "api")
    for n in range(count):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", email=f"new{n}@example.com"))
    with statements(app) as seen, app.app_context():
        assert delivery_batches.process_waiting() == count
        dialect = db.engine.dialect.name
    return seen, dialect, channel


def test_a_batch_writes_the_rows_of_its_new_customers_together(app, api):
    """New customers' messages in one batch: no savepoint and, on PostgreSQL (ids from the
    sequences), no flush per message: one INSERT per table for the whole batch."""
    from helpdesk.models import Customer, Identity

    seen, dialect, _channel = _new_customers_in_one_batch(app, api, 5)
    assert not [s for s in seen if s.startswith("SAVEPOINT")], seen
    inserts = {table: len([s for s in seen if s.startswith(f"INSERT INTO {table} ")])
               for table in ("customers", "identities", "tickets", "ticket_events", "messages")}
    if dialect == "postgresql":
        assert inserts == dict.fromkeys(inserts, 1), inserts
    assert _count(app, Customer) == _count(app, Identity) == _count(app, Ticket) == 5
    with app.app_context():
        rows = db.session.execute(select(Message.author_id, Ticket.customer_id).join(
            Ticket, Ticket.id == Message.ticket_id)).all()
    assert len(rows) == 5 and all(author == owner for author, owner in rows), rows


def test_a_batch_opening_many_tickets_asks_their_sequence_a_few_times(app, api):
    """Ticket ids are taken ahead in doubling chunks (PostgreSQL): 20 new tickets cost 5
    trips to the sequence, not 20, and the ids a batch took and did not use leave a gap smaller
    than what it inserted. A lone message takes exactly one id (no gap)."""
    from helpdesk.services.ingest import batches as delivery_batches

    seen, dialect, channel = _new_customers_in_one_batch(app, api, 20)
    with app.app_context():
        ids = sorted(db.session.execute(select(Ticket.id)).scalars())
    assert len(ids) == 20
    if dialect != "postgresql":
        return  # SQLite: ids come from each row's INSERT
    asked = [s for s in seen if "nextval" in s and "generate_series" in s]
    # The customers' 20 ids at once (the batch knows its unknown identities); the tickets'
    # as they open: 1 + 2 + 4 + 8 + 16.
    assert len(asked) == 1 + 5, asked
    api.post_api_webhook(channel, api_message("lone", "lone", email="lone@example.com"))
    with app.app_context():
        assert delivery_batches.process_waiting() == 1
        lone = db.session.execute(select(func.max(Ticket.id))).scalar_one()
    assert lone - ids[-1] <= 1 + (1 + 2 + 4 + 8 + 16 - 20), (ids, lone)


def test_a_later_batch_of_the_same_job_sees_a_solve_committed_since(app, api, agent):
    """A worker's job runs batch after batch in one session, which keeps what it loaded past
    each commit: the next batch must not take the ticket for still open when an agent
    solved it in between (the customer's new message would stay on a solved ticket)."""
    from helpdesk.services.ingest import batches as delivery_batches

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", email="again@example.com"))
    with app.app_context():  # one job: the same session for both batches
        assert delivery_batches.process_waiting() == 1
        ticket_id = db.session.execute(select(Ticket.id)).scalar_one()
        db.session.commit()  # (SQLite: no transaction left open under the PATCH)
        solved = api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                      json={"status": "solved"})
        assert solved.status_code == 200, solved.text
        api.post_api_webhook(channel, api_message("e2", "m2", email="again@example.com",
                                                  text="it broke again"))
        assert delivery_batches.process_waiting() == 1
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    assert after["status"] == "open" and len(after["messages"]) == 2
