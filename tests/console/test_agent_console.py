"""The agent console in a real browser: login, the live queue, next ticket, the ticket view."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.support import factories
from tests.support.browser import login
from tests.support.live import api_message


def test_console_routes_serve_the_shell_with_a_strict_csp(api):
    for path in ("/", "/supervisor", "/admin", "/tickets/123"):
        response = api.get(path)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        csp = response.headers["Content-Security-Policy"]
        script_src = next(part for part in csp.split(";") if "script-src" in part).split()
        assert script_src == ["script-src", "'self'"]
        assert "unsafe-inline" not in csp and "http" not in csp


def test_login_with_a_wrong_password_then_the_right_one(page, agent, shoot):
    page.goto("/tickets/42")
    shoot(page, "login")
    # An address the browser's own check disliked stopped the submit: no request, no error.
    page.fill("[data-test=login-email]", "nobody")
    page.fill("[data-test=login-password]", "wrong horse")
    page.click("[data-test=login-submit]")
    expect(page.locator("[data-test=login-error]")).to_contain_text("Wrong email or password")
    page.fill("[data-test=login-email]", agent.email)
    page.fill("[data-test=login-password]", "wrong horse")
    page.click("[data-test=login-submit]")
    expect(page.locator("[data-test=login-error]")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('helpdesk.token')") is None

    page.fill("[data-test=login-password]", "correct horse")
    page.click("[data-test=login-submit]")
    expect(page.locator("[data-test=connection]")).to_have_text("live")
    assert page.url.endswith("/tickets/42")  # the page stays where it was opened
    token = page.evaluate("sessionStorage.getItem('helpdesk.token')")
    assert token and page.evaluate("localStorage.length") == 0
    expect(page.locator("[data-test=nav-console]")).to_be_visible()
    expect(page.locator("[data-test=nav-supervisor]")).to_have_count(0)
    expect(page.locator("[data-test=queue]")).to_be_attached()
    expect(page.locator("[data-test=my-tickets]")).to_be_attached()


def test_a_signed_webhook_shows_up_in_the_queue_without_a_reload(page, api, agent, channel,
                                                                 worker, shoot):
    login(page, agent)
    expect(page.locator("[data-test=queue-size]")).to_have_text("0")
    response = api.post_api_webhook(channel, api_message(text="My order never arrived"))
    assert response.status_code == 200
    started = time.monotonic()
    item = page.locator("[data-test=queue-item]")
    expect(item).to_have_count(1, timeout=2000)
    assert time.monotonic() - started < 2.0
    expect(page.locator("[data-test=queue-size]")).to_have_text("1")
    assert item.get_attribute("data-priority") in ("low", "normal", "high", "urgent")
    assert item.get_attribute("data-urgency").isdigit()
    expect(page.locator("[data-test=my-tickets]")).not_to_contain_text("Loading", timeout=5000)
    shoot(page, "queue")


def test_a_queue_that_fails_to_load_says_so_and_loads_once_it_can(page, agent):
    def unavailable(route):
        route.fulfill(status=503, content_type="application/json", headers={"Retry-After": "1"},
                      body='{"error": {"code": "unavailable", "message": "redis down"}}')

    page.route("**/api/v1/queue?*", unavailable)
    login(page, agent)
    error = page.locator("[data-test=queue-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Could not load the queue")
    expect(page.locator("[data-test=queue]")).not_to_contain_text("The queue is empty")
    page.unroute("**/api/v1/queue?*", unavailable)
    expect(error).to_be_hidden(timeout=10_000)  # tried again by itself
    expect(page.locator("[data-test=queue]")).to_contain_text("The queue is empty")


RAW_EMAIL = (b"From: Ana <ana@example.com>\r\nTo: support@acme.test\r\n"
             b"Subject: Invoice is wrong\r\nMessage-ID: <inv-1@example.com>\r\n"
             b"Date: Fri, 04 Dec 2026 09:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
             b"The invoice charges me twice.\r\n")


def take_next(page):
    page.click("[data-test=next-ticket]")
    view = page.locator("[data-test=ticket-view]")
    expect(view).to_be_visible()
    return view


def wait_for_tickets(api, agent, count: int) -> None:
    deadline = time.monotonic() + 10
    while api.as_(agent).get("/api/v1/tickets").json()["total"] < count:
        assert time.monotonic() < deadline, f"fewer than {count} tickets after 10 s"
        time.sleep(0.1)


def wait_for_queue(page, count: int):
    expect(page.locator("[data-test=queue-item]")).to_have_count(count, timeout=10_000)


def test_next_ticket_opens_the_ticket_with_the_customers_timeline_across_channels(
        app, page, api, agent, channel, worker, http, live_server, shoot):
    email = factories.channel(app, "raw_mime", settings={"address": "support@acme.test"})
    login(page, agent)
    assert http.post(f"{live_server}/webhooks/raw_mime/{email.key}", data=RAW_EMAIL,
                     headers={"Content-Type": "message/rfc822"}).status_code == 200
    api.post_api_webhook(channel, api_message(text="Also, where is my parcel?"))
    wait_for_queue(page, 1)  # one customer, one ticket: messages join across channels

    page.keyboard.press("n")  # the keyboard way
    view = page.locator("[data-test=ticket-view]")
    expect(view).to_be_visible()
    assert view.get_attribute("data-ticket-id").isdigit()
    assert view.get_attribute("data-status") in ("new", "open")
    items = page.locator("[data-test=timeline-item][data-type=message]")
    expect(items).to_have_count(2)
    assert {items.nth(i).get_attribute("data-channel") for i in range(2)} == {"email", "api"}
    events = page.locator("[data-test=timeline-item][data-type=event]")  # in words, not data
    expect(events.filter(has_text="Ticket opened via email")).to_have_count(1)
    expect(events.filter(has_text="Assigned to you (taken from the queue)")).to_have_count(1)
    expect(page.locator("[data-test=customer-panel] [data-test=identity]")).to_contain_text(
        ["email: ana@example.com"])
    expect(page.locator("[data-test=my-ticket]")).to_have_count(1)
    expect(page.locator("[data-test=queue-item]")).to_have_count(0)
    expect(page.locator("[data-test=urgency-reason]").first).to_be_attached()
    assert page.url.endswith(f"/tickets/{view.get_attribute('data-ticket-id')}")
    shoot(page, "ticket")

    page.keyboard.press("n")
    expect(page.locator("[data-test=next-ticket-empty]")).to_be_visible()


def test_the_open_tickets_timeline_shows_the_customers_new_ticket_without_a_reload(
        page, api, agent, channel, worker):
    api.post_api_webhook(channel, api_message("e1", "m1", text="My parcel is late"))
    wait_for_tickets(api, agent, 1)
    first = api.as_(agent).get("/api/v1/tickets").json()["items"][0]
    closed = api.as_(agent).patch(f"/api/v1/tickets/{first['id']}", json={"status": "closed"})
    assert closed.status_code == 200, closed.text
    login(page, agent, f"/tickets/{first['id']}")
    items = page.locator("[data-test=timeline-item][data-type=message]")
    expect(items).to_have_count(1)
    expect(page.locator("[data-test=connection]")).to_have_text("live")
    # the customer writes again: a new ticket (the first is closed), on the same timeline
    api.post_api_webhook(channel, api_message("e2", "m2", text="Still nothing arrived"))
    expect(items).to_have_count(2, timeout=10_000)
    expect(items.last).to_contain_text("Still nothing arrived")
    second = [t for t in api.as_(agent).get("/api/v1/tickets").json()["items"]
              if t["id"] != first["id"]]
    assert len(second) == 1 and second[0]["customer_id"] == first["customer_id"]
    assert items.last.get_attribute("data-ticket-id") == str(second[0]["id"])


def test_a_reply_goes_from_queued_to_sent_by_itself_and_a_note_is_never_sent(
        app, page, api, agent, channel, worker, providers, monkeypatch, shoot):
    from tests.support.fake_providers import CALLBACK, Script

    # A failed send is retried a second later (the web process schedules the retries).
    monkeypatch.setitem(app.config, "OUTBOUND_RETRY_INTERVALS", [1, 1])
    login(page, agent)
    api.post_api_webhook(channel, api_message(text="Can you resend my receipt?"))
    wait_for_queue(page, 1)
    take_next(page)
    page.evaluate("""() => {
        window.seenStatuses = [];
        const record = () => document.querySelectorAll(
            '[data-test=message][data-direction=outbound] [data-test=delivery-status]'
        ).forEach((el) => window.seenStatuses.push(el.textContent));
        new MutationObserver(record).observe(document.body, {subtree: true, childList: true,
                                                             characterData: true});
    }""")
    providers.fail(1, 503)  # the first attempt fails: the reply waits, queued, for a retry

    page.fill("[data-test=composer-text]", "Sent again, check your inbox.")
    page.click("[data-test=send-reply]")
    reply = page.locator("[data-test=message][data-direction=outbound]")
    expect(reply).to_have_count(1)
    expect(reply.locator("[data-test=delivery-status]")).to_have_text("sent", timeout=10_000)
    assert page.evaluate("window.seenStatuses")[0] == "queued"
    assert reply.get_attribute("data-internal") == "false"
    assert len(providers.to(CALLBACK)) == 2

    providers.reject(400)  # refused for good: failed, and the agent sends it again
    page.fill("[data-test=composer-text]", "Your receipt is attached.")
    page.click("[data-test=send-reply]")
    refused = reply.nth(1)
    expect(refused.locator("[data-test=delivery-status]")).to_have_text("failed",
                                                                        timeout=10_000)
    expect(reply.first.locator("[data-test=message-resend]")).to_have_count(0)  # sent
    # The customer's timeline shows the failed reply too (it kept an older list).
    expect(page.locator("[data-test=timeline-item][data-type=message]",
                        has_text="Your receipt is attached.")).to_have_count(1)
    shoot(page, "ticket-failed-reply")
    providers.script = Script()  # the provider takes messages again
    refused.locator("[data-test=message-resend]").click()
    expect(refused.locator("[data-test=delivery-status]")).to_have_text("sent", timeout=10_000)
    expect(refused.locator("[data-test=message-resend]")).to_have_count(0)
    assert len(providers.to(CALLBACK)) == 4
    reply = reply.first

    page.fill("[data-test=composer-text]", "Customer is grumpy; be kind.")
    page.click("[data-test=send-note]")
    note = page.locator("[data-test=message][data-internal=true]")
    expect(note).to_have_count(1)
    expect(page.locator("[data-test=composer-text]")).to_have_value("")
    page.wait_for_timeout(1500)
    assert len(providers.to(CALLBACK)) == 4  # nothing more went out
    assert note.locator("[data-test=delivery-status]").text_content() not in (
        "queued", "sent", "delivered")


def test_a_customers_script_is_shown_as_text_and_runs_nothing(page, api, agent, channel,
                                                              worker):
    hostile = ('<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
               '<b>bold?</b>')
    login(page, agent)
    api.post_api_webhook(channel, api_message(text=hostile, name="<i>Eve</i>"))
    wait_for_queue(page, 1)
    take_next(page)
    message = page.locator("[data-test=message][data-direction=inbound]")
    expect(message).to_contain_text("<script>window.pwned = 1</script>")
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    assert page.locator("[data-test=ticket-view] script, [data-test=ticket-view] img, "
                        "[data-test=queue] i, [data-test=ticket-view] b").count() == 0


def test_logout_revokes_the_token_and_a_revoked_token_returns_to_login(
        page, new_page, api, agent):
    login(page, agent)
    token = page.evaluate("sessionStorage.getItem('helpdesk.token')")
    page.click("[data-test=logout]")
    expect(page.locator("[data-test=login-email]")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('helpdesk.token')") is None
    assert api.get("/api/v1/auth/me",
                   headers={"Authorization": f"Bearer {token}"}).status_code == 401

    other = new_page()
    login(other, agent)
    held = other.evaluate("sessionStorage.getItem('helpdesk.token')")
    assert api.post("/api/v1/auth/logout",
                    headers={"Authorization": f"Bearer {held}"}).status_code == 204
    other.keyboard.press("n")  # the next API call meets a 401: back to the login form
    expect(other.locator("[data-test=login-email]")).to_be_visible()
    expect(other.locator("[data-test=login-error]")).to_contain_text("log in again")


def test_a_draft_outlives_a_session_that_ended_and_an_explicit_logout_forgets_it(
        page, api, agent, channel, worker):
    """Half a reply was lost when the session ended under the agent (a logout in another
    tab, a password reset, an expired token)."""
    api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
    login(page, agent)
    wait_for_queue(page, 1)
    page.click("[data-test=next-ticket]")
    view = page.locator("[data-test=ticket-view]")
    expect(view).to_be_visible()
    ticket_path = f"/tickets/{view.get_attribute('data-ticket-id')}"
    page.fill("[data-test=composer-text]", "Half a reply, مرحبا, to keep")
    held = page.evaluate("sessionStorage.getItem('helpdesk.token')")
    assert api.post("/api/v1/auth/logout",
                    headers={"Authorization": f"Bearer {held}"}).status_code == 204
    expect(page.locator("[data-test=login-email]")).to_be_visible()  # (its socket closed)

    login(page, agent, ticket_path)
    composer = page.locator("[data-test=composer-text]")
    expect(composer).to_have_value("Half a reply, مرحبا, to keep")
    assert composer.get_attribute("dir") == "auto"  # right-to-left text reads as written
    page.click("[data-test=logout]")
    login(page, agent, ticket_path)
    expect(page.locator("[data-test=ticket-view]")).to_be_visible()
    expect(page.locator("[data-test=composer-text]")).to_have_value("")


def test_an_agent_sees_forbidden_on_the_supervisor_and_admin_views(page, api, agent):
    login(page, agent, "/supervisor")
    expect(page.locator("[data-test=forbidden]")).to_be_visible()
    expect(page.locator("[data-test=metric-tickets_solved]")).to_have_count(0)
    page.goto("/admin")
    expect(page.locator("[data-test=forbidden]")).to_be_visible()
    assert api.as_(agent).get("/api/v1/metrics/summary").status_code == 403


def test_a_changed_role_redraws_the_console_without_a_reload(page, api, admin, supervisor):
    login(page, supervisor, "/supervisor")
    expect(page.locator("[data-test=nav-supervisor]")).to_be_visible()
    expect(page.locator("[data-test=metric-tickets_solved]")).to_be_visible()
    expect(page.locator("[data-test=connection]")).to_have_text("live")
    demoted = api.as_(admin).patch(f"/api/v1/agents/{supervisor.id}", json={"role": "agent"})
    assert demoted.status_code == 200, demoted.text
    # its connections closed; the reconnect asks who it is and redraws for the new role
    expect(page.locator("[data-test=forbidden]")).to_be_visible(timeout=15_000)
    expect(page.locator("[data-test=nav-supervisor]")).to_have_count(0)
    expect(page.locator("[data-test=metric-tickets_solved]")).to_have_count(0)
    expect(page.locator("[data-test=connection]")).to_have_text("live")


def work_sessions(app, ticket_id: int) -> list:
    from sqlalchemy import select

    from helpdesk.extensions import db
    from helpdesk.models import WorkSession

    with app.app_context():
        rows = db.session.execute(select(WorkSession).where(WorkSession.ticket_id == ticket_id)
                                  .order_by(WorkSession.id)).scalars().all()
        return [(row.agent_id, row.ended_at is None) for row in rows]


def stored_texts(app) -> list[str]:
    from sqlalchemy import select

    from helpdesk.extensions import db
    from helpdesk.models import Message

    with app.app_context():
        texts = db.session.execute(select(Message.text).order_by(Message.id)).scalars().all()
        db.session.rollback()
        return texts


def wait_until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def set_visibility(page, state: str) -> None:
    page.evaluate("""(state) => {
        Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""", state)


def test_work_sessions_follow_the_screen_and_colleagues_see_each_other(
        app, page, new_page, api, agent, supervisor, channel, worker):
    api.post_api_webhook(channel, api_message(text="Hello there"))
    login(page, agent)
    wait_for_queue(page, 1)
    ticket_id = int(take_next(page).get_attribute("data-ticket-id"))
    assert wait_until(lambda: work_sessions(app, ticket_id) == [(agent.id, True)])

    set_visibility(page, "hidden")  # another tab in front: the work stops
    assert wait_until(lambda: work_sessions(app, ticket_id) == [(agent.id, False)])
    set_visibility(page, "visible")
    assert wait_until(lambda: work_sessions(app, ticket_id) == [(agent.id, False),
                                                                (agent.id, True)])

    colleague = new_page()
    login(colleague, supervisor, f"/tickets/{ticket_id}")  # a deep link
    expect(colleague.locator("[data-test=ticket-view]")).to_have_attribute(
        "data-ticket-id", str(ticket_id))
    expect(page.locator("[data-test=viewers]")).to_contain_text("Supervisor")
    expect(colleague.locator("[data-test=viewers]")).to_contain_text("Agent")
    page.fill("[data-test=composer-text]", "Half a reply")
    shown = page.locator("[data-test=ticket-view]").element_handle()
    page.locator("[data-test=my-ticket]").first.click()  # the same ticket, loaded again
    page.wait_for_function("view => !view.isConnected", arg=shown)  # a new view replaced it
    expect(page.locator("[data-test=viewers]")).to_contain_text("Supervisor")
    expect(page.locator("[data-test=composer-text]")).to_have_value("Half a reply")
    page.fill("[data-test=composer-text]", "")
    colleague.fill("[data-test=composer-text]", "Let me take a look")
    expect(page.locator(".typing")).to_contain_text("is typing")

    page.click("[data-test=escalate]")
    page.fill("[data-test=escalate-level]", "2")
    page.fill("[data-test=escalate-reason]", "needs a specialist")
    page.click("[data-test=escalate-submit]")
    expect(page.locator("[data-test=ticket-view]")).to_contain_text("level 2")
    expect(colleague.locator("[data-test=ticket-view]")).to_contain_text("level 2")
    # (it read "Unassigned by you": the escalation let go of its level-1 agent)
    expect(page.locator("[data-test=timeline-item][data-type=event]").filter(
        has_text="Back to the queue: you are below its new level")).to_have_count(1)
    page.select_option("[data-test=set-priority]", "urgent")
    expect(colleague.locator("[data-test=ticket-view]")).to_have_attribute(
        "data-priority", "urgent")


def test_next_ticket_at_capacity(app, page, api, channel, worker):
    busy = factories.agent(app, capacity=0.1)  # room for one asynchronous ticket
    for n in (1, 2):
        api.post_api_webhook(channel, api_message(event_id=f"e{n}", message_id=f"m{n}",
                                                  email=f"c{n}@example.com"))
    login(page, busy)
    wait_for_queue(page, 2)
    take_next(page)
    page.click("[data-test=next-ticket]")
    expect(page.locator("[data-test=next-ticket-at-capacity]")).to_be_visible()
    expect(page.locator("[data-test=next-ticket-empty]")).to_be_hidden()


def test_an_attachment_downloads_with_the_token(app, page, api, agent, channel, worker):
    from helpdesk.extensions import db
    from helpdesk.models import Attachment, Message
    from helpdesk.services.ingest.attachments import store_bytes

    login(page, agent)
    api.post_api_webhook(channel, api_message(text="Invoice attached"))
    wait_for_queue(page, 1)
    with app.app_context():
        message = db.session.execute(db.select(Message)).scalars().first()
        path, digest = store_bytes(b"%PDF-1.4 the invoice")
        message.attachments.append(Attachment(
            filename="invoice.pdf", content_type="application/pdf", size=20,
            storage_path=path, sha256=digest))
        db.session.commit()
    take_next(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="invoice.pdf").click()
    assert download.value.suggested_filename == "invoice.pdf"
    assert download.value.path().read_bytes() == b"%PDF-1.4 the invoice"


def test_after_the_server_drops_the_connection_the_console_reconnects_and_catches_up(
        app, page, api, agent, channel, worker):
    from helpdesk.extensions import socketio

    login(page, agent)
    connection = page.locator("[data-test=connection]")
    sids = [sid for sid, _ in socketio.server.manager.get_participants("/agents", "queue")]
    assert sids
    for sid in sids:
        socketio.server.disconnect(sid, namespace="/agents")
    expect(connection).to_have_text("offline")
    api.post_api_webhook(channel, api_message(text="Sent while you were away"))
    expect(connection).to_have_text("live", timeout=10_000)
    expect(page.locator("[data-test=queue-item]")).to_have_count(1)


def test_a_colleagues_ticket_on_screen_catches_up_on_what_was_said_while_offline(
        app, page, api, agent, supervisor, channel, worker):
    """Messages on a colleague's ticket reach an agent only through the ticket's room: after
    a reconnect, or with the tab in front again, the console joins it again, then asks for
    what it missed."""
    from sqlalchemy import select, update

    from helpdesk.extensions import db, socketio
    from helpdesk.models import Message, Ticket

    api.post_api_webhook(channel, api_message(text="My order is late"))
    assert wait_until(lambda: stored_texts(app) == ["My order is late"])
    with app.app_context():
        ticket_id = db.session.execute(select(Ticket.id)).scalar_one()
        db.session.execute(update(Ticket).values(assignee_id=supervisor.id, status="open"))
        db.session.commit()
    login(page, agent, f"/tickets/{ticket_id}")
    expect(page.locator("[data-test=message]")).to_have_count(1)
    synced = page.locator("[data-test=connection][data-synced=true]")
    expect(synced).to_have_count(1)  # in the ticket's room, and its baseline taken

    page.context.set_offline(True)  # the reconnect waits until the message is stored
    for sid, _ in socketio.server.manager.get_participants("/agents", f"agent:{agent.id}"):
        socketio.server.disconnect(sid, namespace="/agents")
    expect(page.locator("[data-test=connection]")).to_have_text("offline")
    api.post_api_webhook(channel, api_message(event_id="e2", message_id="m2",
                                              text="Sent while you were away"))
    assert wait_until(lambda: len(stored_texts(app)) == 2)
    page.context.set_offline(False)
    expect(page.locator("[data-test=connection]")).to_have_text("live", timeout=15_000)
    expect(page.locator("[data-test=message]")).to_have_count(2)
    expect(page.locator("[data-test=message]").nth(1)).to_contain_text("Sent while you were")

    set_visibility(page, "hidden")  # another tab in front: the console leaves the room
    assert wait_until(lambda: work_sessions(app, ticket_id)[-1] == (agent.id, False))
    api.post_api_webhook(channel, api_message(event_id="e3", message_id="m3",
                                              text="Sent while you looked elsewhere"))
    assert wait_until(lambda: len(stored_texts(app)) == 3)
    set_visibility(page, "visible")
    expect(page.locator("[data-test=message]")).to_have_count(3)
    with app.app_context():
        assert db.session.execute(select(Message.ticket_id).distinct()).scalars().all() == \
            [ticket_id]


def test_a_long_message_shows_whole_on_the_open_ticket(app, page, api, agent, channel, worker):
    """Socket events carry a message's text cut to 16 KiB (`truncated`); the console reads
    the rest."""
    api.post_api_webhook(channel, api_message(text="Short first"))
    login(page, agent)
    wait_for_queue(page, 1)
    take_next(page)
    api.post_api_webhook(channel, api_message(event_id="e2", message_id="m2",
                                              text="log line\n" * 2500 + "THE END"))
    expect(page.locator("[data-test=message]")).to_have_count(2)
    expect(page.locator("[data-test=message]").nth(1)).to_contain_text("THE END")


def test_an_agent_picks_the_contact_reason_from_the_configured_list(
        app, page, api, admin, agent, channel, worker):
    reasons = ["delivery", "billing"]
    assert api.as_(admin).patch("/api/v1/settings", json={"contact_reasons": reasons}).ok
    api.post_api_webhook(channel, api_message(text="I was charged twice"))
    login(page, agent)
    wait_for_queue(page, 1)
    ticket_id = take_next(page).get_attribute("data-ticket-id")
    reason = page.locator("select[data-test=contact-reason]")
    expect(reason.locator("option")).to_have_text(["—", *reasons])
    reason.select_option("billing")
    assert wait_until(lambda: api.as_(agent).get(f"/api/v1/tickets/{ticket_id}")
                      .json()["contact_reason"] == "billing")


def test_a_long_history_opens_at_its_latest_items_and_shows_earlier_ones_on_request(
        app, page, api, agent, channel, worker):
    from datetime import timedelta

    from sqlalchemy import insert, select

    from helpdesk.extensions import db
    from helpdesk.models import Message, Ticket
    from helpdesk.models.base import utcnow

    api.post_api_webhook(channel, api_message(text="The latest message"))
    assert wait_until(lambda: stored_texts(app) == ["The latest message"])
    with app.app_context():  # 450 older messages on the customer's ticket
        ticket = db.session.execute(select(Ticket)).scalar_one()
        long_ago = utcnow() - timedelta(days=30)
        db.session.execute(insert(Message), [{
            "ticket_id": ticket.id, "channel_id": ticket.channel_id, "direction": "inbound",
            "author_type": "customer", "text": f"old message {n}", "delivery_status": "received",
            "created_at": long_ago + timedelta(minutes=n)} for n in range(450)])
        db.session.commit()
    login(page, agent)
    wait_for_queue(page, 1)
    take_next(page)
    items = page.locator("[data-test=timeline-item]")
    expect(page.locator(".timeline-item", has_text="The latest message")).to_have_count(1)
    shown = items.count()
    # The latest page holds ~55 items of ~455, so the page before it is shown with it.
    assert 200 < shown < 453
    assert page.locator(".timeline-item", has_text="old message 0").count() == 0
    page.click("[data-test=timeline-earlier]")
    expect(page.locator(".timeline-item", has_text="old message 0")).to_have_count(1)
    expect(page.locator("[data-test=timeline-earlier]")).to_have_count(0)
    total = items.count()
    assert total > shown and items.first.text_content().endswith("old message 0")


def test_the_timeline_follows_the_tickets_changes_and_a_refused_change_is_put_back(
        app, page, api, agent, channel, worker):
    import re

    api.post_api_webhook(channel, api_message(text="Please close my account"))
    login(page, agent)
    wait_for_queue(page, 1)
    view = take_next(page)
    ticket_id = int(view.get_attribute("data-ticket-id"))
    events = page.locator("[data-test=timeline-item][data-type=event]")
    page.select_option("[data-test=set-status]", "pending")
    expect(view).to_have_attribute("data-status", "pending")
    expect(events.filter(has_text=re.compile(r"Status .*→ pending"))).to_have_count(1)
    # Changed elsewhere (another agent, an integration): the event shows up here too.
    assert api.as_(agent).patch(f"/api/v1/tickets/{ticket_id}",
                                json={"status": "closed"}).status_code == 200
    expect(view).to_have_attribute("data-status", "closed")
    expect(events.filter(has_text=re.compile(r"Status .*→ closed"))).to_have_count(1)
    # A closed ticket stays closed: the refused choice does not stay in the menu.
    page.select_option("[data-test=set-status]", "open")
    expect(view.locator("p.error")).to_be_visible()
    expect(page.locator("[data-test=set-status]")).to_have_value("closed")
    expect(view).to_have_attribute("data-status", "closed")


def test_pressing_n_twice_quickly_takes_one_ticket(app, page, api, agent, channel, worker):
    for n in (1, 2):
        api.post_api_webhook(channel, api_message(event_id=f"e{n}", message_id=f"m{n}",
                                                  email=f"c{n}@example.com"))
    login(page, agent)
    wait_for_queue(page, 2)
    # Two presses before the first answer (in one go: no answer can come in between).
    page.evaluate("""() => { for (let i = 0; i < 2; i++) {
        document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'n', bubbles: true}));
    } }""")
    expect(page.locator("[data-test=ticket-view]")).to_be_visible()
    page.wait_for_timeout(1000)
    expect(page.locator("[data-test=my-ticket]")).to_have_count(1)
    expect(page.locator("[data-test=queue-item]")).to_have_count(1)
    assert api.as_(agent).get("/api/v1/queue").json()["total"] == 1


def test_the_ticket_clicked_last_is_the_one_shown_whatever_answers_first(
        app, page, api, agent, channel, worker):
    for n in (1, 2):
        api.post_api_webhook(channel, api_message(event_id=f"e{n}", message_id=f"m{n}",
                                                  email=f"c{n}@example.com", text=f"Ticket {n}"))
    login(page, agent)
    wait_for_queue(page, 2)
    items = page.locator("[data-test=queue-item]")
    first, second = (int(items.nth(i).get_attribute("data-ticket-id")) for i in range(2))
    # The first ticket's answer comes late (a slow network, a busy server).
    page.evaluate("""(slow) => {
        const original = window.fetch;
        window.fetch = async (url, options) => {
            const response = await original(url, options);
            if (String(url).endsWith(`/api/v1/tickets/${slow}`)) {
                await new Promise((done) => setTimeout(done, 1200));
            }
            return response;
        };
    }""", first)
    items.nth(0).click()
    items.nth(1).click()
    view = page.locator("[data-test=ticket-view]")
    expect(view).to_have_attribute("data-ticket-id", str(second))
    page.wait_for_timeout(1800)  # the late answer has come by now
    expect(view).to_have_attribute("data-ticket-id", str(second))
    assert page.url.endswith(f"/tickets/{second}")
