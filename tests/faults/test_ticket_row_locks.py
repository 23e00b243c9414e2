"""Concurrent changes decide on what they meet when they write, not on what they read
before another change committed. PATCH, reply and escalation lock the ticket's row first;
a claim weighs its agent's room after the agent's other claim commits. Each test holds the
row (or the claim) from a second connection, changes it there, and checks that the request
waiting for it saw that change. PostgreSQL only: SQLite runs one writing transaction at a
time, so it has no such race."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from tests.support import factories
from tests.support.live import api_message


@pytest.fixture
def row_holder(second_connection):
    """A second connection holding a ticket's row, as another request's transaction would."""
    return second_connection


def _while_held(holder, ticket_id: int, request, change_sql: str, params: tuple):
    """Start `request` while the row is held, let it wait, apply the holder's change and
    commit; the request's response."""
    with holder.cursor() as cursor:
        cursor.execute("SELECT id FROM tickets WHERE id = %s FOR UPDATE", (ticket_id,))
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("response", request()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the request did not wait for the ticket's row"
    with holder.cursor() as cursor:
        cursor.execute(change_sql, (*params, ticket_id))
    holder.commit()
    thread.join(10)
    return answer["response"]


def test_taking_a_ticket_another_agent_claimed_meanwhile_is_refused(app, api, agent, ticket,
                                                                    row_holder):
    other = factories.agent(app, role="agent")
    response = _while_held(
        row_holder, ticket["id"],
        lambda: api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}",
                                     json={"assignee_id": agent.id}),
        "UPDATE tickets SET assignee_id = %s, status = 'open' WHERE id = %s", (other.id,))
    assert response.status_code == 403, response.text
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["assignee_id"] == other.id


def test_an_escalation_lets_go_of_an_agent_who_claimed_meanwhile(app, api, supervisor, ticket,
                                                                row_holder):
    first_level = factories.agent(app, role="agent", level=1)
    response = _while_held(
        row_holder, ticket["id"],
        lambda: api.as_(supervisor).post(f"/api/v1/tickets/{ticket['id']}/escalate",
                                         json={"level": 2, "reason": "billing"}),
        "UPDATE tickets SET assignee_id = %s, status = 'open' WHERE id = %s",
        (first_level.id,))
    assert response.status_code == 200, response.text
    after = api.as_(supervisor).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["level"] == 2
    assert after["assignee_id"] is None  # below the new level: back to the queue
    assert response.json()["assignee_id"] is None


def test_a_status_change_after_a_close_committed_meanwhile_is_refused(api, agent, ticket,
                                                                     row_holder):
    response = _while_held(
        row_holder, ticket["id"],
        lambda: api.as_(agent).patch(f"/api/v1/tickets/{ticket['id']}",
                                     json={"status": "pending"}),
        "UPDATE tickets SET status = %s, solved_at = now(), closed_at = now() WHERE id = %s",
        ("closed",))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "ticket_closed"
    assert api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()["status"] == "closed"


def test_a_reply_after_a_claim_committed_meanwhile_leaves_the_claim(app, api, agent, ticket,
                                                                   row_holder):
    other = factories.agent(app, role="agent")
    response = _while_held(
        row_holder, ticket["id"],
        lambda: api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/messages",
                                    json={"text": "On its way"}),
        "UPDATE tickets SET assignee_id = %s, status = 'open' WHERE id = %s", (other.id,))
    assert response.status_code == 201, response.text
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["assignee_id"] == other.id  # a reply takes only an unassigned ticket


def test_a_claim_waits_for_the_agents_claim_in_flight_and_then_weighs_its_ticket(
        app, api, admin, drain, row_holder):
    """Two claims of one agent at once (two tabs, a double click): the second weighs the
    agent's room after the first commits, so an agent with room for one ticket gets one."""
    channel = factories.channel(app, "api", settings={})
    for n in range(2):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text=f"Order {n} is late",
                                                  email=f"c{n}@example.com"))
    drain("ingest")
    agent = factories.agent(app, role="agent", capacity=0.15)  # room for one api ticket
    queued = api.as_(agent).get("/api/v1/queue").json()["items"]
    assert len(queued) == 2
    with row_holder.cursor() as cursor:  # the first claim, not committed yet
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x4841, agent.id))
        cursor.execute("UPDATE tickets SET assignee_id = %s, status = 'open' WHERE id = %s",
                       (agent.id, queued[0]["id"]))
    answer: dict = {}
    second = threading.Thread(target=lambda: answer.setdefault(
        "response", api.as_(agent).post("/api/v1/queue/next")))
    second.start()
    time.sleep(0.5)
    assert second.is_alive(), "the second claim did not wait for the first"
    row_holder.commit()
    second.join(10)
    response = answer["response"]
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "at_capacity"
    mine = api.as_(agent).get("/api/v1/tickets", params={"assignee": "me"}).json()
    assert [t["id"] for t in mine["items"]] == [queued[0]["id"]]


def test_push_mode_waits_for_the_agents_claim_in_flight(app, api, admin, drain, row_holder):
    """Push mode filling an agent who freed capacity while that agent's own claim is in
    flight (it holds the agent's lock, its ticket not written yet): the fill weighs the
    agent's room after the claim commits, so an agent with room for one gets one."""
    from helpdesk.services.routing import queue

    channel = factories.channel(app, "api", settings={})
    for n in range(2):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", text=f"Order {n} is late",
                                                  email=f"c{n}@example.com"))
    drain("ingest")
    agent = factories.agent(app, role="agent", capacity=0.15)  # room for one api ticket
    assert api.as_(admin).patch("/api/v1/settings",
                                json={"routing_mode": "push"}).status_code == 200
    queued = api.as_(agent).get("/api/v1/queue").json()["items"]
    assert len(queued) == 2
    with row_holder.cursor() as cursor:  # the agent is online; their claim starts
        cursor.execute("UPDATE agents SET presence = 'online' WHERE id = %s", (agent.id,))
        row_holder.commit()
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x4841, agent.id))
    given: dict = {}

    def fill() -> None:
        with app.app_context():
            given["count"] = queue.fill(agent.id)

    filling = threading.Thread(target=fill)
    filling.start()
    time.sleep(0.5)
    assert filling.is_alive(), "the fill did not wait for the claim in flight"
    with row_holder.cursor() as cursor:  # the claim takes its ticket and commits
        cursor.execute("UPDATE tickets SET assignee_id = %s, status = 'open' WHERE id = %s",
                       (agent.id, queued[0]["id"]))
    row_holder.commit()
    filling.join(10)
    assert given["count"] == 0
    mine = api.as_(agent).get("/api/v1/tickets", params={"assignee": "me"}).json()
    assert [t["id"] for t in mine["items"]] == [queued[0]["id"]]


def _customer_ticket(app, api, drain):
    """An `api` channel and its customer's ticket, as an agent reads it."""
    channel = factories.channel(app, "api", settings={})
    api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
    drain("ingest")
    return channel, api.as_(factories.agent(app)).get("/api/v1/tickets").json()["items"][0]


def _ingest(app):
    from helpdesk.services.ingest import batches

    def run():
        with app.app_context():
            return batches.process_waiting()
    return run


def test_a_message_on_a_ticket_solved_meanwhile_reopens_it(app, api, agent, drain, row_holder):
    channel, ticket = _customer_ticket(app, api, drain)
    api.post_api_webhook(channel, api_message(event_id="evt-2", message_id="m-2",
                                              text="It still has not come"))
    processed = _while_held(
        row_holder, ticket["id"], _ingest(app),
        "UPDATE tickets SET status = 'solved', solved_at = now() WHERE id = %s", ())
    assert processed == 1
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["status"] == "open"  # the customer wrote after the solve: reopened
    assert after["solved_at"] is None
    assert [m["text"] for m in after["messages"]][-1] == "It still has not come"


def test_a_message_after_a_close_committed_meanwhile_opens_a_new_ticket(app, api, agent, drain,
                                                                       row_holder):
    channel, ticket = _customer_ticket(app, api, drain)
    api.post_api_webhook(channel, api_message(event_id="evt-2", message_id="m-2",
                                              text="One more question"))
    _while_held(row_holder, ticket["id"], _ingest(app),
                "UPDATE tickets SET status = 'closed', solved_at = now() WHERE id = %s", ())
    before = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert before["status"] == "closed"  # a closed ticket never reopens
    assert len(before["messages"]) == 1
    tickets = api.as_(agent).get("/api/v1/tickets", params={"status": "new"}).json()["items"]
    assert [t["subject"] for t in tickets] == ["One more question"]


def test_an_answered_call_waits_for_the_customers_threading_and_joins_their_ticket(
        app, api, agent, drain, row_holder):
    """Which ticket a call joins is decided one customer at a time, as for messages: a
    transaction holding the customer (a batch making their ticket the latest) commits
    first, and the call joins that ticket."""
    from helpdesk.services.ingest.batch_state import CUSTOMER_LOCK_SPACE
    from tests.api.test_voice import ACCOUNT, CALLER, OUR_NUMBER, TOKEN, incoming, queue_result
    from tests.support.signing import Webhooks

    settings, secrets = {"account_sid": ACCOUNT, "phone_number": OUR_NUMBER}, {"auth_token": TOKEN}
    sms = factories.channel(app, "twilio", "sms", settings, secrets)
    voice = factories.channel(app, "twilio", "voice", settings, secrets)
    hooks = Webhooks(api.base_url)
    texted = hooks.twilio(sms, {"MessageSid": "SM00000000000000000000000000000031",
                                "AccountSid": ACCOUNT, "From": CALLER, "To": OUR_NUMBER,
                                "Body": "My router is down again", "NumMedia": "0"}, TOKEN)
    assert texted.status_code == 200, texted.text
    drain("ingest")
    (ticket,) = api.as_(agent).get("/api/v1/tickets").json()["items"]
    with row_holder.cursor() as cursor:  # quiet for two days: no call would join it alone
        cursor.execute("UPDATE tickets SET last_activity_at = now() - interval '2 days' "
                       "WHERE id = %s", (ticket["id"],))
    row_holder.commit()
    sid = "CA00000000000000000000000000000031"
    assert hooks.twilio(voice, incoming(sid), TOKEN).status_code == 200
    drain("ingest")
    assert hooks.twilio(voice, queue_result(sid, "bridged", 12), TOKEN).status_code == 200

    with row_holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                       (CUSTOMER_LOCK_SPACE, ticket["customer_id"]))
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("n", _ingest(app)()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the call did not wait for the customer's threading"
    with row_holder.cursor() as cursor:  # the other transaction's message: active again
        cursor.execute("UPDATE tickets SET last_activity_at = now() WHERE id = %s",
                       (ticket["id"],))
    row_holder.commit()
    thread.join(10)
    assert answer["n"] == 1
    tickets = api.as_(agent).get("/api/v1/tickets",
                                 params={"customer": ticket["customer_id"]}).json()["items"]
    assert [t["id"] for t in tickets] == [ticket["id"]]  # the call joined it: no phone ticket


def test_the_same_message_through_two_deliveries_at_once_opens_no_empty_ticket(
        app, api, agent, drain, row_holder):
    """A delivery processed alone (a replay, its own job) carrying a message another
    delivery stores at the same moment: it waits for that customer's threading, sees the
    message stored and stops, instead of opening a ticket and then finding its message a
    duplicate (the empty ticket stayed in the queue)."""
    from helpdesk.models import Delivery
    from helpdesk.services.ingest import deliveries
    from helpdesk.services.ingest.batch_state import CUSTOMER_LOCK_SPACE

    channel, ticket = _customer_ticket(app, api, drain)
    with row_holder.cursor() as cursor:  # closed: the next message opens a new ticket
        cursor.execute("UPDATE tickets SET status = 'closed' WHERE id = %s", (ticket["id"],))
    row_holder.commit()
    api.post_api_webhook(channel, api_message(event_id="evt-2", message_id="m-2",
                                              text="Hello again"))
    with app.app_context():
        delivery_id = db.session.execute(select(func.max(Delivery.id))).scalar_one()
        db.session.rollback()

    with row_holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                       (CUSTOMER_LOCK_SPACE, ticket["customer_id"]))

    def alone():
        with app.app_context():
            return deliveries.process(delivery_id)
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("status", alone()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the delivery did not wait for the customer's threading"
    with row_holder.cursor() as cursor:  # the other delivery's copy of the message
        cursor.execute(
            "INSERT INTO messages (ticket_id, channel_id, direction, internal, author_type, "
            "external_id, text, in_reply_to, \"references\", delivery_status, flags, "
            "created_at, updated_at) SELECT ticket_id, channel_id, direction, internal, "
            "author_type, 'm-2', 'Hello again', in_reply_to, \"references\", "
            "delivery_status, flags, now(), now() "
            "FROM messages WHERE ticket_id = %s", (ticket["id"],))
    row_holder.commit()
    thread.join(10)
    assert answer["status"] == "duplicate"
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert [t["id"] for t in tickets] == [ticket["id"]]  # no empty ticket beside it


def test_a_delivery_report_racing_a_read_report_never_moves_the_reply_back(
        app, api, agent, drain, row_holder):
    """Two workers' batches apply `delivered` and `read` for one reply at the same moment:
    the later one is weighed against what the other committed (it read `sent` and wrote
    `delivered` over `read`)."""
    from tests.api.test_voice import ACCOUNT, CALLER, OUR_NUMBER, TOKEN
    from tests.support.signing import Webhooks

    sms = factories.channel(app, "twilio", "sms", {"account_sid": ACCOUNT,
                                                   "phone_number": OUR_NUMBER},
                            {"auth_token": TOKEN})
    hooks = Webhooks(api.base_url)
    assert hooks.twilio(sms, {"MessageSid": "SM00000000000000000000000000000041",
                              "AccountSid": ACCOUNT, "From": CALLER, "To": OUR_NUMBER,
                              "Body": "Is my order on its way?", "NumMedia": "0"},
                        TOKEN).status_code == 200
    drain("ingest")
    with row_holder.cursor() as cursor:  # our reply, handed to Twilio
        cursor.execute(
            "INSERT INTO messages (ticket_id, channel_id, direction, internal, author_type, "
            "external_id, text, in_reply_to, \"references\", delivery_status, flags, "
            "created_at, updated_at) SELECT ticket_id, channel_id, 'outbound', false, "
            "'agent', 'SMout0000000000000000000000000041', 'It ships today', in_reply_to, "
            "\"references\", 'sent', flags, now(), now() FROM messages")
    row_holder.commit()
    report = hooks.twilio(sms, {"MessageSid": "SMout0000000000000000000000000041",
                                "MessageStatus": "delivered", "AccountSid": ACCOUNT,
                                "From": OUR_NUMBER, "To": CALLER}, TOKEN)
    assert report.status_code == 200

    with row_holder.cursor() as cursor:
        cursor.execute("SELECT id FROM messages WHERE external_id = %s FOR UPDATE",
                       ("SMout0000000000000000000000000041",))
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("n", _ingest(app)()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the report did not wait for the reply's row"
    with row_holder.cursor() as cursor:  # the other worker's `read`, committed first
        cursor.execute("UPDATE messages SET delivery_status = 'read' WHERE external_id = %s",
                       ("SMout0000000000000000000000000041",))
    row_holder.commit()
    thread.join(10)
    assert answer["n"] == 1
    with row_holder.cursor() as cursor:
        cursor.execute("SELECT delivery_status FROM messages WHERE external_id = %s",
                       ("SMout0000000000000000000000000041",))
        assert cursor.fetchone()[0] == "read"
    row_holder.rollback()


def test_a_message_joining_its_thread_on_a_ticket_solved_meanwhile_reopens_it(
        app, api, agent, drain, row_holder):
    """Threaded by its `thread_id` (not the customer's recent ticket, which the batch's
    first read locks): the ticket is locked and read again when the message finds it."""
    channel = factories.channel(app, "api", settings={})
    api.post_api_webhook(channel, api_message(text="My order", thread_id="t-9"))
    drain("ingest")
    (ticket,) = api.as_(agent).get("/api/v1/tickets").json()["items"]
    with row_holder.cursor() as cursor:  # quiet for two days: only its thread finds it
        cursor.execute("UPDATE tickets SET last_activity_at = now() - interval '2 days' "
                       "WHERE id = %s", (ticket["id"],))
    row_holder.commit()
    api.post_api_webhook(channel, api_message(event_id="evt-2", message_id="m-2",
                                              text="Any news?", thread_id="t-9"))
    _while_held(row_holder, ticket["id"], _ingest(app),
                "UPDATE tickets SET status = 'solved', solved_at = now() WHERE id = %s", ())
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert [m["text"] for m in after["messages"]] == ["My order", "Any news?"]
    assert after["status"] == "open" and after["solved_at"] is None  # reopened


def test_a_merge_waits_for_the_batch_threading_its_customer(app, api, agent, drain,
                                                             row_holder):
    """A merge takes the customers' threading locks first, as ingest does before their
    tickets' rows: a batch mid-way commits before the merge moves anything (in the other
    order each could wait for the other's rows)."""
    from helpdesk.services.ingest.batch_state import CUSTOMER_LOCK_SPACE

    channel = factories.channel(app, "api", settings={})
    for n, email in enumerate(("ana@example.com", "ana.work@example.com")):
        api.post_api_webhook(channel, api_message(event_id=f"evt-{n}", message_id=f"m-{n}",
                                                  text=f"Hello {n}", email=email))
    drain("ingest")
    survivor, other = sorted(t["customer_id"] for t in
                             api.as_(agent).get("/api/v1/tickets").json()["items"])
    with row_holder.cursor() as cursor:  # a batch threading the other customer's message
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", (CUSTOMER_LOCK_SPACE, other))
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("response", api.as_(agent).post(
        f"/api/v1/customers/{survivor}/merge", json={"other_id": other})))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the merge did not wait for the customer's threading"
    with row_holder.cursor() as cursor:  # nothing moved yet
        cursor.execute("SELECT merged_into_id FROM customers WHERE id = %s", (other,))
        assert cursor.fetchone()[0] is None
    row_holder.commit()
    thread.join(10)
    assert answer["response"].status_code == 200, answer["response"].text
    tickets = api.as_(agent).get("/api/v1/tickets", params={"customer": survivor}).json()
    assert tickets["total"] == 2


def _two_records_of_ana(app, api, agent, drain) -> tuple:
    """An `api` channel, Ana's two records (by two addresses) each with a ticket:
    (channel, {customer id: ticket id}, survivor, other) for a merge of the second."""
    channel = factories.channel(app, "api", settings={})
    for n, email in enumerate(("ana@example.com", "ana.work@example.com")):
        api.post_api_webhook(channel, api_message(event_id=f"evt-{n}", message_id=f"m-{n}",
                                                  text=f"Hello {n}", email=email))
    drain("ingest")
    by_customer = {t["customer_id"]: t["id"] for t in
                   api.as_(agent).get("/api/v1/tickets").json()["items"]}
    survivor, other = sorted(by_customer)
    return channel, by_customer, survivor, other


_MERGE_SQL = ("UPDATE identities SET customer_id = %(survivor)s WHERE customer_id = %(other)s",
              "UPDATE tickets SET customer_id = %(survivor)s WHERE customer_id = %(other)s",
              "UPDATE customers SET merged_into_id = %(survivor)s WHERE id = %(other)s")


@pytest.mark.parametrize("path", ["batch", "alone", "two identity kinds"])
def test_a_message_waiting_for_a_merge_lands_on_the_survivor(app, api, agent, drain,
                                                             row_holder, path):
    """A message of a customer being merged away, processed while the merge holds the
    customer's threading lock: once the merge commits, the message is threaded as the
    survivor's (it joins the moved ticket), not on the merged-away customer, whose
    identities the message's batch had read before it waited."""
    from helpdesk.models import Delivery
    from helpdesk.services.ingest import deliveries
    from helpdesk.services.ingest.batch_state import CUSTOMER_LOCK_SPACE

    channel, by_customer, survivor, other = _two_records_of_ana(app, api, agent, drain)
    extra = {"customer": {"phone": "+14155550123"}} if path == "two identity kinds" else {}
    api.post_api_webhook(channel, api_message(event_id="evt-2", message_id="m-2",
                                              text="Any news?", email="ana.work@example.com",
                                              **extra))
    with app.app_context():
        delivery_id = db.session.execute(select(func.max(Delivery.id))).scalar_one()
        db.session.rollback()
    with row_holder.cursor() as cursor:  # the merge, not committed yet
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", (CUSTOMER_LOCK_SPACE, other))

    def alone():
        with app.app_context():
            return deliveries.process(delivery_id)
    answer: dict = {}
    work = alone if path == "alone" else _ingest(app)
    thread = threading.Thread(target=lambda: answer.setdefault("done", work()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the message did not wait for the customer's threading"
    with row_holder.cursor() as cursor:
        for statement in _MERGE_SQL:
            cursor.execute(statement, {"survivor": survivor, "other": other})
    row_holder.commit()
    thread.join(10)
    assert answer["done"] in (1, "processed")
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert {t["customer_id"] for t in tickets} == {survivor}  # nothing on the merged-away
    moved = api.as_(agent).get(f"/api/v1/tickets/{by_customer[other]}").json()
    assert [m["text"] for m in moved["messages"]] == ["Hello 1", "Any news?"]


def test_a_batch_finding_the_survivor_held_does_not_wait_for_it_out_of_order(
        app, api, agent, drain, row_holder, database_url, caplog):
    """After the merge it waited for, the batch needs the survivor's lock while holding
    the merged-away customer's: out of id order, so it does not wait (a batch holding the
    survivor and waiting for ours would deadlock). It lets go and its message is threaded
    alone once the survivor is free: on the survivor's ticket."""
    from helpdesk.services.ingest.batch_state import CUSTOMER_LOCK_SPACE

    channel, by_customer, survivor, other = _two_records_of_ana(app, api, agent, drain)
    api.post_api_webhook(channel, api_message(event_id="evt-2", message_id="m-2",
                                              text="Any news?", email="ana.work@example.com"))
    with row_holder.cursor() as cursor:  # the merge, not committed yet
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", (CUSTOMER_LOCK_SPACE, other))
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.setdefault("done", _ingest(app)()))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "the message did not wait for the customer's threading"
    survivor_holder = psycopg.connect(database_url)  # another batch, threading the survivor
    try:
        with survivor_holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           (CUSTOMER_LOCK_SPACE, survivor))
        with row_holder.cursor() as cursor:
            for statement in _MERGE_SQL:
                cursor.execute(statement, {"survivor": survivor, "other": other})
        row_holder.commit()
        time.sleep(0.5)
        with survivor_holder.cursor() as cursor:  # ... which then wants the merged-away one
            cursor.execute("SET lock_timeout = '5s'")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           (CUSTOMER_LOCK_SPACE, other))
        assert thread.is_alive(), "the message did not wait for the survivor's threading"
        survivor_holder.commit()
    finally:
        survivor_holder.close()
    thread.join(15)
    assert not thread.is_alive()
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert {t["customer_id"] for t in tickets} == {survivor}
    moved = api.as_(agent).get(f"/api/v1/tickets/{by_customer[other]}").json()
    assert [m["text"] for m in moved["messages"]] == ["Hello 1", "Any news?"]
    assert "deadlock" not in caplog.text.lower()
