"""metrics speed: resolution times in index order, for exact percentiles without a sort

Revision ID: 0007
Revises: 0006

On PostgreSQL the indexes carry `solved_at` (INCLUDE), so a whole period's resolution times
come out of an index-only scan already in order (overall, per agent, per channel).
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_ticket_facts_resolution_order': ['resolution_seconds'],
    'ix_ticket_facts_agent_resolution_order': ['assignee_id', 'resolution_seconds'],
    'ix_ticket_facts_channel_resolution_order': ['channel_id', 'resolution_seconds'],
}


def upgrade():
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False,
                                  postgresql_include=['solved_at'])


def downgrade():
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        for name in reversed(INDEXES):
            batch_op.drop_index(name)
