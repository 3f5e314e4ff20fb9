"""the exporter history the risk score uses, as running aggregates kept at ingest

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:45:00

Verification read an exporter's latest 50 shipments and parsed their JSON on every call;
now it reads one row per exporter (and one per route), kept by
`ledger.store.aggregates.add_to_aggregates` as rows are inserted. The upgrade fills the
tables from the shipments already stored, in row order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SHIPMENT = 6  # ledger.kinds.Kind.SHIPMENT, fixed here as the migration saw it


def upgrade() -> None:
    op.create_table(
        "exporter_history",
        sa.Column("attester", sa.String(length=42), nullable=False),
        sa.Column("shipments", sa.BigInteger(), nullable=False),
        sa.Column("recent_quantities", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("attester"),
    )
    op.create_table(
        "exporter_routes",
        sa.Column("attester", sa.String(length=42), nullable=False),
        sa.Column("destination", sa.String(length=8), nullable=False),
        sa.Column("shipments", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("attester", "destination"),
    )
    from ledger.store.aggregates import add_to_aggregates

    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, uid, kind, attester, disclosed FROM attestations "
                "WHERE kind = :kind AND id > :last ORDER BY id LIMIT 5000"
            ),
            {"kind": SHIPMENT, "last": last},
        ).all()
        if not rows:
            break
        add_to_aggregates(bind, [dict(r._mapping) for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("exporter_routes")
    op.drop_table("exporter_history")
