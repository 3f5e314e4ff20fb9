"""stored batch trees; exporter history index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_trees",
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"]),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_index("ix_attestations_exporter_history", "attestations", ["attester", "kind", "issued_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_attestations_exporter_history", table_name="attestations")
    op.drop_table("batch_trees")
