"""Engines, sessions and migrations for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from ..private import ensure_private

# Errors meaning "the database could not be reached or was busy", as opposed to a bug:
# the transaction did not commit, so the caller may retry safely.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


# Connections kept open per process. An API process runs its synchronous endpoints in a
# thread pool (40 threads): with SQLAlchemy's default of 5, concurrent requests beyond the
# fifth each opened a connection and closed it again (a helper's count: 97 new SQLite
# connections per 1,200 requests at 8 concurrent; each new one runs its PRAGMAs and
# starts with a cold page cache). PostgreSQL's default limit of 100 connections leaves
# room for a few such processes beside the worker and the mirror.
POOL_SIZE = 16


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`. SQLite gets WAL and full fsync: an acknowledged commit
    survives a process kill and a power cut; PostgreSQL keeps its durable defaults.
    Up to `POOL_SIZE` connections are kept open for reuse unless `kwargs` say otherwise."""
    kwargs.setdefault("pool_size", POOL_SIZE)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            # Private from the start: SQLite gives its -wal and -shm files the same mode.
            for file in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
                if file == Path(path) or file.exists():
                    ensure_private(file)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql"):
        # No parallel workers and no JIT compilation: this node's statements are index
        # lookups returning a few rows, but a reference to a licence is shared by
        # thousands of productions, so the planner's estimate for "what refers to these
        # records" runs to tens of thousands of rows (34,729; actual: none) and the
        # statement's cost past the JIT threshold. EXPLAIN ANALYZE of one verification at
        # 1,000,008 records (scripts/bench_store.py --explain): two parallel workers,
        # 100-160 ms to start; without them, JIT compilation 27.9 ms of a 28.3 ms
        # statement; the lookups themselves well under 1 ms. (p50 40 ms at 1,000,008
        # records, 6-7 ms at 100,004.)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("options", "-c max_parallel_workers_per_gather=0 -c jit=off")
        kwargs["connect_args"] = connect_args
    return create_engine(url, pool_pre_ping=True, **kwargs)


def without_transaction(engine: Engine) -> Engine:
    """`engine` for connections that only read and need no transaction around their
    statements: no BEGIN before the first statement and no ROLLBACK when the connection
    goes back to the pool (on PostgreSQL, two round trips each time a connection is used).
    What the statements read is the same: PostgreSQL's READ COMMITTED gives each statement
    a snapshot of its own, in a transaction or not, and SQLite's driver opens none for a
    SELECT. Shares `engine`'s pool."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


# The key of the advisory lock `lock_for_append` takes (any 64-bit number nothing else
# in the database locks on: "prov" in ASCII).
APPEND_LOCK_KEY = 0x70726F76


def lock_for_append(session: Session | Connection) -> None:
    """Call first in a transaction that will insert attestation rows: until it ends, no
    other such transaction can insert, so rows become visible in the order of their ids.

    Running views follow the store by row id (a licence's count reads the rows stored
    since the highest id it has read; so does the reference index's count). On
    PostgreSQL an id is taken from a sequence at INSERT, not at commit, so two
    unserialised transactions can commit out of id order, and a reader that has moved
    past the higher id never reads the lower one: a production would be left out of its
    licence's cap for the life of the process (tests/test_commit_order.py). A
    transaction-scoped advisory lock serialises appends; it is released at commit or
    rollback, after the rows are visible. SQLite allows one writer at a time already."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema of `engine`'s database to the latest migration."""
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def scratch_postgres_database(
    prefix: str, admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
) -> Iterator[str]:
    """A new, empty PostgreSQL database named `prefix` + a random suffix on the server of
    `admin_url` (a role allowed to create databases), as a SQLAlchemy URL; dropped when the
    block ends, however it ends. For tests and benchmarks, which must leave none behind."""
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
