"""The agent console in a real browser: login, the live queue, next ticket, the ticket view."""

from __future__ import annotations

import time

from playwright.sync_api import expect

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
    shoot(page, "queue")
