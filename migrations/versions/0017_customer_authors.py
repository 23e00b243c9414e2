"""customers' messages by their author: an index for export and erasure

Revision ID: 0017
Revises: 0016

Export and erasure take a person's messages on other customers' tickets too (a reply into
someone else's mail thread joins that ticket). They find them by author through this
partial index, which holds customers' messages only, instead of reading every message.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_messages_customer_author', 'messages', ['author_id'],
                    postgresql_where=sa.text("author_type = 'customer'"),
                    sqlite_where=sa.text("author_type = 'customer'"))


def downgrade():
    op.drop_index('ix_messages_customer_author', table_name='messages')
