"""resource page index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:10:00

An index on resource_heads (account_id, kind, created_on, id), the order of list pages: a page of
the newest versions reads its heads in order and stops after the page instead of sorting them all.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resource_heads_page", "resource_heads", ["account_id", "kind", "created_on", "id"])


def downgrade() -> None:
    op.drop_index("ix_resource_heads_page", table_name="resource_heads")
