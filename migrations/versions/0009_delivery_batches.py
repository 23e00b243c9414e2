"""delivery batches: the deliveries waiting for their first processing, oldest first

Revision ID: 0009
Revises: 0007

Batch jobs claim `received` deliveries never tried (`attempts = 0`) in id order; a partial
index holds exactly those, so a claim reads the head of a small index whatever the size of
the table.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None

WAITING = "status = 'received' AND attempts = 0"


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_waiting', ['id'], unique=False,
                              postgresql_where=sa.text(WAITING), sqlite_where=sa.text(WAITING))


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_waiting')
