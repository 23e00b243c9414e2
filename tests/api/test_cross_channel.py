"""One person on every channel: one customer, one timeline in time order.

Lucía is known by her email and her mobile number (created through the REST API). She emails
(Postmark), opens the website chat with the same email, texts (Twilio SMS), writes on WhatsApp
through Twilio and through Meta, then calls (Twilio Voice) from the same number.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from email.utils import formatdate

from tests.support import factories
from tests.support.payloads import sample
from tests.support.signing import Webhooks, customer_with, tickets_of, timeline

EMAIL, PHONE = "lucia.fernandez@example.com", "+34600111222"
TWILIO = {"account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "phone_number": "+34910000000"}
META = {"app_secret": "meta-secret", "verify_token": "v", "access_token": "EAAG"}


def channels(app) -> dict:
    make = factories.channel
    return {
        "email": make(app, "postmark", "email", {"address": "help@example.com"}, {}),
        "chat": make(app, "widget", "chat", {"website": "https://shop.example.com"}, {}),
        "sms": make(app, "twilio", "sms", TWILIO, {"auth_token": "tw-sms"}),
        "twilio-whatsapp": make(app, "twilio", "whatsapp", TWILIO, {"auth_token": "tw-wa"}),
        "meta-whatsapp": make(app, "meta", "whatsapp", {"phone_number_id": "1065"}, META),
        "voice": make(app, "twilio", "voice", TWILIO, {"auth_token": "tw-voice"}),
    }


def send_everything(api, chans: dict, drain) -> None:
    hooks = Webhooks(api.base_url)
    email = json.loads(sample("postmark", "inbound.json"))
    email.update(MessageID="pm-lucia-1", From=EMAIL, FromFull={"Email": EMAIL, "Name": "Lucía"},
                 Subject="Order 5521 arrived damaged", Date=formatdate(usegmt=True),
                 StrippedTextReply="The box was crushed and the lamp is broken.")
    assert hooks.postmark(chans["email"], email).status_code == 200
    drain()

    session = api.post(f"/api/v1/chat/{chans['chat'].key}/sessions",
                       json={"name": "Lucía", "email": EMAIL})
    assert session.status_code == 201, session.text
    said = api.post(f"/api/v1/chat/sessions/{session.json()['session_id']}/messages",
                    headers={"Authorization": f"Bearer {session.json()['visitor_token']}"},
                    json={"text": "Is anyone there about my lamp?", "client_message_id": "c1"})
    assert said.status_code == 201, said.text

    sms = {"MessageSid": "SM" + "1" * 32, "AccountSid": TWILIO["account_sid"], "From": PHONE,
           "To": TWILIO["phone_number"], "Body": "Sent photos by email", "NumMedia": "0",
           "SmsStatus": "received"}
    assert hooks.twilio(chans["sms"], sms, "tw-sms").status_code == 200
    drain()
    whatsapp = {**sms, "MessageSid": "SM" + "2" * 32, "From": f"whatsapp:{PHONE}",
                "To": f"whatsapp:{TWILIO['phone_number']}", "ProfileName": "Lucía F",
                "WaId": PHONE[1:], "Body": "Any news on the refund?"}
    assert hooks.twilio(chans["twilio-whatsapp"], whatsapp, "tw-wa").status_code == 200
    drain()

    time.sleep(1.05)  # WhatsApp Cloud stamps messages in whole seconds
    cloud = json.loads(sample("meta", "whatsapp_text.json"))
    value = cloud["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = PHONE[1:]
    value["messages"][0].update({"from": PHONE[1:], "id": "wamid.lucia1",
                                 "timestamp": str(int(time.time())),
                                 "text": {"body": "Writing from the WhatsApp app too"}})
    assert hooks.meta(chans["meta-whatsapp"], cloud, META["app_secret"]).status_code == 200
    drain()

    sid = "CA" + "3" * 32
    base = {"AccountSid": TWILIO["account_sid"], "CallSid": sid, "From": PHONE,
            "To": TWILIO["phone_number"], "Direction": "inbound"}
    for params in ({**base, "CallStatus": "ringing"},
                   {**base, "CallStatus": "in-progress", "QueueResult": "bridged",
                    "QueueTime": "30"},
                   {**base, "CallStatus": "completed", "CallDuration": "210",
                    "CallbackSource": "call-progress-events", "SequenceNumber": "3"}):
        assert hooks.twilio(chans["voice"], params, "tw-voice").status_code == 200
    drain()


def test_one_customer_one_timeline_across_every_channel(app, api, agent, drain):
    staff = api.as_(agent)
    created = staff.post("/api/v1/customers", json={
        "name": "Lucía Fernández", "identities": [{"kind": "email", "value": EMAIL},
                                                  {"kind": "phone", "value": PHONE}]})
    assert created.status_code == 201, created.text
    lucia = created.json()["id"]
    chans = channels(app)

    send_everything(api, chans, drain)

    assert staff.get("/api/v1/customers").json()["total"] == 1
    for identity in (f"email:{EMAIL}", f"phone:{PHONE}"):
        assert customer_with(staff, identity)["id"] == lucia
    customer = staff.get(f"/api/v1/customers/{lucia}").json()
    assert customer["name"] == "Lucía Fernández"
    assert {i["kind"] for i in customer["identities"]} == {"email", "phone", "chat_visitor"}
    assert all(t["customer_id"] == lucia for t in staff.get("/api/v1/tickets").json()["items"])

    items = timeline(staff, lucia)
    times = [datetime.fromisoformat(item["at"]) for item in items]
    assert times == sorted(times)
    contacts = [(item["type"], item["channel"]["id"]) for item in items if item["type"] != "event"]
    assert contacts == [("message", chans["email"].id), ("message", chans["chat"].id),
                        ("message", chans["sms"].id), ("message", chans["twilio-whatsapp"].id),
                        ("message", chans["meta-whatsapp"].id), ("call", chans["voice"].id)]
    texts = [item["message"]["text"] for item in items if item["type"] == "message"]
    assert texts == ["The box was crushed and the lamp is broken.",
                     "Is anyone there about my lamp?", "Sent photos by email",
                     "Any news on the refund?", "Writing from the WhatsApp app too"]
    (call,) = [item["call"] for item in items if item["type"] == "call"]
    assert (call["outcome"], call["wait_seconds"], call["talk_seconds"]) == ("answered", 30, 180)
    assert {t["channel"]["kind"] for t in tickets_of(staff, lucia)} <= {"email", "chat"}
