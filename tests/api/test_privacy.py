"""Customers and privacy: merge, export, erasure, and the audit log that records them."""

from __future__ import annotations

import json
import secrets
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Attachment, Message, Ticket, TicketEvent
from tests.support import factories
from tests.support.live import api_message

PHONE = "+34600000000"


def find(api, who, identity: str) -> list[int]:
    response = api.as_(who).get("/api/v1/customers", params={"identity": identity})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def ask(api, channel, event: str, text: str, thread: str, email: str | None = None,
        phone: str | None = None) -> None:
    payload = api_message(event, f"m-{event}", text=text, email=email, thread_id=thread,
                          customer={"phone": phone} if phone else {})
    assert api.post_api_webhook(channel, payload).status_code == 200


def mail(sender: str, message_id: str, content: bytes, text: str = "My IBAN is ES00 1234") -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = sender, "support@acme.test"
    message["Subject"], message["Message-ID"] = "Invoice question", f"<{message_id}>"
    message.set_content(text)
    message.add_attachment(content, maintype="application", subtype="pdf",
                           filename="invoice-bob.pdf")
    return message.as_bytes()


def post_mail(api, channel, raw: bytes) -> None:
    response = api.session.post(f"{api.base_url}/webhooks/raw_mime/{channel.key}", data=raw,
                                headers={"Content-Type": "message/rfc822"}, timeout=30)
    assert response.status_code == 200, response.text


def audit_actions(api, admin, subject_id: int) -> list[tuple[str, int | None]]:
    response = api.as_(admin).get("/api/v1/audit", params={"subject_id": subject_id})
    assert response.status_code == 200, response.text
    return [(item["action"], item["actor_id"]) for item in response.json()["items"]]


def two_customers(app, api, agent, drain) -> tuple[int, int]:
    """Ana wrote by email and again from her phone: two records of one person."""
    channel = factories.channel(app, "api")
    ask(api, channel, "e1", "Order 17 is late", "t-mail", email="ana@example.com")
    ask(api, channel, "e2", "Me again, from my phone", "t-phone", phone=PHONE)
    drain("ingest", "routing")
    [by_mail], [by_phone] = find(api, agent, "email:ana@example.com"), find(
        api, agent, f"phone:{PHONE}")
    assert by_mail != by_phone
    return by_mail, by_phone


def test_merge_moves_everything_and_the_old_id_points_to_the_survivor(app, api, admin,
                                                                       agent, drain):
    survivor, other = two_customers(app, api, agent, drain)
    api.as_(admin).patch("/api/v1/settings", json={"surveys": {"delay_seconds": 0}})
    [phone_ticket] = api.as_(agent).get("/api/v1/tickets", params={"customer": other}
                                        ).json()["items"]
    api.as_(agent).patch(f"/api/v1/tickets/{phone_ticket['id']}", json={"status": "solved"})

    response = api.as_(agent).post(f"/api/v1/customers/{survivor}/merge",
                                   json={"other_id": other})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == survivor and "merged_into" not in body
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("email", "ana@example.com"), ("phone", PHONE)}

    old = api.as_(agent).get(f"/api/v1/customers/{other}")
    assert old.status_code == 200
    assert (old.json()["merged_into"], old.json()["identities"]) == (survivor, [])
    assert find(api, agent, f"phone:{PHONE}") == [survivor]
    listed = api.as_(agent).get("/api/v1/tickets", params={"customer": survivor}).json()
    assert listed["total"] == 2
    timeline = api.as_(agent).get(f"/api/v1/customers/{survivor}/timeline").json()["items"]
    assert {item["message"]["text"] for item in timeline if item["type"] == "message"} == {
        "Order 17 is late", "Me again, from my phone"}
    # the merged-away id's timeline is the survivor's, which holds all it had (not empty)
    assert api.as_(agent).get(f"/api/v1/customers/{other}/timeline").json()[
        "items"] == timeline
    assert [s["customer_id"] for s in api.as_(admin).get(
        "/api/v1/surveys", params={"ticket": phone_ticket["id"]}).json()["items"]] == [survivor]

    channel = factories.channel(app, "api", name="later")
    ask(api, channel, "e3", "Any news?", "t-new", phone=PHONE)
    drain("ingest", "routing")
    with app.app_context():
        latest = db.session.execute(select(Ticket).order_by(Ticket.id.desc())).scalars().first()
        assert latest.customer_id == survivor
    assert ("customer.merged", agent.id) in audit_actions(api, admin, survivor)
    assert api.as_(agent).get("/api/v1/tickets", params={"customer": other}).json()[
        "total"] == 0


def test_merge_refusals(app, api, admin, agent, drain):
    survivor, other = two_customers(app, api, agent, drain)
    erased = api.as_(agent).post("/api/v1/customers", json={
        "name": "Gone", "identities": [{"kind": "email", "value": "gone@example.com"}]}).json()
    assert api.as_(admin).delete(f"/api/v1/customers/{erased['id']}").status_code == 204

    def merge(into, body):
        return api.as_(agent).post(f"/api/v1/customers/{into}/merge", json=body)

    assert merge(survivor, {"other_id": survivor}).status_code == 422
    into_erased = merge(erased["id"], {"other_id": other})  # gone, as for every other route
    assert (into_erased.status_code, into_erased.json()["error"]["code"]) == (404, "not_found")
    assert merge(survivor, {"other_id": erased["id"]}).status_code == 422
    assert merge(survivor, {"other_id": 999999}).status_code == 422
    assert merge(999999, {"other_id": other}).status_code == 404
    assert merge(survivor, {}).status_code == 400
    assert merge(survivor, {"other_id": "two"}).status_code == 400
    assert api.post(f"/api/v1/customers/{survivor}/merge",
                    json={"other_id": other}).status_code == 401
    assert merge(survivor, {"other_id": other}).status_code == 200
    again = merge(survivor, {"other_id": other})
    assert (again.status_code, again.json()["error"]["code"]) == (422, "customer_merged")
    assert merge(other, {"other_id": survivor}).status_code == 422


def test_export_holds_tickets_messages_identities_and_is_audited(app, api, admin, agent,
                                                                  drain):
    survivor, other = two_customers(app, api, agent, drain)
    api.as_(agent).post(f"/api/v1/customers/{survivor}/merge", json={"other_id": other})
    assert api.get(f"/api/v1/customers/{survivor}/export").status_code == 401
    response = api.as_(agent).get(f"/api/v1/customers/{survivor}/export")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["customer"]["id"] == survivor
    assert {i["value"] for i in data["customer"]["identities"]} == {"ana@example.com", PHONE}
    assert len(data["tickets"]) == 2
    assert {m["text"] for m in data["messages"]} == {"Order 17 is late",
                                                     "Me again, from my phone"}
    assert [c["id"] for c in data["merged_customers"]] == [other]
    assert {"calls", "chat_sessions", "surveys", "ticket_events", "exported_at"} <= set(data)
    assert ("customer.exported", agent.id) in audit_actions(api, admin, survivor)
    followed = api.as_(agent).get(f"/api/v1/customers/{other}/export").json()
    assert followed["customer"]["id"] == survivor  # the merged-away id exports the person
    assert api.as_(agent).get("/api/v1/customers/999999/export").status_code == 404


def test_the_export_holds_a_mails_whole_text_signature_included(app, api, agent, drain):
    """A mail's `text` leaves out its quoted history and signature (what the agent reads);
    the export left them out too, though they are the person's data (erasure blanks them)."""
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    post_mail(api, channel, mail("Bob Stone <bob@example.com>", "sig-1@example.com", b"%PDF",
                                 "Where is my refund?\n\n-- \nBob Stone\n+34 600 000 000"))
    drain("ingest", "routing")
    [bob] = find(api, agent, "email:bob@example.com")
    [message] = api.as_(agent).get(f"/api/v1/customers/{bob}/export").json()["messages"]
    assert "+34 600 000 000" not in message["text"]
    assert "+34 600 000 000" in message["full_text"]


def test_erasure_removes_the_person_and_keeps_anonymous_facts(app, api, admin, supervisor,
                                                              agent, drain):
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    content = secrets.token_bytes(256)
    post_mail(api, channel, mail("Bob Stone <bob@example.com>", "erase-1@example.com", content))
    drain("ingest", "routing")
    [bob] = find(api, agent, "email:bob@example.com")
    [ticket] = api.as_(agent).get("/api/v1/tickets", params={"customer": bob}).json()["items"]
    api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/messages",
                        json={"text": "Hi Bob, your IBAN is noted", "internal": True})
    assert api.as_(agent).post(f"/api/v1/tickets/{ticket['id']}/escalate", json={
        "level": 2, "reason": "Bob Stone's IBAN needs billing"}).status_code == 200
    with app.app_context():
        [attachment] = db.session.execute(select(Attachment)).scalars().all()
        stored = Path(app.config["DATA_DIR"]) / attachment.storage_path
    assert stored.read_bytes() == content

    assert api.delete(f"/api/v1/customers/{bob}").status_code == 401
    for who in (agent, supervisor):
        assert api.as_(who).delete(f"/api/v1/customers/{bob}").status_code == 403
    assert api.as_(admin).delete(f"/api/v1/customers/{bob}").status_code == 204

    for path in (f"/api/v1/customers/{bob}", f"/api/v1/customers/{bob}/timeline",
                 f"/api/v1/customers/{bob}/export"):
        assert api.as_(agent).get(path).status_code == 404
    assert api.as_(admin).delete(f"/api/v1/customers/{bob}").status_code == 404
    assert find(api, agent, "email:bob@example.com") == []
    assert not stored.exists()

    kept = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert (kept["id"], kept["subject"], kept["customer"]["name"]) == (
        ticket["id"], "[erased]", None)
    assert [(m["direction"], m["text"]) for m in kept["messages"]] == [
        ("inbound", "[erased]"), ("outbound", "[erased]")]
    assert [a["filename"] for a in kept["messages"][0]["attachments"]] == ["[erased]"]
    assert kept["messages"][0]["author"]["name"] is None
    with app.app_context():
        rows = db.session.execute(select(Message)).scalars().all()
        assert all(row.full_text in (None, "[erased]") and row.message_id is None
                   and row.sender is None for row in rows)
        assert any(row.direction == "inbound" for row in rows)
        # The provider's id of the mail (its Message-ID) named Bob's address too: a digest
        # now, one per message still.
        inbound = [row.external_id for row in rows if row.direction == "inbound"]
        assert inbound and all(value.startswith("erased:") and "erase-1" not in value
                               for value in inbound)
        # an escalation's reason, an agent's free text about Bob as a note is, was kept
        events = db.session.execute(select(TicketEvent)).scalars().all()
        assert "IBAN" not in json.dumps([(e.note, e.data) for e in events])
        assert any(e.name == "escalated" and e.data["to"] == 2 for e in events)

    audit = api.as_(admin).get("/api/v1/audit", params={"action": "customer.erased"})
    [entry] = audit.json()["items"]
    assert (entry["subject_type"], entry["subject_id"], entry["actor_id"]) == (
        "customer", bob, admin.id)
    assert "bob" not in json.dumps(entry).lower()
    assert api.as_(agent).get("/api/v1/audit").status_code == 403
    assert api.as_(supervisor).get("/api/v1/audit").status_code == 403

    post_mail(api, channel, mail("Bob Stone <bob@example.com>", "erase-2@example.com",
                                 secrets.token_bytes(16), "Hello again"))
    drain("ingest", "routing")
    [new_bob] = find(api, agent, "email:bob@example.com")
    assert new_bob != bob
    [new_ticket] = api.as_(agent).get("/api/v1/tickets", params={"customer": new_bob}
                                      ).json()["items"]
    assert new_ticket["id"] != ticket["id"]


def test_erasure_covers_merged_records_and_keeps_shared_files(app, api, admin, agent, drain):
    channel = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    shared = secrets.token_bytes(64)
    post_mail(api, channel, mail("ann@example.com", "a-1@example.com", shared))
    post_mail(api, channel, mail("ann.other@example.com", "a-2@example.com",
                                 secrets.token_bytes(8)))
    post_mail(api, channel, mail("carl@example.com", "c-1@example.com", shared))
    drain("ingest", "routing")
    [ann], [ann_other] = find(api, agent, "email:ann@example.com"), find(
        api, agent, "email:ann.other@example.com")
    api.as_(agent).post(f"/api/v1/customers/{ann}/merge", json={"other_id": ann_other})
    refused = api.as_(admin).delete(f"/api/v1/customers/{ann_other}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "customer_merged")

    assert api.as_(admin).delete(f"/api/v1/customers/{ann}").status_code == 204
    assert api.as_(agent).get(f"/api/v1/customers/{ann_other}").status_code == 404
    with app.app_context():
        paths = set(db.session.execute(select(Attachment.storage_path)).scalars())
    assert len(paths - {None}) == 1  # Carl's copy of the shared file is still there
    assert (Path(app.config["DATA_DIR"]) / next(iter(paths - {None}))).read_bytes() == shared


def test_admin_changes_are_audited_without_secret_values(api, admin):
    created = api.as_(admin).post("/api/v1/channels", json={
        "name": "CRM", "kind": "api", "provider": "api",
        "secrets": {"signing_secret": "VERY-SECRET-VALUE"}}).json()
    api.as_(admin).patch(f"/api/v1/channels/{created['id']}",
                         json={"secrets": {"signing_secret": "ROTATED-VALUE"}})
    api.as_(admin).patch("/api/v1/settings", json={"routing_mode": "push"})
    api.as_(admin).put("/api/v1/sla-policies/high", json={"first_response_seconds": 600})
    api.as_(admin).delete(f"/api/v1/channels/{created['id']}")
    log = api.as_(admin).get("/api/v1/audit")
    actions = [entry["action"] for entry in log.json()["items"]]
    assert {"channel.created", "channel.updated", "channel.deleted", "settings.changed",
            "sla_policy.saved"} <= set(actions)
    assert "VERY-SECRET-VALUE" not in log.text and "ROTATED-VALUE" not in log.text
    created_entry = next(e for e in log.json()["items"] if e["action"] == "channel.created")
    assert created_entry["data"]["secrets"] == ["signing_secret"]
    assert created_entry["actor_id"] == admin.id


def test_a_persons_messages_on_someone_elses_ticket_are_exported_and_erased(
        app, api, admin, agent, drain):
    """Bob wrote into Ana's conversation (a reply in her mail thread, the same thread id):
    his message is on her ticket. It is his data: his export holds it and his erasure
    erases it, and Ana's own message stays."""
    channel = factories.channel(app, "api")
    ask(api, channel, "e1", "Ana: my order is late", "t-shared", email="ana@example.com")
    ask(api, channel, "e2", "Bob here, my IBAN is ES00 9999", "t-shared", email="bob@example.com")
    drain("ingest", "routing")
    [ana], [bob] = find(api, agent, "email:ana@example.com"), find(api, agent,
                                                                   "email:bob@example.com")
    [ticket] = api.as_(agent).get("/api/v1/tickets").json()["items"]
    assert ticket["customer_id"] == ana
    exported = api.as_(agent).get(f"/api/v1/customers/{bob}/export").json()
    assert [m["text"] for m in exported["messages"]] == ["Bob here, my IBAN is ES00 9999"]
    hers = api.as_(agent).get(f"/api/v1/customers/{ana}/export").json()  # not his data
    assert [m["text"] for m in hers["messages"]] == ["Ana: my order is late"]
    assert "bob@example.com" not in str(hers)
    assert api.as_(admin).delete(f"/api/v1/customers/{bob}").status_code == 204
    with app.app_context():
        texts = set(db.session.execute(select(Message.text)).scalars())
    assert "Bob here, my IBAN is ES00 9999" not in texts
    assert "Ana: my order is late" in texts


def test_erasure_leaves_other_customers_raw_deliveries_alone(app, api, admin, agent, drain):
    """Erasing jo@example.com must not blank what mojo@example.com sent (a search of raw
    bodies for the person's address would match it)."""
    from helpdesk.models import Delivery

    channel = factories.channel(app, "api")
    ask(api, channel, "e1", "Jo's question", "t-jo", email="jo@example.com")
    ask(api, channel, "e2", "Mojo's question", "t-mojo", email="mojo@example.com")
    drain("ingest", "routing")
    [jo] = find(api, agent, "email:jo@example.com")
    assert api.as_(admin).delete(f"/api/v1/customers/{jo}").status_code == 204
    with app.app_context():
        bodies = db.session.execute(select(Delivery.body)).scalars().all()
    assert sum(b"Mojo's question" in body for body in bodies) == 1
    assert not [body for body in bodies if b"Jo's question" in body]


def test_the_same_message_stored_again_after_an_erasure_is_erased_again(app, api, admin,
                                                                         agent, drain):
    """An integrator posts a message again (a new event id, the same message id) after the
    person was erased: it is a new message, and erasing the new customer works too (the
    digest of each row is its own: the second erasure met the first one's unique key)."""
    channel = factories.channel(app, "api")
    for round_ in range(2):
        assert api.post_api_webhook(channel, api_message(
            f"evt-{round_}", "m-same", email="again@example.com")).status_code == 200
        drain()
        [person] = find(api, agent, "email:again@example.com")
        assert api.as_(admin).delete(f"/api/v1/customers/{person}").status_code == 204
    with app.app_context():
        ids = db.session.execute(select(Message.external_id)).scalars().all()
    assert len(ids) == 2 and len(set(ids)) == 2 and all(i.startswith("erased:") for i in ids)
