"""where an email's sender asks replies to go

Revision ID: 0024
Revises: 0023

An email's Reply-To (one address other than its From) was parsed and dropped: the reply
went to the From. It is kept on the message; a reply to that sender goes there. Messages
stored before have none: their replies go to the From, as before.
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('messages', sa.Column('reply_to', sa.String(length=320), nullable=True))


def downgrade():
    with op.batch_alter_table('messages') as batch:  # (SQLite before 3.35 drops no column)
        batch.drop_column('reply_to')
