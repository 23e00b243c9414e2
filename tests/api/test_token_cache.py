"""The per-process token cache (services/auth.py): a token's lookup is reused between
requests, but a revocation, a role change or a deactivation committed anywhere is honoured
from the very next request, and what the cache does not hold is read fresh."""

from __future__ import annotations

from sqlalchemy import event

from helpdesk.extensions import db
from helpdesk.services import auth
from tests.support.redis_server import app_on


def _token_queries(app):
    """Count the statements that read api_tokens while the block runs."""
    seen = []

    def listener(_conn, _cursor, statement, *_args):
        if "api_tokens" in statement:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    return seen, lambda: event.remove(engine, "before_cursor_execute", listener)


def test_a_known_token_is_not_looked_up_again(app, api, agent):
    me = api.as_(agent)
    for _ in range(2):  # the first request of a fresh Redis starts its epoch: nothing cached
        assert me.get("/api/v1/auth/me").status_code == 200  # then: looked up, cached
    seen, stop = _token_queries(app)
    try:
        for _ in range(3):
            assert me.get("/api/v1/tickets").status_code == 200
    finally:
        stop()
    assert seen == []


def test_a_cached_token_is_refused_from_the_request_after_its_revocation(app, api, agent):
    me = api.as_(agent)
    assert me.get("/api/v1/auth/me").status_code == 200
    assert me.get("/api/v1/auth/me").status_code == 200  # served from the cache
    with app.app_context():  # as another process would: only the database and Redis shared
        auth.logout(agent.token)
    assert me.get("/api/v1/auth/me").status_code == 401


def test_a_role_change_applies_to_the_next_request(app, api, supervisor):
    boss = api.as_(supervisor)
    assert boss.get("/api/v1/metrics/summary").status_code == 200
    assert boss.get("/api/v1/metrics/summary").status_code == 200
    with app.app_context():
        auth.update_agent(supervisor.id, {"role": "agent"})
    assert boss.get("/api/v1/metrics/summary").status_code == 403


def test_a_deactivated_agents_cached_token_is_refused(app, api, agent):
    me = api.as_(agent)
    for _ in range(2):
        assert me.get("/api/v1/tickets").status_code == 200
    with app.app_context():
        auth.update_agent(agent.id, {"active": False})
    assert me.get("/api/v1/tickets").status_code == 401


def test_what_the_cache_does_not_hold_is_read_fresh(app, api, agent):
    from sqlalchemy import text

    me = api.as_(agent)
    assert me.get("/api/v1/auth/me").json()["presence"] == "offline"
    with app.app_context():  # a change no flush sees (as the claim's SQL sets assignments)
        db.session.execute(text("UPDATE agents SET presence = 'away' WHERE id = :id"),
                           {"id": agent.id})
        db.session.commit()
    answer = me.get("/api/v1/auth/me")
    assert answer.status_code == 200
    assert answer.json()["presence"] == "away"


def test_an_epoch_lost_with_redis_data_never_matches_an_old_entry(app, api, agent):
    from sqlalchemy import text

    from helpdesk.queues import redis_connection

    me = api.as_(agent)
    assert me.get("/api/v1/tickets").status_code == 200
    assert me.get("/api/v1/tickets").status_code == 200  # cached under the current epoch
    with app.app_context():
        redis_connection().delete(auth.AUTH_EPOCH)  # Redis restarted without its data ...
        db.session.execute(text("UPDATE api_tokens SET revoked_at = created_at"))  # ... and
        db.session.commit()  # the revocation's increment was lost with it
    assert me.get("/api/v1/tickets").status_code == 401


def test_without_redis_every_request_asks_the_database(app, agent):
    with app.app_context():
        tokens = auth._token_cache()
        tokens.entries.clear()
        try:
            with app_on(app, "redis://127.0.0.1:1/0"):  # nothing listens there
                assert auth.agent_for_token(agent.token).id == agent.id
                assert tokens.entries == {}
        finally:
            db.session.rollback()


def test_a_token_read_from_the_database_leaves_no_transaction_open(app, agent):
    # The lookup ends its own transaction with COMMIT. Left open, the request's teardown
    # would end it with ROLLBACK, which psycopg 3 follows with DEALLOCATE ALL: the pooled
    # connection would plan the claim's statement again, ten times, after every lookup.
    with app.test_request_context():
        auth._token_cache().entries.clear()
        found = auth.authenticated(agent.token)
        assert found is not None and found.id == agent.id
        assert not db.session().in_transaction()
        assert auth.attach(found).email == agent.email  # still usable after the commit


def test_a_cached_token_is_refused_once_it_expires_by_the_wall_clock():
    """An entry keeps the token's own expiry: within the cache's 10 s, a login token past
    its expiry is not answered from the cache."""
    from datetime import timedelta

    from helpdesk.models.base import utcnow

    tokens = auth.TokenCache()
    tokens.put("soon", 7, {"id": 1}, utcnow() + timedelta(hours=1))
    tokens.put("gone", 7, {"id": 2}, utcnow() - timedelta(microseconds=1))
    tokens.put("never", 7, {"id": 3})
    assert tokens.get("soon", 7) == {"id": 1}
    assert tokens.get("gone", 7) is None
    assert tokens.get("never", 7) == {"id": 3}
