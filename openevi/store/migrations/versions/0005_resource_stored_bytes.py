"""resource stored bytes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 03:00:00

Counts what each prompt, tool and config version stores (`resource_versions.stored_bytes`: its JSON
body and description) and the account's total (`accounts.resource_bytes`, bumped and lowered in the
transaction that writes or deletes a version), so the account's REST storage quota is one read.
Existing versions are counted once here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resource_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE resource_versions SET stored_bytes ="
        " LENGTH(CAST(body AS TEXT)) + COALESCE(LENGTH(version_description), 0)"
    )
    op.execute(
        "UPDATE accounts SET resource_bytes = COALESCE(("
        " SELECT SUM(v.stored_bytes) FROM resource_versions v WHERE v.account_id = accounts.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("resource_bytes")
    with op.batch_alter_table("resource_versions", schema=None) as batch_op:
        batch_op.drop_column("stored_bytes")
