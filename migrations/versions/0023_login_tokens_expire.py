"""tokens made by login expire

Revision ID: 0023
Revises: 0022

`api_tokens.expires_at`: set for tokens made by `POST /auth/login`
(HELPDESK_LOGIN_TOKEN_HOURS), null for the CLI's (integrations) and for every token made
before this revision (they keep working until revoked). Indexed for the sweeper, which
revokes expired tokens so that their sockets close.
"""
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
        batch.create_index('ix_api_tokens_expires_at', ['expires_at'])


def downgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_index('ix_api_tokens_expires_at')
        batch.drop_column('expires_at')
