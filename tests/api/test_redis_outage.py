"""Nothing lost: a webhook during a Redis outage is stored, acknowledged and processed later."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.models import Delivery, Message
from tests.support import factories
from tests.support.live import ApiClient, api_message
from tests.support.redis_server import OwnRedis


@pytest.fixture
def outage_system(app, database_url):
    """An app (HTTP server + worker + sweeper) on a Redis server this test controls."""
    own = OwnRedis()
    own.start()
    isolated = create_app({**{k: app.config[k] for k in ("SQLALCHEMY_DATABASE_URI", "DATA_DIR")},
                           "REDIS_URL": own.url, "JOB_RETRY_INTERVALS": [0],
                           "SWEEP_AFTER_SECONDS": 1, "SWEEP_INTERVAL_SECONDS": 1,
                           "TESTING": True}, socket_server=False)
    server = make_server("127.0.0.1", 0, isolated, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield isolated, own, ApiClient(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    own.stop()


def test_webhook_during_redis_outage_is_processed_once_redis_is_back(app, outage_system):
    from workers.worker import make_worker, start_sweeper

    isolated, own, client = outage_system
    channel = factories.channel(app, "api")
    own.stop()

    response = client.post_api_webhook(channel, api_message(text="sent while redis was down"))
    assert response.status_code == 200
    with isolated.app_context():
        delivery = db.session.execute(select(Delivery)).scalar_one()
        assert delivery.status == "received"

    own.start()  # an empty Redis: the enqueue was lost with the outage
    stop = threading.Event()
    start_sweeper(isolated, stop)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            make_worker(isolated).work(burst=True, logging_level="WARNING")
            with isolated.app_context():
                texts = db.session.execute(select(Message.text)).scalars().all()
                db.session.rollback()
            if texts:
                break
            time.sleep(0.2)
    finally:
        stop.set()
    assert texts == ["sent while redis was down"]
    with isolated.app_context():
        assert db.session.execute(select(Delivery.status)).scalar_one() == "processed"


def test_rest_routes_that_need_redis_answer_503_while_it_is_down(app, outage_system):
    """API.md: 503 when a dependency is down. Work sessions keep their tabs in Redis; with
    Redis gone they answered 500 internal_error."""
    from helpdesk.models import Customer, Ticket

    isolated, own, client = outage_system
    channel = factories.channel(app, "api")
    agent = factories.agent(app)
    with isolated.app_context():
        customer = Customer(name="Ana")
        db.session.add(customer)
        db.session.flush()
        ticket = Ticket(subject="Parcel", customer_id=customer.id, channel_id=channel.id)
        db.session.add(ticket)
        db.session.commit()
        ticket_id = ticket.id
    as_agent = client.as_(agent)
    assert as_agent.get(f"/api/v1/tickets/{ticket_id}").status_code == 200  # token cached
    own.stop()
    answer = as_agent.post(f"/api/v1/tickets/{ticket_id}/work/start")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "unavailable"
    assert "Redis" in answer.json()["error"]["message"]
    assert answer.headers["Retry-After"]


def test_logins_answer_503_while_redis_is_down_instead_of_going_unlimited(app, outage_system):
    """Login rate limits live in Redis: without it a password could be guessed at full
    speed, so logins wait for Redis (503, retry) while tokens already issued keep working."""
    isolated, own, client = outage_system
    agent = factories.agent(app)
    credentials = {"email": agent.email, "password": "correct horse"}
    assert client.post("/api/v1/auth/login", json=credentials).status_code == 200
    own.stop()
    for wrong in ({**credentials, "password": "guess"}, credentials):
        answer = client.post("/api/v1/auth/login", json=wrong)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
        assert answer.headers["Retry-After"]
    assert client.as_(agent).get("/api/v1/auth/me").status_code == 200
    own.start()
    assert client.post("/api/v1/auth/login", json=credentials).status_code == 200
