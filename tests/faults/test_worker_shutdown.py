"""`helpdesk worker` stops within a few seconds of SIGTERM, mid-backlog, and hands back what
it had not started: nothing is lost, nothing is processed twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, insert, select

from helpdesk.extensions import db
from helpdesk.models import Delivery, Message
from helpdesk.services.ingest import deliveries
from tests.support import factories

BACKLOG = 1500


def _statuses(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(Delivery.status, func.count())
                                  .group_by(Delivery.status)).all()
        db.session.rollback()
        return dict(rows)


def test_sigterm_mid_backlog_exits_quickly_and_loses_nothing(app, drain, redis_url,
                                                             database_url):
    channel = factories.channel(app, "api")
    with app.app_context():
        db.session.execute(insert(Delivery), [{
            "channel_id": channel.id, "provider": "api", "dedupe_key": f"e{n}",
            "url": "http://localhost/", "content_type": "application/json", "headers": {},
            "body": json.dumps({"event_id": f"e{n}", "type": "message",
                                "customer": {"email": f"c{n % 300}@example.com"},
                                "message": {"id": f"m{n}", "text": "hello"}}).encode()}
            for n in range(BACKLOG)])
        db.session.commit()
        deliveries.signal_batch()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "HELPDESK_DATA_DIR": app.config["DATA_DIR"]}
    worker = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "worker", "ingest",
                               "--no-scheduler"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _statuses(app).get("processed", 0) == 0:
            assert time.monotonic() < deadline, "the worker processed nothing"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        worker.wait(30)
        took = time.monotonic() - asked
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert took < 3, f"the worker took {took:.1f} s to stop"
    assert worker.returncode == 0
    left = _statuses(app)
    assert set(left) <= {"processed", "received"} and sum(left.values()) == BACKLOG
    drain("ingest")
    assert _statuses(app) == {"processed": BACKLOG}
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == \
            BACKLOG
