"""Routing: urgency scores, eligibility (level, language, channel, capacity), push mode."""

from __future__ import annotations

import pytest

from tests.support import factories
from tests.support.live import api_message


@pytest.fixture
def channel(app):
    return factories.channel(app, "api")


def send(api, channel, n: int, text: str = "hello, question about my order", **extra):
    for i in range(n):
        api.post_api_webhook(channel, api_message(f"{text[:8]}-e{i}-{extra.get('tag', '')}",
                                                  f"{text[:8]}-m{i}-{extra.get('tag', '')}",
                                                  text=text, email=f"u{i}{extra.get('tag', '')}"
                                                  "@example.com",
                                                  **({"name": extra["name"]}
                                                     if "name" in extra else {})))


def test_angry_vip_scores_urgent_with_reasons(app, api, agent, channel, drain):
    customer = api.as_(agent).post("/api/v1/customers", json={
        "name": "Vera", "tier": "vip",
        "identities": [{"kind": "email", "value": "vera@example.com"}]}).json()
    api.post_api_webhook(channel, api_message(
        "e-vip", "m-vip", email="vera@example.com",
        text="This is UNACCEPTABLE. I want a refund NOW or I'm calling my lawyer. "
             "Your service is down again!"))
    drain()
    ticket = api.as_(agent).get(f"/api/v1/tickets?customer={customer['id']}").json()["items"][0]
    assert ticket["priority"] == "urgent"
    assert ticket["urgency"] >= 70
    factors = {reason["factor"] for reason in ticket["urgency_reasons"]}
    assert {"intent", "sentiment", "tier"} <= factors
    assert ticket["urgency"] == min(100, sum(r["points"] for r in ticket["urgency_reasons"]))
    assert ticket["language"] == "en"


def test_polite_question_scores_low(api, agent, channel, drain):
    api.post_api_webhook(channel, api_message(
        "e-p", "m-p", text="Hi, could you tell me how to change my invoice address? Thanks!"))
    drain()
    ticket = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
    assert ticket["priority"] == "low" and ticket["urgency"] < 20


def test_manual_priority_survives_rescoring(api, agent, channel, drain):
    api.post_api_webhook(channel, api_message("e1", "m1", thread_id="t1", text="question"))
    drain()
    ticket_id = api.as_(agent).get("/api/v1/tickets").json()["items"][0]["id"]
    api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}", json={"priority": "high"})
    api.post_api_webhook(channel, api_message("e2", "m2", thread_id="t1",
                                              text="REFUND NOW, this is fraud, lawyer!"))
    drain()
    ticket = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    assert ticket["priority"] == "high"
    assert ticket["urgency"] > 0


def test_language_and_channel_eligibility(app, api, channel, drain):
    spanish = "Hola, mi pedido no ha llegado todavía y necesito ayuda con la entrega"
    send(api, channel, 1, text=spanish, tag="es")
    drain()
    english_only = factories.agent(app, languages=["en"])
    email_only = factories.agent(app, channels=["email"])
    speaks_spanish = factories.agent(app, languages=["es", "en"], channels=["api"])
    assert api.as_(english_only).post("/api/v1/queue/next").status_code == 204
    assert api.as_(email_only).post("/api/v1/queue/next").status_code == 204
    claimed = api.as_(speaks_spanish).post("/api/v1/queue/next")
    assert claimed.status_code == 200 and claimed.json()["language"] == "es"


def test_capacity_is_weighted_per_channel(app, api, channel, drain):
    send(api, channel, 12)
    drain("ingest")
    worker = factories.agent(app, capacity=1.0)
    codes = [api.as_(worker).post("/api/v1/queue/next").status_code for _ in range(11)]
    assert codes[:10] == [200] * 10  # an asynchronous ticket takes a tenth
    assert codes[10] == 409
    body = api.as_(worker).post("/api/v1/queue/next").json()
    assert body["error"]["code"] == "at_capacity"


def test_a_kind_that_no_longer_fits_is_passed_over_by_the_weights_set(
        app, api, admin, channel, drain):
    mail = factories.channel(app, "raw_mime", name="mail")
    assert api.as_(admin).patch("/api/v1/settings", json={
        "capacity_weights": {"api": 0.5, "default": 0.2}}).status_code == 200

    def arrive(n: int, kind: str) -> None:
        if kind == "api":
            send(api, channel, 1, tag=f"a{n}")
        else:
            raw = (f"From: m{n}@example.com\r\nTo: help@example.com\r\nSubject: q{n}\r\n"
                   f"Message-ID: <q{n}@example.com>\r\n\r\nHello {n}\r\n").encode()
            assert api.session.post(f"{api.base_url}/webhooks/raw_mime/{mail.key}", data=raw,
                                    headers={"Content-Type": "message/rfc822"},
                                    timeout=30).status_code == 200
        drain("ingest")  # one at a time: the queue keeps this order

    for n, kind in enumerate(("api", "email", "api", "api", "email")):
        arrive(n, kind)
    worker = factories.agent(app, capacity=1.0)

    def claim():
        return api.as_(worker).post("/api/v1/queue/next")

    # api 0.5 (room 0.5), email 0.2 (0.3), api no longer fits: email 0.2 (0.1), then full.
    assert [claim().json()["channel"]["id"] for _ in range(3)] == [channel.id, mail.id, mail.id]
    refused = claim()
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "at_capacity"
    waiting = api.as_(admin).get("/api/v1/queue").json()["items"]
    assert [ticket["channel"]["id"] for ticket in waiting] == [channel.id, channel.id]


def test_push_mode_assigns_to_the_online_agent_with_most_free_capacity(
        app, api, admin, channel, sockets, drain):
    assert api.as_(admin).patch("/api/v1/settings", json={"routing_mode": "push"}).json()[
        "routing_mode"] == "push"
    busy = factories.agent(app, capacity=1.0)
    roomy = factories.agent(app, capacity=2.0)
    offline = factories.agent(app, capacity=5.0)
    sockets(busy.token)
    sockets(roomy.token)
    drain()
    send(api, channel, 3)
    drain()
    tickets = api.as_(admin).get("/api/v1/tickets").json()["items"]
    assignees = [t["assignee_id"] for t in tickets]
    assert offline.id not in assignees
    assert assignees.count(roomy.id) == 3  # 2.0 free beats 1.0 free every time
    assert api.as_(admin).get("/api/v1/queue").json()["total"] == 0


def test_push_mode_waits_for_someone_online_then_assigns(app, api, admin, channel, sockets,
                                                         drain):
    api.as_(admin).patch("/api/v1/settings", json={"routing_mode": "push"})
    send(api, channel, 2)
    drain()
    assert api.as_(admin).get("/api/v1/queue").json()["total"] == 2
    late = factories.agent(app)
    sockets(late.token)
    drain()
    tickets = api.as_(admin).get("/api/v1/tickets").json()["items"]
    assert {t["assignee_id"] for t in tickets} == {late.id}


def test_push_mode_respects_level(app, api, admin, agent, channel, sockets, drain):
    api.as_(admin).patch("/api/v1/settings", json={"routing_mode": "push"})
    sockets(agent.token)
    send(api, channel, 1)
    drain()
    ticket = api.as_(admin).get("/api/v1/tickets").json()["items"][0]
    assert ticket["assignee_id"] == agent.id
    api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/escalate",
                        json={"level": 2, "reason": "billing"})
    drain()
    after = api.as_(admin).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert after["assignee_id"] is None and after["level"] == 2


def test_settings_are_validated(api, admin, agent):
    assert api.as_(agent).patch("/api/v1/settings", json={"routing_mode": "push"}
                                ).status_code == 403
    bad = api.as_(admin).patch("/api/v1/settings", json={"routing_mode": "sometimes"})
    assert bad.status_code == 400 and "routing_mode" in bad.json()["error"]["fields"]


def test_push_mode_fill_lost_with_redis_is_done_by_the_sweeper(app, api, admin, channel,
                                                               sockets, drain):
    """An agent coming online asks for a fill job; if Redis loses it (restarted empty), the
    sweeper gives them what it would have (Redis holds nothing that cannot be rebuilt)."""
    from helpdesk.queues import ROUTING, get_queue, redis_connection
    from workers.worker import SWEEP_LOCK, sweep_once

    api.as_(admin).patch("/api/v1/settings", json={"routing_mode": "push"})
    send(api, channel, 2)
    drain()
    assert api.as_(admin).get("/api/v1/queue").json()["total"] == 2
    late = factories.agent(app)
    sockets(late.token)  # online: a fill job is enqueued ...
    with app.app_context():
        lost = get_queue(ROUTING, app)
        assert lost.count >= 1
        lost.empty()  # ... and lost
        redis_connection(app).delete(SWEEP_LOCK)
    drain()
    assert api.as_(admin).get("/api/v1/queue").json()["total"] == 2
    sweep_once(app)
    tickets = api.as_(admin).get("/api/v1/tickets").json()["items"]
    assert {t["assignee_id"] for t in tickets} == {late.id}
    assert api.as_(admin).get("/api/v1/queue").json()["total"] == 0


def test_agents_workload_counts_each_active_agents_tickets_in_one_request(
        app, api, admin, supervisor, agent, channel, drain):
    """What the supervisors' board shows per agent: their new and open tickets and the
    capacity those use (one request for all; the board asked two counts per agent)."""
    send(api, channel, 3)
    drain()
    for _ in range(2):
        assert api.as_(agent).post("/api/v1/queue/next").status_code == 200
    resting = factories.agent(app, active=False)
    assert api.as_(agent).get("/api/v1/agents/workload").status_code == 403
    answer = api.as_(supervisor).get("/api/v1/agents/workload").json()
    by_agent = {item["agent_id"]: item for item in answer["items"]}
    assert answer["total"] == len(answer["items"]) == 3 and resting.id not in by_agent
    assert by_agent[agent.id] == {"agent_id": agent.id, "tickets": 2, "load": 0.2,
                                  "capacity": 1.0}  # two api tickets: 0.1 each by default
    assert by_agent[supervisor.id]["tickets"] == by_agent[admin.id]["tickets"] == 0


def test_a_deactivated_agents_unsolved_tickets_return_to_the_queue(app, api, admin, channel,
                                                                   drain):
    """A deactivated agent can no longer work their tickets: those not solved go back to the
    queue (a pending one unassigned, waiting for its customer); solved ones keep who solved
    them (the metrics' agent)."""
    send(api, channel, 3)
    drain()
    leaving = factories.agent(app)
    ids = [api.as_(leaving).post("/api/v1/queue/next").json()["id"] for _ in range(3)]
    as_leaving = api.as_(leaving)
    assert as_leaving.patch(f"/api/v1/tickets/{ids[1]}",
                            json={"status": "pending"}).status_code == 200
    assert as_leaving.patch(f"/api/v1/tickets/{ids[2]}",
                            json={"status": "solved"}).status_code == 200
    response = api.as_(admin).patch(f"/api/v1/agents/{leaving.id}", json={"active": False})
    assert response.status_code == 200, response.text
    after = {i: api.as_(admin).get(f"/api/v1/tickets/{i}").json() for i in ids}
    assert [after[i]["assignee_id"] for i in ids] == [None, None, leaving.id]
    assert [after[i]["status"] for i in ids] == ["open", "pending", "solved"]
    queued = [t["id"] for t in api.as_(admin).get("/api/v1/queue").json()["items"]]
    assert queued == [ids[0]]  # the pending one enters when its customer answers
    other = factories.agent(app)
    assert api.as_(other).post("/api/v1/queue/next").json()["id"] == ids[0]


def test_a_solved_ticket_reopened_after_its_agent_left_returns_to_the_queue(app, api, admin,
                                                                           channel, drain):
    """Solved tickets keep a deactivated agent (the metrics' agent); reopened, by their
    customer or by a person, they stayed with that agent: open, and in no one's queue."""
    send(api, channel, 2)
    drain()
    leaving = factories.agent(app)
    ids = [api.as_(leaving).post("/api/v1/queue/next").json()["id"] for _ in range(2)]
    for ticket_id in ids:
        assert api.as_(leaving).patch(f"/api/v1/tickets/{ticket_id}",
                                      json={"status": "solved"}).status_code == 200
    assert api.as_(admin).patch(f"/api/v1/agents/{leaving.id}",
                                json={"active": False}).status_code == 200
    customer = api.as_(admin).get(f"/api/v1/tickets/{ids[0]}").json()["customer"]
    api.post_api_webhook(channel, api_message("again-1", "again-m1", text="It broke again",
                                              email=customer["identities"][0]["value"]))
    drain()
    reopened = api.as_(admin).patch(f"/api/v1/tickets/{ids[1]}", json={"status": "open"})
    assert reopened.status_code == 200 and reopened.json()["assignee_id"] is None
    by_customer = api.as_(admin).get(f"/api/v1/tickets/{ids[0]}").json()
    assert (by_customer["status"], by_customer["assignee_id"]) == ("open", None)
    queued = {t["id"] for t in api.as_(admin).get("/api/v1/queue").json()["items"]}
    assert set(ids) <= queued
    kept = factories.agent(app)  # an agent who still works here keeps what they solved
    mine = api.as_(kept).post("/api/v1/queue/next").json()["id"]
    assert api.as_(kept).patch(f"/api/v1/tickets/{mine}",
                               json={"status": "solved"}).status_code == 200
    assert api.as_(kept).patch(f"/api/v1/tickets/{mine}",
                               json={"status": "open"}).json()["assignee_id"] == kept.id


def test_an_agent_moved_below_a_tickets_level_lets_go_of_it(app, api, admin, supervisor,
                                                            channel, drain):
    send(api, channel, 2)
    drain()
    senior = factories.agent(app, level=2)
    first, second = (api.as_(senior).post("/api/v1/queue/next").json()["id"] for _ in range(2))
    escalated = api.as_(supervisor).post(f"/api/v1/tickets/{first}/escalate",
                                         json={"level": 2, "reason": "billing"})
    assert escalated.json()["assignee_id"] == senior.id  # level 2 may keep it
    response = api.as_(admin).patch(f"/api/v1/agents/{senior.id}", json={"level": 1})
    assert response.status_code == 200, response.text
    assert api.as_(admin).get(f"/api/v1/tickets/{first}").json()["assignee_id"] is None
    assert api.as_(admin).get(f"/api/v1/tickets/{second}").json()["assignee_id"] == senior.id
    assert [t["id"] for t in api.as_(admin).get("/api/v1/queue").json()["items"]] == [first]
    history = [e["event"] for e in api.as_(admin).get(
        f"/api/v1/customers/{escalated.json()['customer_id']}/timeline").json()["items"]
        if e["type"] == "event"]
    assert history[-1]["name"] == "assigned"  # its history says who let go of it
    assert (history[-1]["data"]["from"], history[-1]["data"]["to"]) == (senior.id, None)


def test_merging_a_vip_record_rescores_the_survivors_waiting_tickets(api, agent, channel,
                                                                      drain):
    """The survivor becomes a VIP (and their contacts count together): their waiting
    tickets were left as scored before."""
    api.post_api_webhook(channel, api_message("e-1", "m-1", email="ana@example.com",
                                              text="hello, question about my order"))
    drain()
    (ticket,) = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert "tier" not in {r["factor"] for r in ticket["urgency_reasons"]}
    vip = api.as_(agent).post("/api/v1/customers", json={
        "name": "Ana", "tier": "vip",
        "identities": [{"kind": "email", "value": "ana.work@example.com"}]}).json()
    merged = api.as_(agent).post(f"/api/v1/customers/{ticket['customer_id']}/merge",
                                 json={"other_id": vip["id"]})
    assert merged.status_code == 200 and merged.json()["tier"] == "vip"
    drain()
    after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert "tier" in {r["factor"] for r in after["urgency_reasons"]}
    assert after["urgency"] > ticket["urgency"]


def test_a_customers_new_ticket_rescores_their_other_waiting_ticket(api, agent, channel,
                                                                    drain):
    """A second conversation (another thread) is a repeat contact for the first ticket too,
    which was scored only when its own messages came."""
    api.post_api_webhook(channel, api_message("e-1", "m-1", email="ana@example.com",
                                              text="hello, question about my order",
                                              thread_id="order-1"))
    drain()
    (first,) = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert "repeat_contact" not in {r["factor"] for r in first["urgency_reasons"]}
    api.post_api_webhook(channel, api_message("e-2", "m-2", email="ana@example.com",
                                              text="and another about my invoice",
                                              thread_id="invoice-7"))
    drain()
    tickets = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert len(tickets) == 2
    after = api.as_(agent).get(f"/api/v1/tickets/{first['id']}").json()
    assert "repeat_contact" in {r["factor"] for r in after["urgency_reasons"]}
