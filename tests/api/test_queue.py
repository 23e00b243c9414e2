"""The queue: order, and `queue/next` never handing one ticket to two agents."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import factories
from tests.support.live import api_message


def make_tickets(app, api, drain, count: int, prefix: str = "c") -> None:
    channel = factories.channel(app, "api")
    for n in range(count):
        api.post_api_webhook(channel, api_message(f"{prefix}-e{n}", f"{prefix}-m{n}",
                                                  text=f"question {n}",
                                                  email=f"{prefix}{n}@example.com"))
    drain("ingest")


def test_queue_lists_by_priority_then_age(app, api, agent, supervisor, drain):
    make_tickets(app, api, drain, 3)
    queue = api.as_(agent).get("/api/v1/queue").json()
    assert queue["total"] == 3
    oldest, middle, newest = (item["id"] for item in queue["items"])
    assert oldest < middle < newest
    api.as_(supervisor).patch(f"/api/v1/tickets/{newest}", json={"priority": "urgent"})
    order = [item["id"] for item in api.as_(agent).get("/api/v1/queue").json()["items"]]
    assert order == [newest, oldest, middle]


def test_queue_updated_counts_the_queue_by_priority(app, api, agent, supervisor, sockets, drain):
    make_tickets(app, api, drain, 3)
    watcher = sockets(supervisor.token)
    first, second, _third = (item["id"] for item in
                             api.as_(agent).get("/api/v1/queue").json()["items"])
    api.as_(supervisor).patch(f"/api/v1/tickets/{first}", json={"priority": "urgent"})
    api.as_(supervisor).patch(f"/api/v1/tickets/{second}", json={"priority": "low"})
    expected = {"urgent": 1, "high": 0, "normal": 1, "low": 1}
    update = watcher.wait_for("queue.updated", lambda e: e["data"]["by_priority"] == expected)
    assert update["data"]["size"] == 3


def test_sixteen_concurrent_claimers_get_each_ticket_once(app, api, drain):
    make_tickets(app, api, drain, 24)
    agents = [factories.agent(app) for _ in range(16)]

    def claim_all(who) -> list[int]:
        claimed = []
        while True:
            response = api.as_(who).post("/api/v1/queue/next")
            if response.status_code == 204:
                return claimed
            if response.status_code == 409:  # a fast thread filled its agent (10 api tickets)
                assert response.json()["error"]["code"] == "at_capacity"
                return claimed
            assert response.status_code == 200, response.text
            assert response.json()["assignee_id"] == who.id
            claimed.append(response.json()["id"])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(claim_all, agents))
    claimed = [ticket for batch in results for ticket in batch]
    assert len(claimed) == 24
    assert len(set(claimed)) == 24
    assert api.as_(agents[0]).get("/api/v1/queue").json()["total"] == 0


def test_next_on_empty_queue_is_204(api, agent):
    response = api.as_(agent).post("/api/v1/queue/next")
    assert response.status_code == 204
    assert response.content == b""


def test_level_two_ticket_skips_level_one_agent(app, api, agent, supervisor, drain):
    make_tickets(app, api, drain, 1)
    ticket_id = api.as_(agent).get("/api/v1/queue").json()["items"][0]["id"]
    escalated = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/escalate",
                                    json={"level": 2, "reason": "needs billing access"})
    assert escalated.status_code == 200 and escalated.json()["level"] == 2
    assert api.as_(agent).post("/api/v1/queue/next").status_code == 204
    claimed = api.as_(supervisor).post("/api/v1/queue/next")
    assert claimed.status_code == 200 and claimed.json()["id"] == ticket_id


def test_claim_emits_ticket_and_queue_updates(app, api, agent, sockets, drain):
    make_tickets(app, api, drain, 1)
    watcher = sockets(agent.token)
    ticket = api.as_(agent).post("/api/v1/queue/next").json()
    updated = watcher.wait_for("ticket.updated", lambda e: e["data"]["id"] == ticket["id"])
    assert updated["data"]["assignee_id"] == agent.id
    assert watcher.wait_for("queue.updated", lambda e: e["data"]["size"] == 0)


def test_next_waits_for_a_ticket_another_transaction_holds_instead_of_204(app, api, agent,
                                                                          drain):
    """A routing batch holds the tickets it scores (row locks, up to about a second on a busy
    machine); an agent asking for the next ticket meanwhile gets it once the batch commits,
    not a 204 saying the queue is empty (SKIP LOCKED alone would pass over it)."""
    import threading
    import time

    from sqlalchemy import text

    from helpdesk.extensions import db

    make_tickets(app, api, drain, 1)
    ticket_id = api.as_(agent).get("/api/v1/queue").json()["items"][0]["id"]
    with app.app_context():
        engine = db.engine
    holder = engine.connect()
    if engine.dialect.name == "postgresql":
        holder.execute(text("SELECT id FROM tickets WHERE id = :id FOR UPDATE"), {"id": ticket_id})
    else:  # SQLite: a write transaction keeps every other writer waiting
        holder.execute(text("UPDATE tickets SET updated_at = updated_at WHERE id = :id"),
                       {"id": ticket_id})
    released = threading.Timer(0.5, holder.rollback)
    began = time.monotonic()
    released.start()
    try:
        answer = api.as_(agent).post("/api/v1/queue/next")
    finally:
        released.join()
        holder.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == ticket_id
    assert time.monotonic() - began >= 0.4  # it waited for the holder, then took the ticket


def test_claimed_ticket_json_is_the_ticket_resource(app, api, agent, supervisor, sockets, drain):
    """On PostgreSQL the claim builds the ticket's JSON from its own statement's row, without
    loading or dumping objects: it must be exactly the resource GET /tickets/<id> returns
    (and `ticket.updated` carries), with every kind of field filled in."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from helpdesk.extensions import db
    from helpdesk.models import Customer, Identity

    make_tickets(app, api, drain, 1, prefix="shape")
    ticket_id = api.as_(agent).get("/api/v1/queue").json()["items"][0]["id"]
    with app.app_context():
        customer_id = db.session.execute(text("SELECT customer_id FROM tickets WHERE id = :id"),
                                         {"id": ticket_id}).scalar_one()
        db.session.add(Identity(customer_id=customer_id, kind="phone", value="+15550100",
                                verified=False))
        db.session.add(Identity(customer_id=customer_id, kind="telegram", value="ünïcode ✓"))
        other = Customer(name=None, tier="vip")
        db.session.add(other)
        db.session.flush()
        db.session.get(Customer, customer_id).merged_into_id = other.id
        db.session.execute(text(
            "UPDATE tickets SET tags = :tags, urgency_reasons = :reasons, language = 'de', "
            "contact_reason = 'billing', subject = NULL, urgency = 71, "
            "first_response_due_at = :due, resolution_due_at = :due, sla_breached = true "
            "WHERE id = :id"), {
                "id": ticket_id, "tags": '["vip", "Straße"]',
                "reasons": '[{"factor": "sentiment", "points": 30, "detail": "angry"}, '
                           '{"factor": "vip", "points": 41, "detail": "tier"}]',
                "due": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)})
        db.session.commit()
    watcher = sockets(agent.token)
    claimed = api.as_(agent).post("/api/v1/queue/next")
    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    resource = api.as_(supervisor).get(f"/api/v1/tickets/{ticket_id}").json()
    resource.pop("messages")
    assert body == resource
    assert list(body) == list(resource)  # the documented field order
    assert list(body["customer"]) == list(resource["customer"])
    assert body["customer"]["merged_into"] is not None
    assert [i["kind"] for i in body["customer"]["identities"]] == ["email", "phone", "telegram"]
    assert body["urgency_reasons"][1] == {"factor": "vip", "points": 41, "detail": "tier"}
    assert body["sla"] == {"first_response_due_at": "2026-01-02T03:04:05.006000+00:00",
                           "resolution_due_at": "2026-01-02T03:04:05.006000+00:00",
                           "breached": True}
    updated = watcher.wait_for("ticket.updated", lambda e: e["data"]["id"] == ticket_id)
    assert updated["data"] == body


def test_a_revoked_token_claims_nothing(app, api, agent, drain):
    """The claim reads the agent's columns from the token cache (no object of the session):
    a logout still applies from the next request, and the ticket stays in the queue."""
    make_tickets(app, api, drain, 2, prefix="revoked")
    assert api.as_(agent).post("/api/v1/queue/next").status_code == 200  # cached now
    assert api.as_(agent).post("/api/v1/auth/logout").status_code == 204
    assert api.as_(agent).post("/api/v1/queue/next").status_code == 401
    with app.app_context():
        from sqlalchemy import text

        from helpdesk.extensions import db

        queued = db.session.execute(text(
            "SELECT count(*) FROM tickets WHERE assignee_id IS NULL")).scalar_one()
    assert queued == 1


def test_claims_give_their_connections_back_to_the_pool_as_they_took_them(app, api, agent,
                                                                          drain):
    # On PostgreSQL a claim runs on a pooled connection switched to autocommit mode; one
    # left in it would make the next request's session commit statement by statement.
    make_tickets(app, api, drain, 2)
    me = api.as_(agent)
    assert me.post("/api/v1/queue/next").status_code == 200
    assert me.post("/api/v1/queue/next").status_code == 200
    assert me.post("/api/v1/queue/next").status_code == 204
    from helpdesk.extensions import db

    with app.app_context():
        pooled = [record.dbapi_connection for record in db.engine.pool._pool.queue]
    assert pooled
    assert [getattr(conn, "autocommit", False) for conn in pooled] == [False] * len(pooled)


def test_the_claim_statement_fits_the_drivers_statement_cache(app, api, agent, drain):
    # psycopg converts a statement's placeholders once and keeps the result only for a
    # statement of at most MAX_CACHED_STATEMENT_LENGTH characters; a longer one is parsed
    # again on every claim.
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    from helpdesk.extensions import db
    from helpdesk.services.routing import queue

    make_tickets(app, api, drain, 1)
    assert api.as_(agent).post("/api/v1/queue/next").status_code == 200
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            for shape in ((False, False), (True, False), (False, True), (True, True)):
                sql = queue._claim_driver_sql(*shape)
                assert len(sql.encode()) <= MAX_CACHED_STATEMENT_LENGTH
        else:  # SQLite claims in four statements of the ORM; this one is never built
            assert queue._claim_driver_sql.cache_info().currsize == 0


def test_an_agent_without_room_for_the_channels_they_take_is_at_capacity(app, api, drain):
    """An agent kept to calls, with 0.9 of their capacity free, takes no call (one weighs
    1): that is `409 at_capacity`, not `204` (an email would have fitted, but they take
    none)."""
    make_tickets(app, api, drain, 1)
    caller_only = factories.agent(app, channels=["voice"], capacity=0.9)
    refused = api.as_(caller_only).post("/api/v1/queue/next")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "at_capacity"
    roomy = factories.agent(app, channels=["voice"], capacity=1.0)
    assert api.as_(roomy).post("/api/v1/queue/next").status_code == 204  # no call waits
