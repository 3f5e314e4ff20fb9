"""watch-list entries indexed by goods class; attestations indexed by kind

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WATCHLIST = 9  # ledger.kinds.Kind.WATCHLIST (a migration must not follow later code changes)


def upgrade() -> None:
    op.create_table(
        "watchlist_classes",
        sa.Column("uid", sa.String(length=66), nullable=False),
        sa.Column("goods_class", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(["uid"], ["attestations.uid"]),
        sa.PrimaryKeyConstraint("uid", "goods_class"),
    )
    op.create_index(op.f("ix_watchlist_classes_goods_class"), "watchlist_classes", ["goods_class"], unique=False)
    op.create_index(op.f("ix_attestations_kind"), "attestations", ["kind"], unique=False)
    # Existing entries: their goods classes from the disclosed fields. (An entry whose
    # goodsClasses were stored confidential cannot be read here without the data key;
    # `provenance reindex-watchlist` — not yet written — would be the way.)
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT uid, disclosed FROM attestations WHERE kind = :kind"), {"kind": WATCHLIST}
    ).all()
    table = sa.table("watchlist_classes", sa.column("uid", sa.String), sa.column("goods_class", sa.String))
    values = []
    for uid, disclosed in rows:
        classes = json.loads(disclosed).get("goodsClasses", {}).get("value", [])
        values += [{"uid": uid, "goods_class": c} for c in sorted(set(classes)) if isinstance(c, str)]
    if values:
        op.bulk_insert(table, values)


def downgrade() -> None:
    op.drop_index(op.f("ix_attestations_kind"), table_name="attestations")
    op.drop_index(op.f("ix_watchlist_classes_goods_class"), table_name="watchlist_classes")
    op.drop_table("watchlist_classes")
