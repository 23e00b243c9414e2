"""Surveys: planned at solve, sent on the ticket's channel after the delay, answered by link
or by a digit reply, at most one per customer per period."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import time_machine
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Message, Ticket, TicketEvent
from helpdesk.queues import DEFAULT, get_queue
from tests.api.test_outbound import outbound_config, providers  # noqa: F401  (fixtures)
from tests.support import factories
from tests.support.live import api_message

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TWILIO_TOKEN = "twilio-auth-token"
PHONE = "+12125551234"
LINK = re.compile(r"(http://\S+/surveys/([\w-]+))")


def configure(api, admin, **options) -> dict:
    response = api.as_(admin).patch("/api/v1/settings", json={"surveys": options})
    assert response.status_code == 200, response.text
    return response.json()["surveys"]


def tickets(app) -> list[Ticket]:
    with app.app_context():
        return list(db.session.execute(select(Ticket).order_by(Ticket.id)).scalars())


def messages(app, ticket_id: int) -> list[Message]:
    with app.app_context():
        return list(db.session.execute(select(Message).where(Message.ticket_id == ticket_id)
                                       .order_by(Message.id)).scalars())


def solve(api, agent, ticket_id: int) -> None:
    response = api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                    json={"assignee_id": agent.id, "status": "solved"})
    assert response.status_code == 200, response.text


def surveys_of(api, who, **params) -> list[dict]:
    response = api.as_(who).get("/api/v1/surveys", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def ask_by_api(app, api, drain, thread: str = "t-1", event: str = "e1") -> int:
    """A customer message on an `api` channel (a link channel); returns its ticket id."""
    channel = factories.channel(app, "api", name=f"crm {thread}")
    api.post_api_webhook(channel, api_message(event, f"m-{event}", text="Where is my order?",
                                              thread_id=thread))
    drain("ingest", "routing")
    return tickets(app)[-1].id


def twilio_sms(api, channel, sid: str, body: str, sender: str = PHONE):
    """An inbound SMS signed the way Twilio documents it (URL + sorted params, HMAC-SHA1)."""
    url = f"{api.base_url}/webhooks/twilio/{channel.key}"
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
              "To": "+13456789012", "Body": body, "NumMedia": "0"}
    signed = url + "".join(name + params[name] for name in sorted(params))
    signature = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), signed.encode(),
                                          hashlib.sha1).digest()).decode()
    response = api.session.post(url, data=urlencode(params), timeout=30, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    return response


def sms_channel(app):
    return factories.channel(app, "twilio", kind="sms", settings={
        "account_sid": "AC" + "0" * 32, "phone_number": "+13456789012"},
        secrets={"auth_token": TWILIO_TOKEN})


def test_solve_schedules_one_survey_and_the_link_is_sent_after_the_delay(
        app, api, agent, supervisor, fire_due_timers, drain):
    with time_machine.travel(T0, tick=False) as clock:
        ticket_id = ask_by_api(app, api, drain)
        solve(api, agent, ticket_id)
        [survey] = surveys_of(api, supervisor, ticket=ticket_id)
        assert (survey["kind"], survey["status"], survey["agent_id"]) == (
            "csat", "scheduled", agent.id)
        with app.app_context():
            registry = get_queue(DEFAULT, app).scheduled_job_registry
            due = registry.get_scheduled_time(f"survey-{survey['id']}")
        assert due.timestamp() == (T0 + timedelta(seconds=3600)).timestamp()
        fire_due_timers()
        assert surveys_of(api, supervisor, ticket=ticket_id)[0]["status"] == "scheduled"

        clock.shift(timedelta(seconds=3601))
        fire_due_timers()
        [survey] = surveys_of(api, supervisor, ticket=ticket_id)
        assert survey["status"] == "sent"
        sent = [m for m in messages(app, ticket_id) if m.author_type == "system"]
        assert len(sent) == 1
        assert (sent[0].direction, sent[0].internal, sent[0].flags) == (
            "outbound", False, ["survey"])
        link, token = LINK.search(sent[0].text).groups()
        assert link == f"{api.base_url}/surveys/{token}"
        assert sent[0].text.startswith("How would you rate our help?")
        fire_due_timers()  # run again: nothing new
        assert len([m for m in messages(app, ticket_id) if m.author_type == "system"]) == 1


def test_link_answer_is_recorded_against_ticket_and_agent(app, api, admin, agent,
                                                           supervisor, drain):
    configure(api, admin, delay_seconds=0)
    ticket_id = ask_by_api(app, api, drain)
    solve(api, agent, ticket_id)
    drain()
    token = LINK.search(messages(app, ticket_id)[-1].text).group(2)

    page = api.get(f"/surveys/{token}")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert [f'value="{n}"' in page.text for n in range(1, 6)] == [True] * 5
    assert 'value="6"' not in page.text
    assert "1 = very dissatisfied, 5 = very satisfied" in page.text

    # Out of range, or not a whole number as written (JSON: an integer; the form: digits),
    # though Python's int() reads "4", "+4", "４" and "٤" (found by fuzzing)
    for bad in (0, 6, "4", True):
        response = api.post(f"/surveys/{token}", json={"score": bad})
        assert response.status_code == 400, bad
        assert "score" in response.json()["error"]["fields"]
    for bad in ("+4", "４", "٤", " 4", "4 "):
        response = api.post(f"/surveys/{token}", data={"score": bad})
        assert response.status_code == 400, bad
    assert api.post(f"/surveys/{token}", json={"comment": "no score"}).status_code == 400
    answered = api.post(f"/surveys/{token}", json={"score": 4, "comment": "Quick and kind"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["score"] == 4

    [survey] = surveys_of(api, supervisor, agent=agent.id)
    assert (survey["ticket_id"], survey["status"], survey["score"], survey["comment"],
            survey["answered_via"]) == (ticket_id, "answered", 4, "Quick and kind", "web")
    assert "token" not in survey
    again = api.post(f"/surveys/{token}", json={"score": 5})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_answered"
    assert "recorded" in api.get(f"/surveys/{token}").text
    assert tickets(app)[-1].status == "solved"


def test_the_page_form_answers_and_unknown_tokens_are_404(app, api, admin, agent,
                                                          supervisor, drain):
    configure(api, admin, delay_seconds=0, csat=False, ces=True)
    ticket_id = ask_by_api(app, api, drain)
    solve(api, agent, ticket_id)
    drain()
    text = messages(app, ticket_id)[-1].text
    assert text.startswith("How easy was it")
    token = LINK.search(text).group(2)
    assert api.post(f"/surveys/{token}", data={"score": "8"}).status_code == 400
    assert "1 = very difficult, 7 = very easy" in api.get(f"/surveys/{token}").text
    response = api.post(f"/surveys/{token}", data={"score": "7", "comment": ""})
    assert response.status_code == 200, response.text
    # A browser posting the form gets a thank-you page, not JSON.
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Thank you" in response.text and '"score"' not in response.text
    assert response.headers["Referrer-Policy"] == "no-referrer"
    [survey] = surveys_of(api, supervisor, kind="ces")
    assert (survey["score"], survey["comment"]) == (7, None)
    assert api.get("/surveys/nope").status_code == 404
    assert api.post("/surveys/nope", json={"score": 3}).status_code == 404
    assert api.post(f"/surveys/{token}", data="x", headers={
        "Content-Type": "text/plain"}).status_code == 415


def test_sms_survey_is_a_digit_prompt_answered_by_a_reply_that_does_not_reopen(
        app, api, admin, agent, supervisor, drain):
    configure(api, admin, delay_seconds=0)
    channel = sms_channel(app)
    twilio_sms(api, channel, "SM0001", "Hi, my order has not arrived")
    drain("ingest", "routing")
    [ticket] = tickets(app)
    solve(api, agent, ticket.id)
    drain(DEFAULT)  # the survey job; provider delivery is the outbound queue's business
    prompt = messages(app, ticket.id)[-1]
    assert (prompt.author_type, prompt.direction, prompt.delivery_status, prompt.text) == (
        "system", "outbound", "queued",
        "How would you rate our help? Reply with a number from 1 to 5")

    twilio_sms(api, channel, "SM0002", " 5 ")
    drain("ingest", "routing", DEFAULT)
    [survey] = surveys_of(api, supervisor, ticket=ticket.id)
    assert (survey["status"], survey["score"], survey["answered_via"], survey["agent_id"]) == (
        "answered", 5, "sms", agent.id)
    [again] = tickets(app)
    assert again.status == "solved"
    reply = messages(app, ticket.id)[-1]
    assert (reply.direction, reply.text, reply.flags) == ("inbound", " 5 ", ["survey_answer"])
    with app.app_context():
        names = list(db.session.execute(select(TicketEvent.name).where(
            TicketEvent.ticket_id == ticket.id)).scalars())
    assert "ticket.reopened" not in names

    twilio_sms(api, channel, "SM0003", "4")  # nothing open to answer: an ordinary message
    drain("ingest", "routing")
    assert surveys_of(api, supervisor, ticket=ticket.id)[0]["score"] == 5
    assert "survey_answer" not in messages(app, ticket.id)[-1].flags


def test_digit_channels_ask_one_question_at_a_time(app, api, admin, agent, supervisor, drain):
    configure(api, admin, delay_seconds=0, nps=True)
    channel = sms_channel(app)
    twilio_sms(api, channel, "SM0101", "Hello, help please")
    drain("ingest", "routing")
    [ticket] = tickets(app)
    solve(api, agent, ticket.id)
    drain(DEFAULT)
    assert messages(app, ticket.id)[-1].text.endswith("from 1 to 5")
    assert {s["kind"]: s["status"] for s in surveys_of(api, supervisor)} == {
        "csat": "sent", "nps": "scheduled"}

    twilio_sms(api, channel, "SM0102", "4")
    drain("ingest", "routing", DEFAULT)
    by_kind = {s["kind"]: s for s in surveys_of(api, supervisor, ticket=ticket.id)}
    assert (by_kind["csat"]["score"], by_kind["nps"]["status"]) == (4, "sent")
    assert messages(app, ticket.id)[-1].text == (
        "How likely are you to recommend us to a friend or colleague? "
        "Reply with a number from 0 to 10")

    twilio_sms(api, channel, "SM0103", "10")
    drain("ingest", "routing", DEFAULT)
    by_kind = {s["kind"]: s for s in surveys_of(api, supervisor, ticket=ticket.id)}
    assert (by_kind["nps"]["score"], by_kind["nps"]["answered_via"]) == (10, "sms")
    assert [t.status for t in tickets(app)] == ["solved"]


def test_a_number_out_of_range_is_an_ordinary_message(app, api, admin, agent, supervisor,
                                                      drain):
    configure(api, admin, delay_seconds=0)
    channel = sms_channel(app)
    twilio_sms(api, channel, "SM0201", "Hello, help please")
    drain("ingest", "routing")
    [ticket] = tickets(app)
    solve(api, agent, ticket.id)
    drain(DEFAULT)
    twilio_sms(api, channel, "SM0202", "9")
    drain("ingest", "routing")
    [survey] = surveys_of(api, supervisor)
    assert survey["status"] == "sent"
    assert "survey_answer" not in messages(app, ticket.id)[-1].flags
    assert tickets(app)[0].status == "open"  # a customer's message reopens a solved ticket


def test_a_customer_is_surveyed_once_per_period(app, api, admin, agent, supervisor, drain):
    configure(api, admin, delay_seconds=0)
    with time_machine.travel(T0, tick=False) as clock:
        first = ask_by_api(app, api, drain, thread="t-1", event="e1")
        second = ask_by_api(app, api, drain, thread="t-2", event="e2")
        assert first != second
        assert tickets(app)[0].customer_id == tickets(app)[1].customer_id
        solve(api, agent, first)
        solve(api, agent, second)
        drain()
        assert [s["ticket_id"] for s in surveys_of(api, supervisor)] == [first]
        clock.shift(timedelta(days=31))
        third = ask_by_api(app, api, drain, thread="t-3", event="e3")
        solve(api, agent, third)
        assert [s["ticket_id"] for s in surveys_of(api, supervisor)] == [third, first]


def test_reopened_before_sending_is_skipped(app, api, admin, agent, supervisor, drain):
    configure(api, admin, delay_seconds=0)
    ticket_id = ask_by_api(app, api, drain)
    solve(api, agent, ticket_id)
    assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                json={"status": "open"}).status_code == 200
    drain()
    [survey] = surveys_of(api, supervisor, ticket=ticket_id)
    assert survey["status"] == "skipped"
    assert not [m for m in messages(app, ticket_id) if m.author_type == "system"]
    solve(api, agent, ticket_id)  # a skipped survey never reached the customer
    drain()
    assert [s["status"] for s in surveys_of(api, supervisor, ticket=ticket_id)] == [
        "sent", "skipped"]


def test_survey_settings_are_validated_and_merged(api, admin):
    assert configure(api, admin, nps=True) == {"csat": True, "ces": False, "nps": True,
                                               "delay_seconds": 3600, "min_days_between": 30}
    assert configure(api, admin, delay_seconds=60)["nps"] is True
    for bad in ({"delay_seconds": -1}, {"delay_seconds": "soon"}, {"csat": "yes"},
                {"csat": 1}, {"nps": 0}, {"bogus": True}, {"min_days_between": 1.5}):
        response = api.as_(admin).patch("/api/v1/settings", json={"surveys": bad})
        assert response.status_code == 400, bad
        assert "surveys" in response.json()["error"]["fields"]


def test_survey_list_takes_a_supervisor(api, agent, supervisor):
    assert api.get("/api/v1/surveys").status_code == 401
    assert api.as_(agent).get("/api/v1/surveys").status_code == 403
    assert api.as_(supervisor).get("/api/v1/surveys").json()["total"] == 0


def test_agents_never_see_a_surveys_token_and_odd_answers_are_refused(app, api, admin, agent,
                                                                      drain):
    """The link is the customer's key: an agent (whom it rates) reading the ticket sees it
    without its token. Fractions, NUL characters and odd tokens are 4xx, never 500."""
    configure(api, admin, delay_seconds=0)
    ticket_id = ask_by_api(app, api, drain)
    solve(api, agent, ticket_id)
    drain()
    token = LINK.search(messages(app, ticket_id)[-1].text).group(2)
    shown = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["messages"][-1]
    assert "survey" in shown["flags"] and token not in shown["text"]
    assert "/surveys/…" in shown["text"]
    listed = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}/messages").json()["items"]
    assert all(token not in (m["text"] or "") for m in listed)
    # nor can the search be asked about it, a character at a time
    guessed = api.as_(agent).get("/api/v1/tickets", params={"q": f"/surveys/{token[:3]}"})
    assert guessed.status_code == 200 and guessed.json()["total"] == 0
    # the customer's answer quoting the link (a mail client's reply) does not show it either
    channel = factories.channel(app, "api", name="quoting")
    quoted = f'<p>Thanks</p><blockquote><a href="http://x/surveys/{token}">rate</a></blockquote>'
    api.post_api_webhook(channel, api_message("e-q", "m-q", text=f"> /surveys/{token}",
                                              html=quoted, thread_id="t-1"))
    drain("ingest")
    customer_id = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()["customer_id"]
    timeline = api.as_(agent).get(f"/api/v1/customers/{customer_id}/timeline").json()["items"]
    assert token not in json.dumps(timeline)
    assert any("/surveys/…" in (i["message"]["html"] or "") for i in timeline
               if i["type"] == "message")
    for guess in (f"/surveys/{token[:3]}", token[:8]):  # the quote is not searchable either
        found = api.as_(agent).get("/api/v1/tickets", params={"q": guess}).json()
        assert found["total"] == 0, guess
    # nor quoted by a link-checking wrapper (Outlook's SafeLinks percent-encodes the link),
    # nor in the customer's export, which agents may read (`full_text`: a mail whole)
    wrapped = f"https://safelinks.example/?url=http%3A%2F%2Fx%2Fsurveys%2F{token}&data=1"
    api.post_api_webhook(channel, api_message("e-w", "m-w", text=f"See {wrapped}",
                                              html=f'<a href="{wrapped}">rate</a>',
                                              thread_id="t-1"))
    drain("ingest")
    exported = api.as_(agent).get(f"/api/v1/customers/{customer_id}/export")
    timeline = api.as_(agent).get(f"/api/v1/customers/{customer_id}/timeline").json()["items"]
    assert token not in exported.text and token not in json.dumps(timeline)
    assert api.as_(agent).get("/api/v1/tickets", params={"q": token[:8]}).json()["total"] == 0

    fraction = api.post(f"/surveys/{token}", json={"score": 4.5})
    assert fraction.status_code == 400 and "score" in fraction.json()["error"]["fields"]
    assert api.post(f"/surveys/{token}", data={"score": "4.5"}).status_code == 400
    nul = api.post(f"/surveys/{token}", data={"score": "4", "comment": "a\x00b"})
    assert nul.status_code == 400, nul.text
    for odd in ("%00", "a%00b", "x" * 65, "%F0%9F%98%80"):
        assert api.get(f"/surveys/{odd}").status_code == 404
        assert api.post(f"/surveys/{odd}", json={"score": 3}).status_code == 404
    assert api.post(f"/surveys/{token}", json={"score": 4.0}).status_code == 200


def test_an_erased_customers_survey_takes_no_answer(app, api, admin, agent, drain):
    configure(api, admin, delay_seconds=0)
    ticket_id = ask_by_api(app, api, drain)
    solve(api, agent, ticket_id)
    drain()
    token = LINK.search(messages(app, ticket_id)[-1].text).group(2)
    customer_id = api.as_(admin).get(f"/api/v1/tickets/{ticket_id}").json()["customer_id"]
    assert api.as_(admin).delete(f"/api/v1/customers/{customer_id}").status_code == 204
    assert api.get(f"/surveys/{token}").status_code == 404
    answered = api.post(f"/surveys/{token}", json={"score": 5, "comment": "I am Ana"})
    assert answered.status_code == 404


def test_a_number_for_a_newer_conversation_is_not_taken_as_a_rating(app, api, admin, agent,
                                                                   supervisor, drain):
    """The SMS survey of a solved ticket waits for a digit; meanwhile the customer opened
    another ticket and an agent asked them a question there: their "3" answers that."""
    configure(api, admin, delay_seconds=0)
    channel = sms_channel(app)
    twilio_sms(api, channel, "SM0201", "Hi, my order has not arrived")
    drain("ingest", "routing")
    [first] = tickets(app)
    solve(api, agent, first.id)
    drain(DEFAULT)
    crm = factories.channel(app, "api", name="crm")
    posted = api.post_api_webhook(crm, api_message(
        "e-b", "m-b", text="Can I change my delivery slot?", email=None,
        customer={"phone": PHONE}, thread_id="slot"))  # (a thread of its own: a new ticket)
    assert posted.status_code == 200, posted.text
    drain("ingest", "routing")
    second = next(t for t in tickets(app) if t.id != first.id)
    assert second.customer_id == first.customer_id
    asked = api.as_(agent).post(f"/api/v1/tickets/{second.id}/messages",
                                json={"text": "Which slot, 1, 2 or 3?", "internal": True})
    assert asked.status_code == 201
    api.as_(agent).patch(f"/api/v1/tickets/{second.id}", json={"status": "open"})
    twilio_sms(api, channel, "SM0202", "3")
    drain("ingest", "routing")
    [survey] = surveys_of(api, supervisor, ticket=first.id)
    assert (survey["status"], survey["score"]) == ("sent", None)
    answer = next(m for t in tickets(app) for m in messages(app, t.id) if m.text == "3")
    assert "survey_answer" not in answer.flags and answer.ticket_id != first.id


def test_the_sweep_passes_over_surveys_waiting_for_the_question_before_them(
        app, api, admin, agent, supervisor, drain):
    """An SMS ticket's NPS waits for its CSAT's answer; the sweep, rebuilding lost timers a
    pass at a time, must not take it every pass and leave a lost survey behind it."""
    from helpdesk.queues import redis_connection
    from helpdesk.services.outbound import surveys as survey_service

    configure(api, admin, delay_seconds=0, nps=True)
    twilio_sms(api, sms_channel(app), "SM0301", "Hello, help please")
    drain("ingest", "routing")
    [sms_ticket] = tickets(app)
    solve(api, agent, sms_ticket.id)
    drain(DEFAULT)
    assert {s["kind"]: s["status"] for s in surveys_of(api, supervisor)} == {
        "csat": "sent", "nps": "scheduled"}  # the NPS waits for the CSAT's answer
    link_ticket = ask_by_api(app, api, drain, thread="t-lost", event="e-lost")
    solve(api, agent, link_ticket)
    with app.app_context():
        redis_connection(app).flushdb()  # the link survey's job is lost
        assert survey_service.sweep_due(0, limit=1) == 1
    drain(DEFAULT)
    lost = surveys_of(api, supervisor, ticket=link_ticket)  # (a link asks all at once)
    assert lost and {s["status"] for s in lost} == {"sent"}
    waiting = {s["kind"]: s["status"] for s in surveys_of(api, supervisor,
                                                          ticket=sms_ticket.id)}
    assert waiting == {"csat": "sent", "nps": "scheduled"}


def test_a_survey_the_provider_never_took_is_failed_and_the_next_solve_asks(
        app, api, admin, agent, supervisor, drain, providers):  # noqa: F811
    """The survey's message failed every attempt, and the survey still said `sent`: the
    customer counted as surveyed for 30 days, and a digit they sent would have been taken
    as an answer to a question they never got."""
    configure(api, admin, delay_seconds=0)
    channel = factories.channel(app, "api", settings={"callback_url": providers.url + "/callback"})
    api.post_api_webhook(channel, api_message("e1", "m-e1", text="Where is my order?"))
    drain("ingest", "routing")
    ticket_id = tickets(app)[-1].id
    providers.fail(3)  # (three attempts: two retry intervals)
    solve(api, agent, ticket_id)
    drain()
    [survey] = surveys_of(api, supervisor, ticket=ticket_id)
    assert survey["status"] == "failed"
    assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                json={"status": "open"}).status_code == 200
    solve(api, agent, ticket_id)
    drain()
    assert [s["status"] for s in surveys_of(api, supervisor, ticket=ticket_id)] == [
        "sent", "failed"]


def test_no_survey_goes_out_on_whatsapp_after_the_customers_24_hours(
        app, api, admin, agent, supervisor, drain, fire_due_timers):
    configure(api, admin, delay_seconds=3600)
    channel = factories.channel(app, "twilio", kind="whatsapp", settings={
        "account_sid": "AC" + "0" * 32, "phone_number": "+13456789012"},
        secrets={"auth_token": TWILIO_TOKEN})
    with time_machine.travel(T0, tick=False) as clock:
        twilio_sms(api, channel, "SM0001", "Hi, my order has not arrived",
                   sender="whatsapp:" + PHONE)
        drain("ingest", "routing")
        [ticket] = tickets(app)
        clock.shift(timedelta(hours=23, minutes=30))
        solve(api, agent, ticket.id)
        clock.shift(timedelta(seconds=3601))  # the survey is due past the 24 hours
        fire_due_timers()
        [survey] = surveys_of(api, supervisor, ticket=ticket.id)
    assert survey["status"] == "skipped"
    assert not [m for m in messages(app, ticket.id) if m.author_type == "system"]


def test_a_survey_message_sent_again_makes_its_survey_open_again(
        app, api, admin, agent, supervisor, drain, providers):  # noqa: F811
    configure(api, admin, delay_seconds=0)
    channel = factories.channel(app, "api", settings={"callback_url": providers.url + "/callback"})
    api.post_api_webhook(channel, api_message("e1", "m-e1", text="Where is my order?"))
    drain("ingest", "routing")
    ticket_id = tickets(app)[-1].id
    providers.fail(3)
    solve(api, agent, ticket_id)
    drain()
    assert surveys_of(api, supervisor, ticket=ticket_id)[0]["status"] == "failed"
    [prompt] = [m for m in messages(app, ticket_id) if m.author_type == "system"]
    again = api.as_(agent).post(f"/api/v1/tickets/{ticket_id}/messages/{prompt.id}/resend")
    assert again.status_code == 200, again.text
    drain()
    [survey] = surveys_of(api, supervisor, ticket=ticket_id)
    assert survey["status"] == "sent"  # (failed, the customer's click on the link was a 409)
