"""metrics: per-cycle ticket facts, teams, and the indexes the metric queries need

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

import helpdesk.models.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

UNSOLVED = "status IN ('new', 'open', 'pending')"
AUTO_CLOSED = "status = 'closed' AND solved_at IS NULL"


def _where(clause):
    return {"postgresql_where": sa.text(clause), "sqlite_where": sa.text(clause)}


def upgrade():
    op.create_table(
        'teams',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('created_at', helpdesk.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
        sa.UniqueConstraint('name', name=op.f('uq_teams_name')))
    if op.get_bind().dialect.name == 'sqlite':
        # ADD COLUMN with REFERENCES needs no table copy (a copy would trip agents' children).
        op.execute('ALTER TABLE agents ADD COLUMN team_id INTEGER '
                   'CONSTRAINT fk_agents_team_id_teams REFERENCES teams (id)')
    else:
        with op.batch_alter_table('agents', schema=None) as batch_op:
            batch_op.add_column(sa.Column('team_id', sa.Integer(), nullable=True))
            batch_op.create_foreign_key(op.f('fk_agents_team_id_teams'), 'teams',
                                        ['team_id'], ['id'])
    op.create_table(
        'ticket_facts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('cycle', sa.Integer(), nullable=False),
        sa.Column('started_at', helpdesk.models.base.UTCDateTime(), nullable=False),
        sa.Column('solved_at', helpdesk.models.base.UTCDateTime(), nullable=False),
        sa.Column('reopened_at', helpdesk.models.base.UTCDateTime(), nullable=True),
        sa.Column('reopened', sa.Boolean(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('assignee_id', sa.Integer(), nullable=True),
        sa.Column('contact_reason', sa.String(length=200), nullable=True),
        sa.Column('contact_reason_suggested', sa.Boolean(), nullable=False),
        sa.Column('first_response_at', helpdesk.models.base.UTCDateTime(), nullable=True),
        sa.Column('first_response_seconds', sa.Float(), nullable=True),
        sa.Column('frt_counted', sa.Boolean(), nullable=False),
        sa.Column('resolution_seconds', sa.Float(), nullable=False),
        sa.Column('pending_seconds', sa.Float(), nullable=False),
        sa.Column('handle_seconds', sa.Float(), nullable=False),
        sa.Column('max_level', sa.Integer(), nullable=False),
        sa.Column('public_replies', sa.Integer(), nullable=False),
        sa.Column('sla_policy_id', sa.Integer(), nullable=True),
        sa.Column('sla_met', sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                                name=op.f('fk_ticket_facts_ticket_id_tickets')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_facts')),
        sa.UniqueConstraint('ticket_id', 'cycle', name=op.f('uq_ticket_facts_ticket_id')))
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_facts_solved_at', ['solved_at'], unique=False)
        batch_op.create_index('ix_ticket_facts_reopened_at', ['reopened_at'], unique=False,
                              **_where('reopened_at IS NOT NULL'))
        batch_op.create_index('ix_ticket_facts_first_response_at', ['first_response_at'],
                              unique=False, **_where('frt_counted'))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_tickets_unsolved', ['first_response_at'], unique=False,
                              **_where(UNSOLVED))
        batch_op.create_index('ix_tickets_auto_closed', ['created_at'], unique=False,
                              **_where(AUTO_CLOSED))


def downgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_auto_closed')
        batch_op.drop_index('ix_tickets_unsolved')
        batch_op.drop_index('ix_tickets_created_at')
    with op.batch_alter_table('ticket_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_facts_first_response_at')
        batch_op.drop_index('ix_ticket_facts_reopened_at')
        batch_op.drop_index('ix_ticket_facts_solved_at')
    op.drop_table('ticket_facts')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE agents DROP COLUMN team_id')
    else:
        with op.batch_alter_table('agents', schema=None) as batch_op:
            batch_op.drop_constraint(op.f('fk_agents_team_id_teams'), type_='foreignkey')
            batch_op.drop_column('team_id')
    op.drop_table('teams')
