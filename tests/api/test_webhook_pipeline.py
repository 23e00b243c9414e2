"""The spine end to end: signed webhook → stored delivery → customer + ticket → live event."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import Customer, Delivery, Message, Ticket
from tests.support import factories
from tests.support.live import api_message


def count(app, model) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def test_signed_webhook_creates_customer_ticket_and_live_events(app, api, admin, agent,
                                                                 sockets, drain):
    channel = factories.channel(app, "api")
    agent_socket = sockets(agent.token)
    supervisor_socket = sockets(admin.token)

    response = api.post_api_webhook(channel, api_message(text="My order never arrived"))
    assert response.status_code == 200
    assert count(app, Delivery) == 1 and count(app, Message) == 0  # stored, not yet processed

    drain()

    created = agent_socket.wait_for("ticket.created")
    assert created["type"] == "ticket.created"
    assert created["data"]["subject"] == "My order never arrived"
    assert created["data"]["customer"]["identities"] == [
        {"kind": "email", "value": "ana@example.com", "verified": True}]
    message = agent_socket.wait_for("message.created")
    assert message["data"]["text"] == "My order never arrived"
    assert message["data"]["direction"] == "inbound"
    # queue.updated is coalesced: the event that counts this ticket arrives soon after.
    queue = supervisor_socket.wait_for("queue.updated", lambda e: e["data"]["size"] == 1)
    assert sum(queue["data"]["by_priority"].values()) == 1

    tickets = api.as_(agent).get("/api/v1/tickets").json()
    assert tickets["total"] == 1
    ticket = tickets["items"][0]
    assert ticket["status"] == "new" and ticket["channel"]["provider"] == "api"
    deliveries = api.as_(admin).get("/api/v1/deliveries?status=processed").json()
    assert deliveries["total"] == 1


def test_bad_signature_is_refused_and_nothing_stored(app, api):
    channel = factories.channel(app, "api")
    response = api.post_api_webhook(channel, api_message(), secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert count(app, Delivery) == 0


def test_missing_signature_is_refused(app, api, http):
    channel = factories.channel(app, "api")
    response = http.post(f"{api.base_url}/webhooks/api/{channel.key}",
                         json=api_message())
    assert response.status_code == 401
    assert count(app, Delivery) == 0


def test_stale_timestamp_is_refused(app, api):
    channel = factories.channel(app, "api")
    response = api.post_api_webhook(channel, api_message(), timestamp=int(time.time()) - 301)
    assert response.status_code == 401
    assert count(app, Delivery) == 0


def test_unknown_channel_key_is_404(app, api, http):
    factories.channel(app, "api")
    response = http.post(f"{api.base_url}/webhooks/api/nope", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_malformed_json_from_verified_sender_is_400(app, api):
    channel = factories.channel(app, "api")
    response = api.post_api_webhook(channel, b'{"event_id": "x", "type": ')
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]
    missing = api.post_api_webhook(channel, {"event_id": "e", "type": "message",
                                             "customer": {"email": "a@b.c"}})
    assert missing.status_code == 400
    assert "message" in missing.json()["error"]["message"]
    assert count(app, Delivery) == 0


def test_fields_the_worker_could_not_use_are_400_at_the_door(app, api):
    """Caught when the webhook arrives, not after a 200 in the worker (where the delivery
    failed, or an empty event_id made every later empty id a duplicate)."""
    channel = factories.channel(app, "api")
    good = api_message(text="hello")
    cases = [
        ("event_id", {**good, "event_id": ""}),
        ("message.id", {**good, "message": {**good["message"], "id": "  "}}),
        ("size", {**good, "message": {**good["message"], "attachments": [
            {"url": "https://files.example/a.pdf", "size": "big"}]}}),
        ("size", {**good, "message": {**good["message"], "attachments": [
            {"url": "https://files.example/a.pdf", "size": -1}]}}),
        ("filename", {**good, "message": {**good["message"], "attachments": [
            {"url": "https://files.example/a.pdf", "filename": ["a.pdf"]}]}}),
        ("content_type", {**good, "message": {**good["message"], "attachments": [
            {"url": "https://files.example/a.pdf", "content_type": {"x": 1}}]}}),
        ("valid email", {**good, "customer": {"email": "not an address"}}),
        # (scoped to the channel, `<id>:` made 319 characters too long for an identity)
        ("valid email", {**good, "customer": {"external_id": "x" * 319}}),
        ("valid email", {**good, "customer": {"external_id": "   "}}),  # (one for everyone)
        ("sent_at", {**good, "message": {**good["message"],
                                         "sent_at": "0001-01-01T00:00:00+01:00"}}),
    ]
    for expected, payload in cases:
        response = api.post_api_webhook(channel, payload)
        assert response.status_code == 400, (payload, response.text)
        assert expected in response.json()["error"]["message"], response.text
    assert count(app, Delivery) == 0
    kept = api.post_api_webhook(channel, {**good, "customer": {"email": "not an address",
                                                               "external_id": "c-1"}})
    assert kept.status_code == 200  # one usable identity is enough


def test_too_large_is_413_before_anything_else(app, api, http):
    channel = factories.channel(app, "api")
    body = json.dumps(api_message(text="x" * (1024 * 1024 + 10))).encode()
    response = http.post(f"{api.base_url}/webhooks/api/{channel.key}", data=body,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_wrong_content_type_is_415(app, api, http):
    channel = factories.channel(app, "api")
    response = http.post(f"{api.base_url}/webhooks/api/{channel.key}", data=b"hello",
                         headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_duplicate_delivery_gives_one_message(app, api, drain):
    channel = factories.channel(app, "api")
    payload = api_message()
    assert api.post_api_webhook(channel, payload).status_code == 200
    assert api.post_api_webhook(channel, payload).status_code == 200
    drain()
    assert count(app, Delivery) == 1
    assert count(app, Message) == 1


def test_same_message_under_new_event_id_is_marked_duplicate(app, api, admin, drain):
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message(event_id="e1", message_id="m-1"))
    api.post_api_webhook(channel, api_message(event_id="e2", message_id="m-1"))
    drain()
    assert count(app, Message) == 1
    statuses = {d["status"] for d in api.as_(admin).get("/api/v1/deliveries").json()["items"]}
    assert statuses == {"processed", "duplicate"}


def test_twenty_concurrent_duplicates_give_one_message(app, api, drain):
    channel = factories.channel(app, "api")
    payload = api_message(text="posted twenty times")
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: api.post_api_webhook(channel, payload).status_code,
                              range(20)))
    assert codes == [200] * 20
    drain()
    assert count(app, Delivery) == 1
    assert count(app, Message) == 1
    assert count(app, Customer) == 1


def test_thread_id_joins_messages_into_one_ticket(app, api, drain):
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", thread_id="t-9"))
    api.post_api_webhook(channel, api_message("e2", "m2", text="again", thread_id="t-9",
                                              email="other@example.com"))
    api.post_api_webhook(channel, api_message("e3", "m3", thread_id="t-10",
                                              email="third@example.com"))
    drain()
    assert count(app, Ticket) == 2
    with app.app_context():
        by_ticket = db.session.execute(
            select(Message.ticket_id, func.count()).group_by(Message.ticket_id)).all()
    assert sorted(n for _, n in by_ticket) == [1, 2]


def test_external_id_identity_is_scoped_to_the_channel(app, api, agent, drain):
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message(email=None, customer={"external_id": "crm-42"}))
    drain()
    found = api.as_(agent).get(f"/api/v1/customers?identity=external:{channel.id}:crm-42").json()
    assert found["total"] == 1
    assert found["items"][0]["identities"][0]["value"] == f"{channel.id}:crm-42"


def test_parse_failure_marks_delivery_failed_and_replay_works(app, api, admin, drain):
    channel = factories.channel(app, "raw_mime")
    response = api.session.post(f"{api.base_url}/webhooks/raw_mime/{channel.key}", data=b"",
                                headers={"Content-Type": "message/rfc822"})
    assert response.status_code == 200
    drain()
    failed = api.as_(admin).get("/api/v1/deliveries?status=failed").json()
    assert failed["total"] == 1 and failed["items"][0]["error"]
    replayed = api.as_(admin).post(f"/api/v1/deliveries/{failed['items'][0]['id']}/replay")
    assert replayed.status_code == 200 and replayed.json()["status"] == "received"
    drain()
    again = api.as_(admin).get("/api/v1/deliveries?status=failed").json()
    assert again["total"] == 1 and again["items"][0]["attempts"] == 2


def test_a_deleted_channels_delivery_is_not_replayed(app, api, admin, drain):
    """Replaying it made tickets on a retired channel, answered with its old keys."""
    channel, kept = factories.channel(app, "raw_mime"), factories.channel(app, "raw_mime")
    for each in (channel, kept):
        api.session.post(f"{api.base_url}/webhooks/raw_mime/{each.key}", data=b"",
                         headers={"Content-Type": "message/rfc822"})
    drain()
    [other, failed] = api.as_(admin).get("/api/v1/deliveries?status=failed").json()["items"]
    assert api.as_(admin).delete(f"/api/v1/channels/{channel.id}").status_code == 204
    refused = api.as_(admin).post(f"/api/v1/deliveries/{failed['id']}/replay")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "channel_deleted"
    with app.app_context():
        from helpdesk.services.ingest import deliveries
        assert deliveries.replay_failed() == 1  # (the CLI's loop skips it, and goes on)
    after = api.as_(admin).get("/api/v1/deliveries?status=failed").json()["items"]
    assert [d["id"] for d in after] == [failed["id"]]
    waiting = api.as_(admin).get("/api/v1/deliveries?status=received").json()["items"]
    assert [d["id"] for d in waiting] == [other["id"]]


def test_sweeper_does_not_duplicate_a_job_still_waiting(app, api, drain):
    from helpdesk.queues import INGEST, get_queue
    from helpdesk.services.ingest import deliveries

    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message(text="waiting in the queue"))
    time.sleep(1.1)  # older than the tests' one-second sweep grace
    with app.app_context():
        deliveries.sweep_unprocessed()
        deliveries.sweep_unprocessed()
        assert get_queue(INGEST, app).count == 1
    drain()
    assert count(app, Message) == 1


def test_routing_jobs_for_one_ticket_coalesce(app, api, drain):
    from helpdesk.queues import ROUTING, get_queue

    channel = factories.channel(app, "api")
    for n in range(5):
        api.post_api_webhook(channel, api_message(f"e{n}", f"m{n}", thread_id="t"))
    drain("ingest")
    assert get_queue(ROUTING, app).count == 1
    drain()
    assert count(app, Ticket) == 1
