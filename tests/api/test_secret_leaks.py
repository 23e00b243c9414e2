"""No secret in any log line, exception or stored error, even inside a library's URL."""

from __future__ import annotations

import logging
import traceback

import pytest

from helpdesk.redaction import redact
from helpdesk.senders.base import SendError, post
from tests.api.test_outbound import (  # noqa: F401  (fixtures)
    message,
    outbound_config,
    providers,
    reply,
    telegram_inbound,
    ticket_of,
)
from tests.support import factories

BOT_TOKEN = "987654321:AAH-very-secret-bot-token_xyz"


def test_a_failed_telegram_send_leaks_the_bot_token_nowhere(
        app, api, agent, providers, drain, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    channel = factories.channel(app, "telegram", secrets={"secret_token": "tg-secret",
                                                          "bot_token": BOT_TOKEN})
    telegram_inbound(api, channel)
    drain()
    providers.stop()  # the provider is down: requests raises with the URL in its message
    response = reply(api, agent, ticket_of(app, channel))
    assert response.status_code == 201
    drain()
    sent = message(app, response.json()["id"])
    assert sent.delivery_status == "failed"
    assert sent.delivery_error == "Telegram unreachable: ConnectionError"
    formatter = logging.Formatter("%(message)s")
    logged = [formatter.format(record) for record in caplog.records]
    assert any("Telegram unreachable" in line for line in logged), logged
    secret_part = BOT_TOKEN.split(":")[1]
    for line in logged:
        assert secret_part not in line


def test_the_send_error_carries_no_chained_exception_naming_the_url(providers):  # noqa: F811
    url = providers.url
    providers.stop()
    with pytest.raises(SendError) as raised:
        post("Telegram", f"{url}/bot{BOT_TOKEN}/sendMessage", json={})
    text = "".join(traceback.format_exception(raised.value))
    assert "very-secret-bot-token" not in text
    assert raised.value.message == "Telegram unreachable: ConnectionError"

def test_a_library_exception_that_names_a_secret_url_is_masked_in_the_log(caplog):
    log = logging.getLogger("helpdesk.test")
    from helpdesk import redaction

    redaction.install()
    try:
        raise ValueError(f"Max retries exceeded with url: /bot{BOT_TOKEN}/sendMessage")
    except ValueError:
        log.exception("send failed for https://u:hunter2@example.com/x?access_token=abc123")
    text = logging.Formatter("%(message)s").format(caplog.records[-1])
    for secret in ("very-secret-bot-token", "hunter2", "abc123"):
        assert secret not in text


def test_redact_masks_the_shapes_secrets_take():
    assert redact(f"POST /bot{BOT_TOKEN}/sendMessage") == "POST /bot<redacted>/sendMessage"
    assert redact("Authorization: Bearer hd_abcdefghijklmnopqrstuvwxyz") == (
        "Authorization: Bearer <redacted>")
    assert redact("GET /v21.0/me?fields=id&access_token=EAAB123") == (
        "GET /v21.0/me?fields=id&access_token=<redacted>")
    assert redact("plain text stays") == "plain text stays"
