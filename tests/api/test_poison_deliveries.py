"""Poison deliveries: whatever fails, and wherever, a delivery ends `failed` with a readable
error and is never retried forever; one that kills its worker is quarantined after N claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from sqlalchemy import select

from helpdesk.config import PROJECT_ROOT
from helpdesk.connectors.api import sign
from helpdesk.extensions import db
from helpdesk.models import Delivery
from tests.support import crashing, factories
from tests.support.live import api_message
from tests.support.signing import Webhooks

TOKEN = "voice-auth-token"
CALLER = "+14155550100"


def _delivery(app, delivery_id: int) -> Delivery:
    with app.app_context():
        found = db.session.get(Delivery, delivery_id)
        db.session.expunge(found)
        return found


def _only_delivery_id(app) -> int:
    with app.app_context():
        return db.session.execute(select(Delivery.id)).scalar_one()


def test_a_delivery_that_fails_at_the_final_commit_ends_failed_and_is_not_swept_again(
        app, api, admin, drain):
    from helpdesk.queues import INGEST, get_queue
    from helpdesk.services.ingest import deliveries

    channel = factories.channel(app, "crashing", "api", secrets={"signing_secret": "s3cret"})
    _post_crashing(api, channel, api_message(text="FAIL-AT-COMMIT"))
    drain()
    delivery = _delivery(app, _only_delivery_id(app))
    assert delivery.status == "failed"
    assert delivery.error and "[SQL" not in delivery.error and "INSERT" not in delivery.error
    time.sleep(1.1)  # older than the tests' sweep grace
    with app.app_context():
        assert deliveries.sweep_unprocessed() == 0
        assert get_queue(INGEST, app).count == 0
    listed = api.as_(admin).get("/api/v1/deliveries?status=failed").json()
    assert listed["total"] == 1 and listed["items"][0]["error"] == delivery.error


def _post_crashing(api, channel, payload: dict):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    response = api.session.post(
        f"{api.base_url}/webhooks/crashing/{channel.key}", data=body, timeout=30,
        headers={"Content-Type": "application/json", "X-Helpdesk-Timestamp": ts,
                 "X-Helpdesk-Signature": sign("s3cret", ts, body)})
    assert response.status_code == 200, response.text


def _crashing_worker(app) -> int:
    """A real worker process (burst) that dies when it parses the poison; its exit code."""
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": app.config["REDIS_URL"], "HELPDESK_SECRET_KEY": app.config["SECRET_KEY"],
           "HELPDESK_TEST_CRASH": "1", "HELPDESK_JOB_RETRY_INTERVALS": "0"}
    boot = ("import sys, tests.support.crashing; from helpdesk.cli import main; "
            "sys.argv = ['helpdesk', 'worker', '--burst', '--no-scheduler']; main()")
    done = subprocess.run([sys.executable, "-c", boot], env=env, cwd=PROJECT_ROOT, timeout=120,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return done.returncode


def test_a_delivery_that_kills_its_worker_is_quarantined_and_the_others_go_through(
        app, api, admin, drain):
    from helpdesk.services.ingest import deliveries

    assert crashing.CrashingConnector.provider == "crashing"
    channel = factories.channel(app, "crashing", "api", secrets={"signing_secret": "s3cret"})
    _post_crashing(api, channel, api_message("evt-poison", "m-poison", "KILL-THE-WORKER"))
    _post_crashing(api, channel, api_message("evt-fine", "m-fine", "a normal question",
                                             email="bo@example.com"))
    with app.app_context():
        poison_id, fine_id = db.session.execute(
            select(Delivery.id).order_by(Delivery.id)).scalars().all()
    time.sleep(1.1)  # older than the tests' sweep grace
    exits = []
    for _ in range(6):
        exits.append(_crashing_worker(app))
        if _delivery(app, poison_id).status != "received":
            break
        with app.app_context():
            deliveries.sweep_unprocessed()
    poison = _delivery(app, poison_id)
    assert poison.status == "failed"
    assert poison.error.startswith("worker died while processing")
    assert exits.count(-9) == app.config["DELIVERY_MAX_CLAIMS"], exits
    assert _delivery(app, fine_id).status == "processed"

    replayed = api.as_(admin).post(f"/api/v1/deliveries/{poison_id}/replay")
    assert replayed.status_code == 200 and replayed.json()["status"] == "received"
    drain()  # this worker does not crash: the delivery goes through after the "fix"
    assert _delivery(app, poison_id).status == "processed"


def test_a_stored_error_names_the_cause_not_the_statement_and_holds_no_nul():
    from sqlalchemy.exc import DataError

    from helpdesk.services.ingest.deliveries import readable_error

    error = DataError("INSERT INTO calls (sequence) VALUES (%(s)s)", {"s": 1},
                      ValueError("integer out of range\x00 \ud800 /bot1:SECRET/x"))
    text = readable_error(error)
    assert text.startswith("ValueError: integer out of range")
    assert "INSERT" not in text and "\x00" not in text and "SECRET" not in text
    text.encode("utf-8")  # no lone surrogate left


def test_a_sender_no_identity_can_be_made_of_fails_at_once_and_blocks_no_other(
        app, api, admin, drain):
    """An SMS from an alphanumeric sender ("INFO") fails the same way every time: it is
    quarantined on its first run, and the deliveries batched with it are processed."""
    channel = factories.channel(app, "twilio", "sms",
                                {"account_sid": "AC" + "0" * 32, "phone_number": "+18005551212"},
                                {"auth_token": TOKEN})
    hooks = Webhooks(api.base_url)
    for n, sender in enumerate(["+14155550101", "INFO", "+14155550102"]):
        response = hooks.twilio(channel, {
            "AccountSid": "AC" + "0" * 32, "MessageSid": f"SM{n:032d}", "From": sender,
            "To": "+18005551212", "Body": f"message {n}", "NumMedia": "0"}, TOKEN)
        assert response.status_code == 200, response.text
    drain("ingest")
    listed = api.as_(admin).get("/api/v1/deliveries").json()["items"]
    by_status = sorted((d["status"], d["attempts"]) for d in listed)
    assert by_status == [("failed", 1), ("processed", 1), ("processed", 1)]
    failed = next(d for d in listed if d["status"] == "failed")
    assert "identity" in failed["error"]
