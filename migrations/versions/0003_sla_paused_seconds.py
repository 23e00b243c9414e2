"""ticket SLA pause accounting; a partial index in queue order

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import helpdesk.models.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

QUEUED = "assignee_id IS NULL AND status IN ('new', 'open')"
NO_DEADLINE = "9999-12-31 00:00:00"


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sla_paused_seconds', sa.Float(), nullable=False,
                                      server_default='0'))
        batch_op.drop_index('ix_tickets_queue')
    # NULL deadlines become a far-future sentinel so the index sorts like the queue.
    op.execute(f"UPDATE tickets SET sla_due_at = '{NO_DEADLINE}' WHERE sla_due_at IS NULL")
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.alter_column('sla_due_at', existing_type=helpdesk.models.base.UTCDateTime(),
                              nullable=False)
    op.create_index('ix_tickets_queue_order', 'tickets',
                    [sa.text('priority_rank DESC'), 'sla_due_at', 'created_at', 'id'],
                    postgresql_where=sa.text(QUEUED), sqlite_where=sa.text(QUEUED))
    op.create_index('ix_tickets_assignee_status', 'tickets', ['assignee_id', 'status'])


def downgrade():
    op.drop_index('ix_tickets_assignee_status', table_name='tickets')
    op.drop_index('ix_tickets_queue_order', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.alter_column('sla_due_at', existing_type=helpdesk.models.base.UTCDateTime(),
                              nullable=True)
    op.execute(f"UPDATE tickets SET sla_due_at = NULL WHERE sla_due_at >= '{NO_DEADLINE}'")
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_queue', ['assignee_id', 'status', 'priority_rank',
                                                   'sla_due_at', 'created_at'], unique=False)
        batch_op.drop_column('sla_paused_seconds')
