"""tokens made by login expire

Revision ID: 0023
Revises: 0022

`api_tokens.expires_at`: set for tokens made by `POST /auth/login`
(HELPDESK_LOGIN_TOKEN_HOURS), null for the CLI's (integrations) and for every token made
before this revision (they keep working until revoked). Indexed, while unrevoked, for the
sweeper, which revokes expired tokens so that their sockets close. Downgrading revokes every
token that would expire (the older code would keep them forever).
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import helpdesk.models.base

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', helpdesk.models.base.UTCDateTime(),
                                   nullable=True))
        batch.create_index('ix_api_tokens_expires_at', ['expires_at'],
                           postgresql_where=sa.text('revoked_at IS NULL'),
                           sqlite_where=sa.text('revoked_at IS NULL'))


def downgrade():
    tokens = sa.table('api_tokens', sa.column('expires_at', helpdesk.models.base.UTCDateTime()),
                      sa.column('revoked_at', helpdesk.models.base.UTCDateTime()))
    op.execute(tokens.update().where(tokens.c.expires_at.isnot(None),
                                     tokens.c.revoked_at.is_(None))
               .values(revoked_at=datetime.now(UTC)))
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_index('ix_api_tokens_expires_at')
        batch.drop_column('expires_at')
