"""PostgreSQL killing our backends (a failover, `pg_terminate_backend`): the web answers 503 at
worst, never 500, and serves again on fresh connections."""

from __future__ import annotations

import psycopg


def _terminate_backends(database_url: str) -> int:
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        killed = cursor.fetchone()[0]
    conn.close()
    return killed


def test_terminated_backends_are_a_503_then_served_again(app, api, admin, database_url):
    for _ in range(3):  # pooled connections, used moments ago (not pinged on checkout)
        assert api.as_(admin).get("/api/v1/tickets").status_code == 200
    assert _terminate_backends(database_url) >= 1
    statuses = [api.as_(admin).get("/api/v1/tickets").status_code for _ in range(12)]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-1] == 200
    first = next(i for i, status in enumerate(statuses) if status == 200)
    assert set(statuses[first:]) == {200}, statuses  # fresh connections from then on


def test_claims_on_terminated_backends_are_a_503_then_served_again(app, api, agent, drain,
                                                                   database_url):
    """The claim runs its statement on the driver's cursor (services/routing/queue): a lost
    connection must still be a 503 with the pool invalidated, then claims are served
    again."""
    from helpdesk.extensions import db
    from tests.api.test_queue import make_tickets

    make_tickets(app, api, drain, 9, prefix="outage")
    for _ in range(2):  # (an agent's capacity holds 10 api tickets)
        assert api.as_(agent).post("/api/v1/queue/next").status_code == 200
    with app.app_context():
        engine = db.engine
    held = [engine.connect() for _ in range(6)]  # several pooled connections, all to die
    for connection in held:
        connection.exec_driver_sql("SELECT 1")
    for connection in held:
        connection.close()
    assert _terminate_backends(database_url) >= 1
    statuses = [api.as_(agent).post("/api/v1/queue/next").status_code for _ in range(6)]
    assert set(statuses) <= {200, 503}, statuses
    # The first claim on a dead connection invalidates the whole pool, as SQLAlchemy does:
    # not one 503 per dead pooled connection.
    assert statuses.count(503) <= 1, statuses
    first = next(i for i, status in enumerate(statuses) if status == 200)
    assert set(statuses[first:]) == {200}, statuses
