"""chat stored bytes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:40:00

Counts the bytes of text each chat's events store (`chats.stored_bytes`, bumped with
`event_count`), so a per-account storage quota is one indexed SUM instead of a scan of every event.
Existing chats are counted once here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE chats SET stored_bytes = COALESCE(("
        " SELECT SUM(COALESCE(LENGTH(e.message_text), 0) + COALESCE(LENGTH(e.emotion_features), 0)"
        " + COALESCE(LENGTH(e.metadata), 0)) FROM chat_events e WHERE e.chat_id = chats.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_column("stored_bytes")
