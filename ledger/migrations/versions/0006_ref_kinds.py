"""references carry the referring record's kind, indexed with the reference

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 07:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attestation_refs") as batch:
        batch.add_column(sa.Column("kind", sa.SmallInteger(), nullable=True))
    op.execute(
        "UPDATE attestation_refs SET kind = "
        "(SELECT attestations.kind FROM attestations WHERE attestations.uid = attestation_refs.uid)"
    )
    op.create_index("ix_attestation_refs_ref_kind", "attestation_refs", ["ref", "kind"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_attestation_refs_ref_kind", table_name="attestation_refs")
    with op.batch_alter_table("attestation_refs") as batch:
        batch.drop_column("kind")
