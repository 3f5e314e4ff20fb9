"""EPCIS event keys indexed: a repeated import is an index lookup, not a scan of JSON

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:30:00
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

KEY_FIELDS = ("epcisEventKey", "epcisEventHash")  # as ledger.epcis.keys reads them


def upgrade() -> None:
    op.create_table(
        "epcis_events",
        sa.Column("uid", sa.String(length=66), sa.ForeignKey("attestations.uid"), nullable=False),
        sa.Column("key_hash", sa.String(length=66), nullable=False),
        sa.Column("attester", sa.String(length=42), nullable=False),
        sa.PrimaryKeyConstraint("uid", "key_hash"),
    )
    op.create_index("ix_epcis_events_key_attester", "epcis_events", ["key_hash", "attester"], unique=False)
    # Backfill from what is stored (the keys are disclosed JSON fields).
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT uid, attester, disclosed FROM attestations WHERE disclosed LIKE '%epcisEventKey%'")
    )
    out = []
    for uid, attester, disclosed in rows:
        fields = json.loads(disclosed)
        keys = set()
        for name in KEY_FIELDS:
            item = fields.get(name)
            value = item.get("value") if isinstance(item, dict) else None
            if isinstance(value, str):
                keys.add(value)
        out += [
            {"uid": uid, "key_hash": "0x" + hashlib.sha256(k.encode()).hexdigest(), "attester": attester.lower()}
            for k in sorted(keys)
        ]
    if out:
        table = sa.table("epcis_events", sa.column("uid"), sa.column("key_hash"), sa.column("attester"))
        op.bulk_insert(table, out)


def downgrade() -> None:
    op.drop_index("ix_epcis_events_key_attester", table_name="epcis_events")
    op.drop_table("epcis_events")
