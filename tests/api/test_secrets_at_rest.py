"""Channel secrets are encrypted at rest and can be re-encrypted under a new key."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import text

from helpdesk.extensions import db
from tests.support import factories
from tests.support.live import api_message


def _stored(app, channel_id: int) -> str:
    with app.app_context():
        return db.session.execute(text("SELECT secrets FROM channels WHERE id = :id"),
                                  {"id": channel_id}).scalar_one()


def test_secrets_are_stored_encrypted_and_still_verify_webhooks(app, api, drain):
    channel = factories.channel(app, "api", secrets={"signing_secret": "PLAIN-SIGNING-KEY"})
    raw = _stored(app, channel.id)
    raw_text = raw if isinstance(raw, str) else json.dumps(raw)
    assert "PLAIN-SIGNING-KEY" not in raw_text and "signing_secret" not in raw_text
    assert api.post_api_webhook(channel, api_message(), secret="PLAIN-SIGNING-KEY").ok
    wrong = api.post_api_webhook(channel, api_message(event_id="e2"), secret="nope")
    assert wrong.status_code == 401


def test_rotation_re_encrypts_under_the_new_key(app, api, monkeypatch):
    from helpdesk.cli import main
    from helpdesk.models import Channel

    channel = factories.channel(app, "api", secrets={"signing_secret": "ROTATE-ME"})
    before = _stored(app, channel.id)
    monkeypatch.setitem(app.config, "SECRET_KEY", "a-brand-new-key")
    monkeypatch.setitem(app.config, "OLD_SECRET_KEYS", ["test"])
    result = app.test_cli_runner().invoke(main, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    assert _stored(app, channel.id) != before
    monkeypatch.setitem(app.config, "OLD_SECRET_KEYS", [])  # the old key is gone now
    with app.app_context():
        assert db.session.get(Channel, channel.id).secrets == {"signing_secret": "ROTATE-ME"}
    monkeypatch.setitem(app.config, "SECRET_KEY", "test")
    with app.app_context():
        refused = app.test_cli_runner().invoke(main, ["secrets", "rotate"])
    assert refused.exit_code != 0 and "cannot be decrypted" in refused.output


def test_the_migration_encrypts_plain_rows_and_its_downgrade_decrypts_them(database_url):
    import sqlalchemy as sa

    from tests.test_migrations import _helpdesk_db, _scratch_database

    url, drop = _scratch_database(database_url)
    channels = sa.table("channels", sa.column("id"), sa.column("name"), sa.column("kind"),
                        sa.column("provider"), sa.column("key"), sa.column("settings", sa.JSON),
                        sa.column("secrets", sa.JSON), sa.column("created_at"))
    engine = sa.create_engine(url)
    try:
        _helpdesk_db(url, "upgrade", "0008")  # the revision before this branch's
        with engine.begin() as conn:
            conn.execute(channels.insert().values(
                id=1, name="c", kind="api", provider="api", key="k1", settings={},
                secrets={"signing_secret": "OLD-PLAIN"}, created_at=datetime(2026, 1, 1)))
        _helpdesk_db(url, "upgrade")
        with engine.connect() as conn:
            stored = conn.execute(sa.select(channels.c.secrets)).scalar_one()
        assert isinstance(stored, str) and "OLD-PLAIN" not in stored
        _helpdesk_db(url, "downgrade", "0008")
        with engine.connect() as conn:
            assert conn.execute(sa.select(channels.c.secrets)).scalar_one() == {
                "signing_secret": "OLD-PLAIN"}
    finally:
        engine.dispose()
        drop()
