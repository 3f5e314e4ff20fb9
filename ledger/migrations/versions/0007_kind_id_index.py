"""records by kind in row order: one index on (kind, id); references by (ref, kind) only

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:20:00

The node's running views read "records of kind K stored since row N" (productions and
licences for the licence caps, revocations). SQLite's index on `kind` already ends with
the row id; PostgreSQL's does not, so there that read combined the whole kind's entries
with the id range (a cost growing with the ledger). An index on (kind, id) makes it an
index range over the new rows on both, and serves every read by kind alone as well.

The index on attestation_refs.ref alone goes: (ref, kind) serves every read by ref, and
with both present PostgreSQL read "what of these kinds refers to this licence" through
the ref-only index, visiting every reference to the licence (every production under it)
and filtering the kinds afterwards (EXPLAIN: scripts/bench_store.py --explain).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_attestations_kind_id", "attestations", ["kind", "id"], unique=False)
    op.drop_index("ix_attestations_kind", table_name="attestations")
    op.drop_index("ix_attestation_refs_ref", table_name="attestation_refs")


def downgrade() -> None:
    op.create_index("ix_attestation_refs_ref", "attestation_refs", ["ref"], unique=False)
    op.create_index("ix_attestations_kind", "attestations", ["kind"], unique=False)
    op.drop_index("ix_attestations_kind_id", table_name="attestations")
