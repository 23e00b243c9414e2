"""room for every QueueResult Twilio sends

Revision ID: 0022
Revises: 0021

`redirected-from-bridged` (an answered call) and `bridging-in-process` are longer than the
20 characters `calls.queue_result` held: PostgreSQL refused the row, and the call's outcome,
wait and first response were lost with its delivery. Downgrading cuts longer values to 20.
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('calls') as batch:
        batch.alter_column('queue_result', type_=sa.String(length=40),
                           existing_type=sa.String(length=20), existing_nullable=True)


def downgrade():
    op.execute("UPDATE calls SET queue_result = substr(queue_result, 1, 20) "
               "WHERE length(queue_result) > 20")
    with op.batch_alter_table('calls') as batch:
        batch.alter_column('queue_result', type_=sa.String(length=20),
                           existing_type=sa.String(length=40), existing_nullable=True)
