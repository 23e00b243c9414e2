"""security: delivery claims; channel secrets encrypted at rest

Revision ID: 0012
Revises: 0011

`deliveries.claims` counts the runs that started processing a delivery, committed before
each run begins; a delivery claimed HELPDESK_DELIVERY_MAX_CLAIMS times without finishing is
quarantined as `failed` ("worker died while processing").

`channels.secrets` becomes a Fernet token (a JSON string) under a key derived from
HELPDESK_SECRET_KEY by HKDF-SHA256 (models/encrypted.py holds the living definition); the
upgrade encrypts the rows stored in plain text, the downgrade decrypts them.
"""
import base64
import json

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


CHANNELS = sa.table('channels', sa.column('id', sa.Integer), sa.column('secrets', sa.JSON))


def _fernet(secret_key):
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"helpdesk",
                   info=b"channel secrets v1").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys():
    config = current_app.config
    return MultiFernet([_fernet(key) for key in
                        [config["SECRET_KEY"], *(config.get("OLD_SECRET_KEYS") or [])]])


def _rewrite(change):
    connection = op.get_bind()
    for channel_id, secrets in connection.execute(sa.select(CHANNELS.c.id, CHANNELS.c.secrets)):
        changed = change(secrets)
        if changed is not None:
            connection.execute(CHANNELS.update().where(CHANNELS.c.id == channel_id)
                               .values(secrets=changed))


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.Integer(), nullable=False,
                                      server_default='0'))
    keys = _keys()
    _rewrite(lambda secrets: keys.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()
             if isinstance(secrets, dict) else None)


def downgrade():
    keys = _keys()
    _rewrite(lambda secrets: json.loads(keys.decrypt(secrets.encode()))
             if isinstance(secrets, str) else None)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('claims')
