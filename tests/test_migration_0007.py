"""Migration 0007 (records by kind in row order; references by (ref, kind) only) upgrades a
0006 store and downgrades back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from ledger.store.db import alembic_config, make_engine


def _indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {str(i["name"]) for table in ("attestations", "attestation_refs") for i in found.get_indexes(table)}
    finally:
        engine.dispose()


def test_0007_replaces_the_kind_and_ref_indexes_and_back(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0006")
        before = _indexes(database_url)
        assert "ix_attestations_kind" in before and "ix_attestation_refs_ref" in before
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")
        after = _indexes(database_url)
        assert "ix_attestations_kind_id" in after and "ix_attestations_kind" not in after
        assert "ix_attestation_refs_ref" not in after and "ix_attestation_refs_ref_kind" in after
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        back = _indexes(database_url)
        assert "ix_attestations_kind" in back and "ix_attestations_kind_id" not in back
        assert "ix_attestation_refs_ref" in back
    finally:
        engine.dispose()
