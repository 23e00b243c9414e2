"""Steps a person takes in the console, for the browser tests."""

from __future__ import annotations


def login(tab, who, path: str = "/", password: str = "correct horse") -> None:
    """Open `path`, log in through the form, and wait for the live connection."""
    tab.goto(path)
    tab.fill("[data-test=login-email]", who.email)
    tab.fill("[data-test=login-password]", password)
    tab.click("[data-test=login-submit]")
    tab.wait_for_selector("[data-test=connection]:text-is('live')")
