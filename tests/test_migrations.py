"""The store's schema: the Alembic migrations build exactly what the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ledger.store.db import make_engine, migrate
from ledger.store.models import Base


def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_connections_plan_without_parallel_workers_or_jit(database_url: str) -> None:
    """A verification's few-row lookups must not wait for parallel workers to start or for
    JIT compilation (the planner chose both at 1,000,000 records: `ledger.store.db.make_engine`)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW max_parallel_workers_per_gather")).scalar() == "0"
            assert conn.execute(text("SHOW jit")).scalar() == "off"
    finally:
        engine.dispose()
