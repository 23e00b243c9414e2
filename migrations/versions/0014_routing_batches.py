"""routing in batches: a ticket's request to be (re)scored

Revision ID: 0014
Revises: 0012

`tickets.route_requested_at` is set in the transaction that changes what a ticket's urgency
depends on (a new customer message, an unassignment, an escalation) and cleared by the
routing batch that scores it. The batch claims the oldest requests first through a partial
index that holds only the tickets waiting to be scored.
"""
import sqlalchemy as sa
from alembic import op

import helpdesk.models.base

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route_requested_at', helpdesk.models.base.UTCDateTime(),
                                      nullable=True))
    op.create_index('ix_tickets_route_requested', 'tickets', ['route_requested_at', 'id'],
                    postgresql_where=sa.text('route_requested_at IS NOT NULL'),
                    sqlite_where=sa.text('route_requested_at IS NOT NULL'))


def downgrade():
    op.drop_index('ix_tickets_route_requested', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('route_requested_at')
