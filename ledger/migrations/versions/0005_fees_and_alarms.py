"""batches keep the nonce and fees of their transaction; chain alarms

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("nonce", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_fee", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("tip", sa.BigInteger(), nullable=True))
    op.create_table(
        "chain_alarms",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("chain_alarms")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("tip")
        batch.drop_column("max_fee")
        batch.drop_column("nonce")
