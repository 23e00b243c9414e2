"""The supervisor dashboard and the admin view in a real browser, changing live."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support import factories
from tests.support.browser import login
from tests.support.live import api_message


def test_solving_with_a_reason_moves_the_open_dashboard_without_a_reload(
        page, new_page, api, agent, supervisor, channel, worker, shoot):
    api.post_api_webhook(channel, api_message(text="I was charged twice this month"))
    dashboard = new_page()
    login(dashboard, supervisor, "/supervisor")
    solved = dashboard.locator("[data-test=metric-tickets_solved]")
    expect(solved).to_have_attribute("data-value", "0")
    expect(dashboard.locator("[data-test=pareto-row]")).to_have_count(0)
    expect(dashboard.locator("[data-test=metric-tickets_created]")).to_have_attribute(
        "data-value", "1")
    expect(dashboard.locator("[data-test=group-table]")).to_be_attached()
    dashboard.evaluate("window.stillTheSamePage = true")

    login(page, agent)
    expect(page.locator("[data-test=queue-item]")).to_have_count(1)
    page.click("[data-test=next-ticket]")
    view = page.locator("[data-test=ticket-view]")
    expect(view).to_be_visible()
    page.fill("[data-test=contact-reason]", "billing")
    page.select_option("[data-test=set-status]", "solved")
    expect(view).to_have_attribute("data-status", "solved")

    expect(solved).to_have_attribute("data-value", "1", timeout=10_000)
    row = dashboard.locator("[data-test=pareto-row]")
    expect(row).to_have_count(1)
    assert row.get_attribute("data-reason") == "billing"
    assert row.get_attribute("data-count") == "1"
    assert row.get_attribute("data-vital-few") == "true"
    assert dashboard.evaluate("window.stillTheSamePage") is True
    expect(dashboard.locator("[data-test=group-row]")).to_have_count(1)
    shoot(dashboard, "supervisor")
    size = dashboard.evaluate("""() => {
        const box = document.querySelector('[data-test=pareto-chart] svg').getBoundingClientRect();
        return [box.width, box.height];
    }""")
    assert size[0] > 0 and size[1] > 0


def test_presence_toggles_and_shows_on_the_agents_board(page, new_page, agent, supervisor):
    dashboard = new_page()
    login(dashboard, supervisor, "/supervisor")
    row = dashboard.locator(f"[data-test=agent-row][data-agent-id='{agent.id}']")
    expect(row).to_have_attribute("data-presence", "offline")
    expect(dashboard.locator("[data-test=nav-supervisor]")).to_be_visible()
    expect(dashboard.locator("[data-test=nav-admin]")).to_have_count(0)

    login(page, agent)
    expect(row).to_have_attribute("data-presence", "online")
    presence = page.locator("[data-test=presence]")
    expect(presence).to_have_text("online")
    presence.click()
    expect(presence).to_have_text("away")
    expect(row).to_have_attribute("data-presence", "away")
    presence.click()
    expect(row).to_have_attribute("data-presence", "online")
    page.click("[data-test=logout]")
    expect(row).to_have_attribute("data-presence", "offline")


def test_a_deactivated_agent_leaves_the_agents_board(page, new_page, api, admin, agent,
                                                     supervisor):
    dashboard = new_page()
    login(dashboard, supervisor, "/supervisor")
    row = dashboard.locator(f"[data-test=agent-row][data-agent-id='{agent.id}']")
    login(page, agent)
    expect(row).to_have_attribute("data-presence", "online")
    gone = api.as_(admin).patch(f"/api/v1/agents/{agent.id}", json={"active": False})
    assert gone.status_code == 200
    expect(row).to_have_count(0, timeout=10_000)  # (its connections closed: offline, inactive)
    expect(dashboard.locator(f"[data-test=agent-row][data-agent-id='{supervisor.id}']")
           ).to_have_count(1)


def test_the_agents_board_follows_agents_created_and_deactivated_while_offline(
        page, api, admin, agent, supervisor):
    """Only a presence change reloaded the board: an agent created, or one deactivated
    while offline, changed nothing on it for a minute."""
    login(page, supervisor, "/supervisor")
    offline = page.locator(f"[data-test=agent-row][data-agent-id='{agent.id}']")
    expect(offline).to_have_attribute("data-presence", "offline")
    created = api.as_(admin).post("/api/v1/agents", json={"email": "new.one@example.com",
                                                          "name": "New One"})
    assert created.status_code == 201, created.text
    fresh = page.locator(f"[data-test=agent-row][data-agent-id='{created.json()['id']}']")
    expect(fresh).to_have_count(1, timeout=10_000)
    expect(fresh).to_have_attribute("data-presence", "offline")
    assert api.as_(admin).patch(f"/api/v1/agents/{agent.id}",
                                json={"active": False}).status_code == 200
    expect(offline).to_have_count(0, timeout=10_000)


def test_period_and_grouping_and_the_csv(page, supervisor, channel, api, worker):
    api.post_api_webhook(channel, api_message(text="hello"))
    login(page, supervisor, "/supervisor")
    expect(page.locator("[data-test=metric-tickets_created]")).to_have_attribute(
        "data-value", "1")
    page.select_option("[data-test=period]", "30d")
    page.select_option("[data-test=group-by]", "day")
    rows = page.locator("[data-test=group-row]")
    expect(rows).to_have_count(30)
    with page.expect_download() as download:
        page.click("[data-test=csv-download]")
    text = download.value.path().read_text()
    assert text.splitlines()[0].startswith("key,label")
    assert len(text.strip().splitlines()) == 31


def test_admin_creates_a_channel_and_an_agent(page, admin, shoot):
    login(page, admin, "/admin")
    for hook in ("nav-console", "nav-supervisor", "nav-admin"):
        expect(page.locator(f"[data-test={hook}]")).to_be_visible()
    form = page.locator("form[aria-label='New channel']")
    form.get_by_label("Name").fill("Shop API")
    form.get_by_label("Provider").select_option("api")
    form.get_by_label("secret: signing_secret").fill("very-secret")
    form.get_by_role("button", name="Create channel").click()
    row = page.locator("[data-test=channel-row]", has_text="Shop API")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("/webhooks/api/")
    assert "very-secret" not in page.content()

    agents = page.locator("form[aria-label='New agent']")
    agents.get_by_label("Email").fill("new.agent@example.com")
    agents.get_by_label("Name").fill("New Agent")
    agents.get_by_label("Password").fill("long enough")
    agents.get_by_role("button", name="Create agent").click()
    new_row = page.locator("[data-test=agent-admin-row]", has_text="new.agent@example.com")
    expect(new_row).to_have_count(1)
    new_row.get_by_role("button", name="Deactivate", exact=True).click()
    expect(new_row.get_by_role("button", name="Activate", exact=True)).to_be_visible()
    expect(new_row).to_have_attribute("data-active", "false")
    shoot(page, "admin", full_page=True)


def test_attachments_are_served_behind_auth(app, api, agent):
    from helpdesk.extensions import db
    from helpdesk.models import Attachment
    from helpdesk.services.ingest.attachments import store_bytes

    channel = factories.channel(app, "api")
    assert api.post_api_webhook(channel, api_message()).status_code == 200
    with app.app_context():
        from workers.worker import make_worker

        make_worker(app).work(burst=True, logging_level="WARNING")
        from helpdesk.models import Message

        message = db.session.execute(db.select(Message)).scalars().first()
        path, digest = store_bytes(b"%PDF-1.4 invoice")
        attachment = Attachment(filename="invoice.pdf", content_type="application/pdf", size=16,
                                storage_path=path, sha256=digest)
        message.attachments.append(attachment)
        db.session.commit()
        attachment_id, ticket_id = attachment.id, message.ticket_id

    ticket = api.as_(agent).get(f"/api/v1/tickets/{ticket_id}").json()
    [listed] = ticket["messages"][0]["attachments"]
    assert listed["url"].endswith(f"/api/v1/attachments/{attachment_id}")
    assert api.get(f"/api/v1/attachments/{attachment_id}").status_code == 401
    assert api.get("/api/v1/attachments/999999").status_code == 401
    missing = api.as_(agent).get("/api/v1/attachments/999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    got = api.as_(agent).get(f"/api/v1/attachments/{attachment_id}")
    assert got.status_code == 200 and got.content == b"%PDF-1.4 invoice"
    assert got.headers["Content-Type"] == "application/pdf"
    assert "attachment" in got.headers["Content-Disposition"]


def test_sla_alerts_appear_as_they_happen_and_link_to_the_ticket(page, api, admin, channel,
                                                                  worker):
    for priority in ("low", "normal", "high", "urgent"):
        assert api.as_(admin).put(f"/api/v1/sla-policies/{priority}", json={
            "first_response_seconds": 3, "resolution_seconds": 3600,
            "warning_ratio": 0.5}).status_code == 200
    login(page, admin, "/supervisor")
    api.post_api_webhook(channel, api_message(text="question about my order"))
    alerts = page.locator("[data-test=sla-alert]")
    expect(alerts).to_have_count(2, timeout=20_000)  # the warning, then the breach
    expect(alerts.first).to_contain_text("Breached")
    link = alerts.first.locator("a")
    ticket_id = link.get_attribute("href").rsplit("/", 1)[1]
    link.click()
    expect(page.locator("[data-test=ticket-view]")).to_have_attribute("data-ticket-id",
                                                                      ticket_id)


def test_the_admin_view_lists_every_agent_past_the_apis_first_page(page, app, admin):
    from helpdesk.extensions import db
    from helpdesk.models import Agent

    with app.app_context():  # more than one page of 200 (inserted: no password to hash)
        db.session.add_all(Agent(email=f"many{n}@example.com", name=f"Many {n}", role="agent")
                           for n in range(205))
        db.session.commit()
        total = db.session.query(Agent).count()
    login(page, admin, "/admin")
    expect(page.locator("[data-test=agent-admin-row]")).to_have_count(total)
    expect(page.locator("[data-test=agent-admin-row]", has_text="many204@example.com")
           ).to_have_count(1)


def test_every_view_fits_a_phones_width(browser, live_server, api, admin, channel, worker,
                                        shoot):
    """At 375 px the supervisor page was 912 px wide (its figures off-screen, the header's
    dark band stopping short) and the admin page 818 px."""
    api.post_api_webhook(channel, api_message(text="Where is my parcel?"))
    context = browser.new_context(viewport={"width": 375, "height": 740}, base_url=live_server)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    try:
        login(tab, admin, "/supervisor")
        expect(tab.locator("[data-test=metric-tickets_created]")).to_be_visible()
        expect(tab.locator("[data-test=agent-row]").first).to_be_attached()
        for path in ("/supervisor", "/admin", "/"):
            if path != "/supervisor":
                tab.goto(path)
                tab.wait_for_selector("[data-test=connection]:text-is('live')")
            if path == "/admin":
                expect(tab.locator("[data-test=channel-row]").first).to_be_visible()
            width = tab.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, (path, width)
            header = tab.evaluate("document.querySelector('header.top').scrollWidth")
            assert header <= 375, (path, header)
            shoot(tab, "narrow" + (path.replace("/", "-") if path != "/" else "-console"))
        expect(tab.locator("[data-test=queue-item]")).to_have_count(1)
        tab.click("[data-test=next-ticket]")
        expect(tab.locator("[data-test=ticket-view]")).to_be_in_viewport()
        assert tab.evaluate("document.documentElement.scrollWidth") <= 375
        shoot(tab, "narrow-ticket")
    finally:
        context.close()
