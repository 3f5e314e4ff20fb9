"""Migration 0007 (records by kind in row order) upgrades a 0006 store and downgrades back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from ledger.store.db import alembic_config, make_engine


def _indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {str(i["name"]) for i in inspect(engine).get_indexes("attestations")}
    finally:
        engine.dispose()


def test_0007_replaces_the_kind_index_with_kind_and_id_and_back(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0006")
        assert "ix_attestations_kind" in _indexes(database_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")
        after = _indexes(database_url)
        assert "ix_attestations_kind_id" in after and "ix_attestations_kind" not in after
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        back = _indexes(database_url)
        assert "ix_attestations_kind" in back and "ix_attestations_kind_id" not in back
    finally:
        engine.dispose()
