"""the address or number an inbound message came from

Revision ID: 0019
Revises: 0018

A reply goes to the identity the customer wrote from, on the ticket's channel: a customer
with two addresses (two of their own, or two customers merged into one) is answered where
they wrote, not at their oldest address. Older messages have none: their replies go, as
before, to the customer's verified (else oldest) identity of the channel's kind.
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('messages', sa.Column('sender', sa.String(length=320), nullable=True))


def downgrade():
    with op.batch_alter_table('messages') as batch:  # (SQLite before 3.35 drops no column)
        batch.drop_column('sender')
