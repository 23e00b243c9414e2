"""Message bodies, secrets and tokens never reach the logs."""

from __future__ import annotations

import logging

from tests.support import factories
from tests.support.live import api_message


def test_bodies_secrets_and_tokens_stay_out_of_logs(app, api, admin, caplog, drain,
                                                   monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setitem(app.config, "OUTBOUND_RETRY_INTERVALS", [])
    channel = factories.channel(app, "api", settings={"callback_url": "http://127.0.0.1:9/x"},
                                secrets={"signing_secret": "SECRET-XYZ-987"})
    api.post_api_webhook(channel, api_message(text="BODY-IN-123 my card is 4111"),
                         secret="SECRET-XYZ-987")
    api.post_api_webhook(channel, api_message(event_id="e2", text="BODY-IN-123 again"),
                         secret="SECRET-XYZ-987")
    garbage = api.session.post(f"{api.base_url}/webhooks/raw_mime/nope", data=b"BODY-IN-123")
    assert garbage.status_code == 404
    drain()
    ticket = api.as_(admin).get("/api/v1/tickets").json()["items"][0]
    reply = api.as_(admin).post(f"/api/v1/tickets/{ticket['id']}/messages",
                                json={"text": "BODY-OUT-456 refund issued"})
    assert reply.status_code == 201
    drain()
    sent = api.as_(admin).get(f"/api/v1/tickets/{ticket['id']}").json()["messages"][-1]
    assert sent["delivery_status"] == "failed"  # the callback is unreachable: logged
    logged = caplog.text
    assert caplog.records, "the run logged nothing at all"
    for needle in ("BODY-IN-123", "BODY-OUT-456", "SECRET-XYZ-987", admin.token):
        assert needle not in logged, needle
