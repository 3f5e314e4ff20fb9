"""Shared fixtures: a real anvil chain, fresh deployments, real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from ledger.chain.accounts import dev_account
from ledger.chain.anvil import AnvilNode, start_anvil
from ledger.chain.client import Deployment, connect
from ledger.chain.deploy import deploy

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def anvil() -> Iterator[AnvilNode]:
    """A fresh anvil node per test (mines a block per transaction). Per test, because
    snapshots, reverts and block-clock drift in one test must not leak into another."""
    node = start_anvil(state_file=None)
    yield node
    node.stop()


@pytest.fixture
def w3(anvil: AnvilNode) -> Web3:
    return connect(anvil.rpc_url)


@pytest.fixture
def deployment(w3: Web3) -> Deployment:
    """A fresh registry + ledger, registrar dev account 0, anchorer dev account 1."""
    return Deployment(w3, deploy(w3, dev_account(0), dev_account(1).address))


# --------------------------------------------------------------------------- storage

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database created and dropped here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    import uuid

    import psycopg

    name = f"pl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------ the ledger

ACTORS = {
    "registrar": 0,
    "anchorer": 1,
    "rights_holder": 2,
    "maker": 3,
    "exporter": 4,
    "carrier": 5,
    "customs": 6,
    "outsider": 7,
    "importer": 8,
}


@pytest.fixture
def ledger_env(deployment: Deployment, database_url: str, tmp_path: Path) -> Iterator[object]:
    """A `Ledger` on a fresh deployment and database, with accredited participants."""
    from ledger.chain.client import call_and_send
    from ledger.chain.deploy import FOREVER
    from ledger.config import Settings
    from ledger.core import Ledger
    from ledger.roles import Role

    roles = {
        "rights_holder": Role.RIGHTS_HOLDER,
        "maker": Role.MANUFACTURER,
        "exporter": Role.EXPORTER,
        "carrier": Role.CARRIER,
        "customs": Role.CUSTOMS,
        "importer": Role.IMPORTER,
    }
    registry = deployment.registry
    for name, role in roles.items():
        account = dev_account(ACTORS[name])
        call_and_send(
            deployment.w3,
            dev_account(0),
            registry.functions.admit(account.address, Web3.keccak(text=name), int(role), 0, FOREVER),
        )
    settings = Settings(
        home=tmp_path,
        database_url=database_url,
        rpc_url=deployment.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        confirmations=1,
        batch_max_size=64,
        batch_max_age_seconds=0.0,
    )
    ledger = Ledger.open(settings, manifest=deployment.manifest)
    yield ledger
    ledger.close()
