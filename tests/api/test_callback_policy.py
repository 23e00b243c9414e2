"""callback_url: no private, loopback or link-local destination (checked on the connected
socket, after DNS) unless allowed, and no redirect followed."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpdesk.senders.callbacks import _public
from tests.api.test_outbound import message, reply, ticket_of
from tests.support import factories
from tests.support.live import api_message


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST with a redirect to /elsewhere, and records the paths it saw."""

    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(self.path)
        self.send_response(307 if self.path == "/callback" else 200)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def endpoint():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def _reply_through(app, api, agent, drain, url: str):
    channel = factories.channel(app, "api", settings={"callback_url": url})
    api.post_api_webhook(channel, api_message())
    drain()
    response = reply(api, agent, ticket_of(app, channel))
    assert response.status_code == 201
    drain()
    return message(app, response.json()["id"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_callback_into_the_local_network_is_refused(app, api, agent, drain, endpoint,
                                                      monkeypatch, host):
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_CALLBACKS", False)
    sent = _reply_through(app, api, agent, drain, f"http://{host}:{endpoint}/callback")
    assert sent.delivery_status == "failed"
    assert sent.delivery_error.startswith("callback_url refused: ")
    assert "HELPDESK_ALLOW_PRIVATE_CALLBACKS" in sent.delivery_error
    assert _Recorder.seen == []


def test_redirects_are_not_followed(app, api, agent, drain, endpoint):
    sent = _reply_through(app, api, agent, drain, f"http://127.0.0.1:{endpoint}/callback")
    assert sent.delivery_status == "failed" and "307" in sent.delivery_error
    assert "/elsewhere" not in _Recorder.seen


def test_which_addresses_are_public():
    for private in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                    "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1",
                    # IPv6 forms carrying an IPv4 address Python 3.11 calls global: NAT64
                    # (169.254.169.254 through the gateway), 6to4, Teredo, IPv4-compatible
                    "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1", "2002:7f00:1::",
                    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::127.0.0.1"):
        assert not _public(private), private
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert _public(public), public
