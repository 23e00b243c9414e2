"""call facts for outcomes; one-time webhook tokens

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dial_status', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('reached_us', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('call_duration', sa.Float(), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_deliveries_channel_id_replay_token',
                                          ['channel_id', 'replay_token'])


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_deliveries_channel_id_replay_token', type_='unique')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('call_duration')
        batch_op.drop_column('reached_us')
        batch_op.drop_column('dial_status')
