"""webhook delivery claims

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00

Adds who holds a delivery's lease (`claimed_by`, for fencing a worker whose lease expired) and the
last HTTP status a receiver answered with (for operators reading the outbox).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("last_status_code", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("last_status_code")
        batch_op.drop_column("claimed_by")
