"""`queue.updated` is counted in a timer thread: a failure there (the database gone, its
pooled connection killed) is logged, never raised out of the thread, and the next change
counts again."""

from __future__ import annotations

import logging


def test_a_count_that_fails_is_logged_and_the_throttle_keeps_working(tmp_path, redis_url,
                                                                      caplog):
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.services.routing.queue_updates import QueueStatsThrottle

    # A database without the tables: counting the queue fails as an outage would.
    broken = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}",
                         "REDIS_URL": redis_url, "DATA_DIR": str(tmp_path)},
                        socket_server=False)
    throttle = QueueStatsThrottle(broken)
    throttle.pending = True
    with caplog.at_level(logging.WARNING, "helpdesk.services.routing.queue_updates"):
        throttle._fire()  # raised out of the timer thread before
    assert "queue.updated not sent" in caplog.text
    assert not throttle.running and not throttle.pending
    with broken.app_context():
        db.engine.dispose()
