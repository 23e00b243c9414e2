"""closing solved tickets after the reopen window: an index on solved tickets' solve time

Revision ID: 0015
Revises: 0014

The sweeper closes solved tickets whose reopen window has passed (DESIGN.md: `solved` →
`closed`). It finds them through a partial index that holds only the solved tickets.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_tickets_solved_at', 'tickets', ['solved_at'],
                    postgresql_where=sa.text("status = 'solved'"),
                    sqlite_where=sa.text("status = 'solved'"))


def downgrade():
    op.drop_index('ix_tickets_solved_at', table_name='tickets')
