"""when our reply was handed to its provider

Revision ID: 0021
Revises: 0020

A Messenger or Instagram receipt says "read (or delivered) up to this time": it moves the
replies sent by then. That moment was read from `updated_at`, which every later status
change moves too (a `delivered` receipt processed after the customer read the reply hid it
from the `read` receipt that followed). Replies sent before this column have none: their
`updated_at` stands in, as before.
"""
import sqlalchemy as sa
from alembic import op

import helpdesk.models.base

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('messages', sa.Column('sent_at', helpdesk.models.base.UTCDateTime(),
                                        nullable=True))


def downgrade():
    with op.batch_alter_table('messages') as batch:  # (SQLite before 3.35 drops no column)
        batch.drop_column('sent_at')
