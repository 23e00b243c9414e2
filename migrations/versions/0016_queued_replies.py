"""queued replies: an index on the time a reply was queued

Revision ID: 0016
Revises: 0015

The sweeper looks every few seconds for replies still `queued` past their whole retry
schedule (their job was lost with Redis). It went through the whole messages table; this
partial index holds only the queued ones, by `updated_at`: when the reply was queued, or
queued again by `resend` (a resent reply's `created_at` is old, so the sweep would have
handed it a second job at once, beside its own).
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_messages_queued', 'messages', ['updated_at'],
                    postgresql_where=sa.text("delivery_status = 'queued'"),
                    sqlite_where=sa.text("delivery_status = 'queued'"))


def downgrade():
    op.drop_index('ix_messages_queued', table_name='messages')
