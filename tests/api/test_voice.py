"""Twilio Voice end to end: TwiML for the incoming call, callbacks merged into one call.

Every callback is a signed form post to the channel's one URL (or the callback URLs our TwiML
named); after the real worker runs, the call is read back from the customer's timeline.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
import time_machine

from tests.support import factories
from tests.support.live import api_message
from tests.support.signing import (
    Webhooks,
    customer_with,
    deliveries,
    tickets_of,
    timeline,
    twilio_signature,
)

TOKEN = "voice-auth-token"
CALLER = "+14155550100"
OUR_NUMBER = "+18005551212"
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
BASE = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "From": CALLER, "Caller": CALLER,
        "To": OUR_NUMBER, "Called": OUR_NUMBER, "Direction": "inbound"}


@pytest.fixture
def voice(app):
    return factories.channel(app, "twilio", "voice",
                             {"account_sid": ACCOUNT, "phone_number": OUR_NUMBER},
                             {"auth_token": TOKEN})


@pytest.fixture
def call(api, voice, drain):
    """post(params, url=None) → the response, after the worker ran."""
    hooks = Webhooks(api.base_url)

    def post(params: dict, url: str | None = None):
        response = hooks.twilio(voice, params, TOKEN, url=url)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/xml")
        drain()
        return response

    return post


def incoming(sid: str) -> dict:
    return {**BASE, "CallSid": sid, "CallStatus": "ringing"}


def status(sid: str, call_status: str, sequence: int, **extra: str) -> dict:
    return {**BASE, "CallSid": sid, "CallStatus": call_status, "SequenceNumber": str(sequence),
            "CallbackSource": "call-progress-events",
            "Timestamp": "Sun, 22 Nov 2026 10:00:00 +0000", **extra}


def queue_result(sid: str, result: str, wait: int) -> dict:
    return {**BASE, "CallSid": sid, "CallStatus": "in-progress", "QueueResult": result,
            "QueueSid": "QU5ef8732a3c49700934481addd5ce1659", "QueueTime": str(wait)}


def twiml(response) -> ET.Element:
    return ET.fromstring(response.content)


def calls_of(api, agent) -> tuple[dict, list[dict]]:
    """The caller and the call items of their timeline."""
    customer = customer_with(api.as_(agent), f"phone:{CALLER}")
    items = timeline(api.as_(agent), customer["id"])
    return customer, [item for item in items if item["type"] == "call"]


# --- the incoming call: queue or voicemail ---------------------------------------------------

@pytest.mark.parametrize("call_status", ["ringing", None])
def test_nobody_online_records_a_transcribed_voicemail(call, call_status):
    params = incoming("CA00000000000000000000000000000001")
    if call_status is None:  # a hand-made incoming call (Twilio always says `ringing`)
        del params["CallStatus"]
    root = twiml(call(params))
    say, record = list(root)
    assert say.tag == "Say" and say.text
    assert (record.tag, record.get("transcribe")) == ("Record", "true")
    for attribute, event in [("action", "recording"), ("transcribeCallback", "transcription"),
                             ("recordingStatusCallback", "recording_status")]:
        assert record.get(attribute).endswith(f"?event={event}")


def test_an_online_agent_gets_the_caller_enqueued(call, agent, sockets):
    socket = sockets(agent.token)
    (enqueue,) = list(twiml(call(incoming("CA00000000000000000000000000000002"))))
    assert (enqueue.tag, enqueue.text) == ("Enqueue", "support")
    assert enqueue.get("action").endswith("?event=enqueue")
    assert socket.call("presence", {"status": "away"}) == {"ok": True}
    (_say, record) = list(twiml(call(incoming("CA00000000000000000000000000000003"))))
    assert record.tag == "Record"


# --- callbacks out of order and repeated: one call ------------------------------------------

def test_out_of_order_and_repeated_callbacks_make_one_call(api, admin, agent, call, voice):
    sid = "CA00000000000000000000000000000010"
    call(status(sid, "completed", 3, CallDuration="95", Duration="2"))  # completed first
    call(incoming(sid))
    call(status(sid, "ringing", 0))
    call(queue_result(sid, "bridged", 15))
    call(status(sid, "in-progress", 1))
    call(status(sid, "completed", 3, CallDuration="95", Duration="2"))  # a retry
    call(status(sid, "ringing", 0))
    call(incoming(sid))
    _customer, calls = calls_of(api, agent)
    assert len(calls) == 1
    item = calls[0]["call"]
    assert (item["external_id"], item["direction"]) == (sid, "inbound")
    assert (item["status"], item["outcome"]) == ("completed", "answered")
    statuses = [d["status"] for d in deliveries(api.as_(admin))]
    assert len(statuses) == 5 and "failed" not in statuses  # the repeats were not stored


# (`redirected-from-bridged` did not fit its column: PostgreSQL lost the call's delivery)
@pytest.mark.parametrize("result", ["bridged", "redirected-from-bridged"])
def test_bridged_call_is_answered_with_wait_and_talk_time(api, agent, call, result):
    sid = "CA00000000000000000000000000000011"
    call(incoming(sid))
    call(status(sid, "in-progress", 1))
    call(queue_result(sid, result, 22))
    call(status(sid, "completed", 2, CallDuration="142"))
    customer, (item,) = calls_of(api, agent)
    assert item["call"]["outcome"] == "answered"
    assert (item["call"]["wait_seconds"], item["call"]["talk_seconds"]) == (22, 120)
    (ticket,) = tickets_of(api.as_(agent), customer["id"])
    assert item["ticket_id"] == ticket["id"] and ticket["channel"]["kind"] == "voice"


def test_the_duration_counts_when_an_action_callback_said_completed_first(api, agent, call):
    """The `<Enqueue action>` callback came after the hang-up, saying `completed` without a
    sequence number; the final status callback (the only one with `CallDuration`) then was
    not newer, and its duration was dropped: no talk time, no work session."""
    sid = "CA00000000000000000000000000000016"
    call(incoming(sid))
    call({**queue_result(sid, "bridged", 22), "CallStatus": "completed"})
    call(status(sid, "completed", 3, CallDuration="142"))
    _, (item,) = calls_of(api, agent)
    assert item["call"]["outcome"] == "answered"
    assert (item["call"]["wait_seconds"], item["call"]["talk_seconds"]) == (22, 120)


def test_a_recording_of_the_wait_does_not_make_an_abandoned_call_a_voicemail(api, agent, call):
    """An account that records every call sends a recording of a caller who hung up in the
    queue: that call was counted as a voicemail (and opened a ticket), out of the ACR."""
    sid = "CA00000000000000000000000000000017"
    call(incoming(sid))
    call({"AccountSid": ACCOUNT, "CallSid": sid, "RecordingStatus": "completed",
          "RecordingSid": "RE7c8b2a7e8f1d4a6b9c0d1e2f3a4b5c6d", "RecordingDuration": "40",
          "RecordingSource": "StartCallRecordingAPI",
          "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
                          "/Recordings/RE7c8b2a7e8f1d4a6b9c0d1e2f3a4b5c6d"})
    call(queue_result(sid, "hangup", 42))
    call(status(sid, "completed", 2, CallDuration="44"))
    customer, (item,) = calls_of(api, agent)
    assert item["call"]["outcome"] == "abandoned"
    assert tickets_of(api.as_(agent), customer["id"]) == []


def test_caller_hanging_up_in_the_queue_is_abandoned_without_a_ticket(api, agent, call):
    sid = "CA00000000000000000000000000000012"
    call(incoming(sid))
    call(queue_result(sid, "hangup", 42))
    call(status(sid, "completed", 2, CallDuration="44"))
    customer, (item,) = calls_of(api, agent)
    assert (item["call"]["outcome"], item["call"]["status"]) == ("abandoned", "completed")
    assert (item["call"]["wait_seconds"], item["call"]["talk_seconds"]) == (42, None)
    assert item["ticket_id"] is None
    assert tickets_of(api.as_(agent), customer["id"]) == []
    assert api.as_(agent).get("/api/v1/tickets").json()["total"] == 0


def test_a_caller_gone_before_reaching_the_queue_waited_the_whole_call(api, agent, call):
    """No QueueTime: the wait shown is the call's duration, as the abandoned call rate
    counts it (the timeline showed null while the metrics used 3 s)."""
    sid = "CA00000000000000000000000000000018"
    call(incoming(sid))
    call(status(sid, "completed", 2, CallDuration="3"))
    customer, (item,) = calls_of(api, agent)
    assert (item["call"]["outcome"], item["call"]["wait_seconds"]) == ("abandoned", 3)
    assert item["call"]["talk_seconds"] is None


@pytest.mark.parametrize("ended", ["busy", "no-answer"])
def test_call_ending_before_our_twiml_ran_is_missed_with_a_ticket(api, agent, call, ended):
    sid = "CA00000000000000000000000000000013"
    call(status(sid, ended, 1, CallDuration="0"))
    customer, (item,) = calls_of(api, agent)
    assert (item["call"]["outcome"], item["call"]["status"]) == ("missed", ended)
    (ticket,) = tickets_of(api.as_(agent), customer["id"])
    assert item["ticket_id"] == ticket["id"]
    assert (ticket["subject"], ticket["status"]) == (f"Missed call from {CALLER}", "new")
    queue = api.as_(agent).get("/api/v1/queue").json()["items"]
    assert [t["id"] for t in queue] == [ticket["id"]]


def test_a_call_the_account_placed_is_no_missed_or_abandoned_customer_call(api, agent, call):
    """Twilio reports calls placed from the account too (`Direction=outbound-api`, the
    samples' busy and 49-second captures): a busy one opened a "Missed call" ticket for the
    person called, an answered one counted as abandoned."""
    outbound = {"Direction": "outbound-api", "From": OUR_NUMBER, "Caller": OUR_NUMBER,
                "To": CALLER, "Called": CALLER}
    call({**status("CA00000000000000000000000000000031", "busy", 2, CallDuration="0"),
          **outbound})
    call({**status("CA00000000000000000000000000000032", "completed", 3, CallDuration="49",
                   AnsweredBy="human"), **outbound})
    # a leg a <Dial> placed for a call we know by its parent: not a call of its own
    call({**status("CA00000000000000000000000000000033", "completed", 4, CallDuration="20"),
          **outbound, "Direction": "outbound-dial",
          "ParentCallSid": "CA00000000000000000000000000000032"})
    customer, items = calls_of(api, agent)
    outcomes = {item["call"]["external_id"][-2:]: (item["call"]["direction"],
                                                   item["call"]["outcome"]) for item in items}
    assert outcomes == {"31": ("outbound", "missed"), "32": ("outbound", "answered")}
    (ticket,) = tickets_of(api.as_(agent), customer["id"])  # the answered call's record
    assert ticket["subject"] == f"Call with {CALLER}"


def test_a_text_after_a_missed_call_opens_a_ticket_that_can_be_answered_in_writing(
        app, api, agent, call, drain):
    """A phone ticket takes no written reply, so the caller's SMS does not join it (a later
    call would): the agent answers the text where it came from."""
    call(status("CA00000000000000000000000000000021", "no-answer", 1, CallDuration="0"))
    customer, _calls = calls_of(api, agent)
    (phone_ticket,) = tickets_of(api.as_(agent), customer["id"])
    sms = factories.channel(app, "twilio", "sms",
                            {"account_sid": ACCOUNT, "phone_number": OUR_NUMBER},
                            {"auth_token": TOKEN})
    texted = Webhooks(api.base_url).twilio(sms, {
        "MessageSid": "SM00000000000000000000000000000021", "AccountSid": ACCOUNT,
        "From": CALLER, "To": OUR_NUMBER, "Body": "Saw your missed call, can you text me?",
        "NumMedia": "0"}, TOKEN)
    assert texted.status_code == 200, texted.text
    drain("ingest")
    tickets = {t["channel"]["kind"]: t for t in tickets_of(api.as_(agent), customer["id"])}
    assert set(tickets) == {"voice", "sms"} and tickets["voice"]["id"] == phone_ticket["id"]
    reply = api.as_(agent).post(f"/api/v1/tickets/{tickets['sms']['id']}/messages",
                                json={"text": "Sure: your parcel leaves today."})
    assert reply.status_code == 201, reply.text
    refused = api.as_(agent).post(f"/api/v1/tickets/{phone_ticket['id']}/messages",
                                  json={"text": "Written replies need a written channel"})
    assert refused.status_code == 422


def test_voicemail_with_transcript_opens_a_ticket(api, agent, call, voice):
    sid = "CA00000000000000000000000000000014"
    record = list(twiml(call(incoming(sid))))[1]
    recording = {"RecordingSid": "RE4c8b2a7e8f1d4a6b9c0d1e2f3a4b5c6d",
                 "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
                                 "/Recordings/RE4c8b2a7e8f1d4a6b9c0d1e2f3a4b5c6d"}
    text = "Hi, this is Marco, my router keeps dropping the connection, please call me back."
    # <Record action>: the call's parameters plus the recording.
    call({**BASE, "CallSid": sid, "CallStatus": "completed", "RecordingDuration": "14",
          "Digits": "hangup", **recording}, url=record.get("action"))
    call({"AccountSid": ACCOUNT, "CallSid": sid, "RecordingStatus": "completed",
          "RecordingDuration": "14", "RecordingChannels": "1", "RecordingSource": "RecordVerb",
          "RecordingStartTime": "Sun, 22 Nov 2026 10:00:03 +0000", **recording},
         url=record.get("recordingStatusCallback"))
    call({**BASE, "CallSid": sid, "CallStatus": "completed", "TranscriptionSid":
          "TR8c3a4e4b1f9d4e2a8c7b6a5f4e3d2c1b", "TranscriptionStatus": "completed",
          "TranscriptionText": text, "TranscriptionType": "fast",
          "TranscriptionUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Transcriptions/TR8",
          **recording}, url=record.get("transcribeCallback"))
    call(status(sid, "completed", 2, CallDuration="21"))
    customer, (item,) = calls_of(api, agent)
    assert item["call"]["outcome"] == "voicemail"
    assert item["call"]["transcript"] == text
    assert item["call"]["recording_url"] == recording["RecordingUrl"]
    (ticket,) = tickets_of(api.as_(agent), customer["id"])
    assert (item["ticket_id"], ticket["subject"]) == (ticket["id"], f"Voicemail from {CALLER}")
    messages = [i["message"] for i in timeline(api.as_(agent), customer["id"])
                if i["type"] == "message"]
    assert [(m["text"], m["flags"], m["ticket_id"]) for m in messages] == [
        (text, ["voicemail"], ticket["id"])]
    # A phone channel takes no written reply (it was stored, queued, then always failed);
    # the agent calls back, or notes what they did.
    path = f"/api/v1/tickets/{ticket['id']}/messages"
    refused = api.as_(agent).post(path, json={"text": "We will call you back."})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "no_written_replies")
    assert api.as_(agent).post(path, json={"text": "Called back at 10:05, fixed.",
                                           "internal": True}).status_code == 201


@pytest.mark.parametrize("recorded", ["absent", "failed"])
def test_a_recording_that_holds_nothing_is_no_voicemail(api, agent, call, recorded):
    """The caller hung up at the beep without a word (Twilio: `absent`), or the recording
    failed: the call ended unanswered without a voicemail, so it is abandoned."""
    sid = "CA00000000000000000000000000000015"
    record = list(twiml(call(incoming(sid))))[1]
    call({"AccountSid": ACCOUNT, "CallSid": sid, "RecordingStatus": recorded,
          "RecordingSid": "RE5c8b2a7e8f1d4a6b9c0d1e2f3a4b5c6d", "RecordingDuration": "0",
          "RecordingSource": "RecordVerb",
          "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
                          "/Recordings/RE5c8b2a7e8f1d4a6b9c0d1e2f3a4b5c6d"},
         url=record.get("recordingStatusCallback"))
    call(status(sid, "completed", 2, CallDuration="6"))
    customer, (item,) = calls_of(api, agent)
    assert (item["call"]["outcome"], item["call"]["recording_url"]) == ("abandoned", None)
    assert tickets_of(api.as_(agent), customer["id"]) == []


def test_callback_urls_are_signed_with_their_query(api, admin, call, voice):
    record = list(twiml(call(incoming("CA00000000000000000000000000000015"))))[1]
    hooks = Webhooks(api.base_url)
    params = {**BASE, "CallSid": "CA00000000000000000000000000000015",
              "CallStatus": "completed", "RecordingUrl": "https://api.twilio.com/rec/RE1"}
    signed_without_query = hooks.twilio(voice, params, TOKEN, url=hooks.url(voice))
    assert signed_without_query.status_code == 200  # posted to the plain URL: fine
    wrong = hooks.twilio(voice, params, TOKEN, url=record.get("action"),
                         signature=twilio_signature(TOKEN, hooks.url(voice), list(params.items())))
    assert wrong.status_code == 401
    assert len(deliveries(api.as_(admin))) == 2


# --- the agent who took the call -------------------------------------------------------------

def test_agent_softphone_takes_the_call_and_its_talk_time_is_handle_time(
        app, api, agent, call, sockets):
    sockets(agent.token)  # online: the caller is queued
    enqueue = twiml(call(incoming("CA" + "e" * 32))).find("Enqueue")
    assert enqueue is not None
    softphone = twiml(call({**BASE, "CallSid": "CA" + "f" * 32, "CallStatus": "ringing",
                            "From": f"client:agent-{agent.id}", "Caller": "client:x"}))
    queue = softphone.find("Dial/Queue")
    assert queue is not None and queue.text == "support"
    call({**BASE, "CallSid": "CA" + "e" * 32, "CallStatus": "in-progress", "QueueTime": "12",
          "DequeingCallSid": "CA" + "f" * 32, "QueueSid": "QU1"}, url=queue.get("url"))
    call(queue_result("CA" + "e" * 32, "bridged", 12), url=enqueue.get("action"))
    call(status("CA" + "e" * 32, "completed", 3, CallDuration="192"))

    customer, items = calls_of(api, agent)
    assert len(items) == 1, "the agent's own leg is not a customer call"
    assert items[0]["call"]["outcome"] == "answered"
    assert items[0]["call"]["talk_seconds"] == 180
    ticket = api.as_(agent).get(f"/api/v1/tickets/{items[0]['ticket_id']}").json()
    assert ticket["first_response_at"] is not None
    with app.app_context():
        from sqlalchemy import select

        from helpdesk.extensions import db
        from helpdesk.models import WorkSession

        sessions = db.session.execute(select(WorkSession)).scalars().all()
        assert [(s.agent_id, s.source, (s.ended_at - s.started_at).total_seconds())
                for s in sessions] == [(agent.id, "call", 180.0)]
    call(status("CA" + "e" * 32, "completed", 3, CallDuration="192"))  # a repeat: no new session
    with app.app_context():
        assert len(db.session.execute(select(WorkSession)).scalars().all()) == 1


@pytest.mark.parametrize("solved", ["after the call", "before the call's last callback"])
def test_a_calls_talk_time_is_its_tickets_handle_time(api, agent, supervisor, call, sockets,
                                                      solved):
    """DESIGN.md: a voice call's talk time counts as a session of the agent who took it, so
    as the handle time of the ticket the call opened (created when the call was bridged,
    after the session's start), whenever the call's end is reported."""
    sockets(agent.token)
    sid, leg = "CA" + "1" * 32, "CA" + "2" * 32
    enqueue = twiml(call(incoming(sid))).find("Enqueue")
    softphone = twiml(call({**BASE, "CallSid": leg, "CallStatus": "ringing",
                            "From": f"client:agent-{agent.id}", "Caller": "client:x"}))
    call({**BASE, "CallSid": sid, "CallStatus": "in-progress", "QueueTime": "12",
          "DequeingCallSid": leg, "QueueSid": "QU1"}, url=softphone.find("Dial/Queue").get("url"))
    call(queue_result(sid, "bridged", 12), url=enqueue.get("action"))
    _customer, items = calls_of(api, agent)
    path = f"/api/v1/tickets/{items[0]['ticket_id']}"
    if solved == "after the call":
        call(status(sid, "completed", 3, CallDuration="192"))
    assert api.as_(agent).patch(path, json={"status": "solved"}).status_code == 200
    if solved != "after the call":
        call(status(sid, "completed", 3, CallDuration="192"))
    totals = api.as_(supervisor).get("/api/v1/metrics/summary").json()["totals"]
    assert totals["tickets_solved"] == 1
    assert totals["aht_seconds"] == 180.0


def test_calls_in_one_batch_open_their_tickets_without_failing_it(api, agent, voice, drain,
                                                                   caplog):
    # An ingest batch writes its new rows at its end; a call names its ticket by id alone,
    # so a missed call opening a ticket (or an answered one joining a ticket opened earlier
    # in the batch) must not make the batch fail and fall back to one delivery at a time.
    hooks = Webhooks(api.base_url)
    callers = [f"+1415555020{n}" for n in range(3)]
    for n, caller in enumerate(callers):
        params = {**status(f"CA0000000000000000000000000000009{n}", "no-answer", 1),
                  "From": caller, "Caller": caller}
        assert hooks.twilio(voice, params, TOKEN).status_code == 200
    caplog.set_level("WARNING", logger="helpdesk")
    drain()
    assert "one by one" not in caplog.text
    for caller in callers:
        customer = customer_with(api.as_(agent), f"phone:{caller}")
        (ticket,) = tickets_of(api.as_(agent), customer["id"])
        assert ticket["subject"] == f"Missed call from {caller}"


def test_calls_count_as_contacts_for_the_repeat_contact_factor(app, api, agent, call, drain):
    """DESIGN.md: repeat contact = several contacts in 24 h across channels. A caller who
    hung up in the queue twice, then writes: three contacts, though only one message."""
    from email.utils import format_datetime

    now = format_datetime(datetime.now(UTC))
    for n, sid in enumerate(("CA" + "3" * 32, "CA" + "4" * 32)):
        call(incoming(sid))
        call(queue_result(sid, "hangup", 42))
        call(status(sid, "completed", 2 + n, CallDuration="44", Timestamp=now))
    channel = factories.channel(app, "api")
    api.post_api_webhook(channel, api_message("e1", "m1", email=None, text="Hello?",
                                              customer={"phone": CALLER}))
    drain()
    customer, items = calls_of(api, agent)
    assert len(items) == 2
    (ticket,) = tickets_of(api.as_(agent), customer["id"])  # (abandoned calls open none)
    reasons = {r["factor"]: r["detail"] for r in ticket["urgency_reasons"]}
    assert reasons.get("repeat_contact") == "3 contacts in 24 h", ticket["urgency_reasons"]


def test_erasing_a_caller_blanks_every_raw_callback_that_names_them(app, api, admin, agent,
                                                                   call, voice, sockets):
    """A call's callbacks are stored raw (caller's number, recording, transcript) and no
    message is made from most of them; erasure blanked only the deliveries messages were
    made from. It also drops the recent events kept for reconnecting clients."""
    from sqlalchemy import select

    from helpdesk.extensions import db
    from helpdesk.models import Delivery
    from helpdesk.queues import redis_connection

    sid = "CA00000000000000000000000000000099"
    record = list(twiml(call(incoming(sid))))[1]
    recording = {"RecordingSid": "RE99", "RecordingUrl": "https://api.twilio.com/rec/RE99"}
    call({**BASE, "CallSid": sid, "CallStatus": "completed", "RecordingDuration": "9",
          **recording}, url=record.get("action"))
    call({**BASE, "CallSid": sid, "CallStatus": "completed", "TranscriptionSid": "TR99",
          "TranscriptionStatus": "completed", "TranscriptionText": "Call me on my mobile",
          **recording}, url=record.get("transcribeCallback"))
    call(status(sid, "completed", 2, CallDuration="12"))
    customer, _calls = calls_of(api, agent)
    with app.app_context():
        bodies = db.session.execute(select(Delivery.body)).scalars().all()
        assert sum(CALLER[1:].encode() in body for body in bodies) >= 3
    erased = api.as_(admin).delete(f"/api/v1/customers/{customer['id']}")
    assert erased.status_code == 204, erased.text
    with app.app_context():
        bodies = db.session.execute(select(Delivery.body)).scalars().all()
        assert not [body for body in bodies if CALLER[1:].encode() in body
                    or b"Call me on my mobile" in body or sid.encode() in body]
        assert not redis_connection().exists("helpdesk:events:log")


def test_abandoned_calls_raise_the_callers_waiting_ticket_as_repeat_contact(app, api, agent,
                                                                            call, drain):
    """The customer wrote, then called twice and hung up in the queue: three contacts in
    24 h, but only a new message re-scored their ticket (an abandoned call opens none)."""
    api.as_(agent).post("/api/v1/customers", json={"name": "Ana", "identities": [
        {"kind": "email", "value": "ana@example.com"}, {"kind": "phone", "value": CALLER}]})
    channel = factories.channel(app, "api")
    with time_machine.travel(datetime(2026, 11, 22, 9, 58, tzinfo=UTC)):  # the callbacks' day
        api.post_api_webhook(channel, api_message(text="Hello, a question about my order"))
        drain()
        (ticket,) = api.as_(agent).get("/api/v1/tickets").json()["items"]
        assert "repeat_contact" not in {r["factor"] for r in ticket["urgency_reasons"]}
        for n in (21, 22):
            sid = f"CA000000000000000000000000000000{n}"
            call(incoming(sid))
            call(queue_result(sid, "hangup", 42))
            call(status(sid, "completed", 2, CallDuration="44"))
        after = api.as_(agent).get(f"/api/v1/tickets/{ticket['id']}").json()
    assert "repeat_contact" in {r["factor"] for r in after["urgency_reasons"]}
    assert after["urgency"] > ticket["urgency"]


def test_counts_no_column_holds_are_dropped_not_the_callback(api, admin, agent, call):
    """Found by fuzzing: a SequenceNumber (or QueueTime) of 10**22 failed the whole
    delivery on the integer column; the callback still says how the call went."""
    sid = "CA00000000000000000000000000000099"
    call(incoming(sid))
    call(queue_result(sid, "bridged", 10**22))
    call(status(sid, "completed", 10**22, CallDuration="95"))
    statuses = [d["status"] for d in deliveries(api.as_(admin))]
    assert statuses and set(statuses) == {"processed"}, statuses
    _customer, calls = calls_of(api, agent)
    assert [(c["call"]["status"], c["call"]["outcome"]) for c in calls] == [
        ("completed", "answered")]
