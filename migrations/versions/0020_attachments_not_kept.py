"""attachments whose bytes are not kept: an index for the media sweep

Revision ID: 0020
Revises: 0019

WhatsApp and Telegram files are fetched after their message is stored; the worker's sweep
looks every pass for recent ones still waiting (their job lost with Redis). This partial
index holds only attachments without stored bytes, by creation time, so the sweep reads a
few rows instead of the whole table.
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

FILE_NOT_KEPT = "storage_path IS NULL"


def upgrade():
    op.create_index('ix_attachments_not_kept', 'attachments', ['created_at'],
                    postgresql_where=sa.text(FILE_NOT_KEPT),
                    sqlite_where=sa.text(FILE_NOT_KEPT))


def downgrade():
    op.drop_index('ix_attachments_not_kept', table_name='attachments')
