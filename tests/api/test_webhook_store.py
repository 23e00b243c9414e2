"""How the webhook's accept path stores a delivery (services/ingest/deliveries.store): on
PostgreSQL the INSERT is a transaction of its own (autocommit: one round trip, no BEGIN or
COMMIT of its own), and in every case the delivery is durable and visible to any other
connection by the time the ack is received."""

from __future__ import annotations

from sqlalchemy import create_engine, event, text

from helpdesk.extensions import db
from tests.support import factories
from tests.support.live import api_message


def _delivery_inserts(app):
    """Whether each INSERT INTO deliveries ran with the driver's autocommit on."""
    seen: list[bool] = []

    def listener(conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            seen.append(bool(getattr(conn.connection.dbapi_connection, "autocommit", False)))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    return seen, engine, lambda: event.remove(engine, "before_cursor_execute", listener)


def test_a_webhook_is_stored_in_one_statement_and_durable_before_its_ack(app, api):
    channel = factories.channel(app, "api")
    # The first webhook of a channel reads it (the session opens a transaction): warm up.
    assert api.post_api_webhook(channel, api_message("evt-0", "m-0")).status_code == 200
    seen, engine, stop = _delivery_inserts(app)
    try:
        for n in range(1, 4):
            response = api.post_api_webhook(channel, api_message(f"evt-{n}", f"m-{n}"))
            assert response.status_code == 200
            # Another connection sees it as soon as the ack is in: stored, then acked.
            other = create_engine(engine.url)
            try:
                with other.connect() as conn:
                    stored = conn.execute(text(
                        "SELECT count(*) FROM deliveries WHERE dedupe_key = :key"),
                        {"key": f"event:evt-{n}"}).scalar()
            finally:
                other.dispose()
            assert stored == 1
        # A duplicate is stored once, and still acked.
        assert api.post_api_webhook(channel, api_message("evt-1", "m-1")).status_code == 200
    finally:
        stop()
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM deliveries")).scalar() == 4
        db.session.rollback()
    if engine.dialect.name == "postgresql":
        assert seen == [True] * 4  # no BEGIN and COMMIT round trips around the INSERT
    else:  # SQLite: in the session's transaction (BEGIN IMMEDIATE takes the write lock)
        assert seen == [False] * 4
