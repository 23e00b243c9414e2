"""security: delivery claims (quarantine of deliveries that kill their worker)

Revision ID: 0012
Revises: 0008

`deliveries.claims` counts the runs that started processing a delivery, committed before
each run begins; a delivery claimed HELPDESK_DELIVERY_MAX_CLAIMS times without finishing is
quarantined as `failed` ("worker died while processing").
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('claims')
