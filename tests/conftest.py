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


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """One anvil node for the session (mines a block per transaction)."""
    node = start_anvil(state_file=None)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def w3(anvil: AnvilNode) -> Web3:
    return connect(anvil.rpc_url)


@pytest.fixture
def deployment(w3: Web3) -> Deployment:
    """A fresh registry + ledger, registrar dev account 0, anchorer dev account 1."""
    return Deployment(w3, deploy(w3, dev_account(0), dev_account(1).address))
