"""records a later batch anchors again, counted under that batch too

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 16:30:00

An anchorer may anchor a UID that an earlier batch already anchored: the contract sees
only a root and a count, so it cannot refuse. A record row points at one batch, so the
store could hold only one of the two memberships, and the other batch stayed short of
its on-chain count for ever. This table holds the second (and any further) membership.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_extra_members",
        sa.Column(
            "batch_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("batches.id"),
            nullable=False,
        ),
        sa.Column("uid", sa.String(length=66), sa.ForeignKey("attestations.uid"), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "uid"),
    )


def downgrade() -> None:
    op.drop_table("batch_extra_members")
