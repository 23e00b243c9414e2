"""urgency corrections: hand-set priorities with what the scorer saw, and the sender's flag

Revision ID: 0011
Revises: 0008 (0008 is the head even though 0009 sorts after it)

`urgency_corrections` keeps one row per priority a person set by hand on a ticket: the
urgency score and reasons at that moment, the features the scorer extracted (so weights can
be re-tuned without the messages) and the priority chosen. `messages.sender_priority` is
the sender's own flag (email Priority/Importance/X-Priority headers, the api format's
`priority`), an urgency factor.
"""
import sqlalchemy as sa
from alembic import op

import helpdesk.models.base

revision = '0011'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender_priority', sa.String(length=10), nullable=True))

    op.create_table(
        'urgency_corrections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('score', sa.Integer(), nullable=False),
        sa.Column('scored_priority', sa.String(length=10), nullable=False),
        sa.Column('previous_priority', sa.String(length=10), nullable=False),
        sa.Column('chosen_priority', sa.String(length=10), nullable=False),
        sa.Column('reasons', sa.JSON(), nullable=False),
        sa.Column('features', sa.JSON(), nullable=False),
        sa.Column('created_at', helpdesk.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'],
                                name=op.f('fk_urgency_corrections_agent_id_agents')),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                                name=op.f('fk_urgency_corrections_ticket_id_tickets')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_urgency_corrections')),
    )
    with op.batch_alter_table('urgency_corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_urgency_corrections_ticket_id'), ['ticket_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_urgency_corrections_created_at'), ['created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('urgency_corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_urgency_corrections_created_at'))
        batch_op.drop_index(batch_op.f('ix_urgency_corrections_ticket_id'))
    op.drop_table('urgency_corrections')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('sender_priority')
