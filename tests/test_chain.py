"""The project runs its own local chain and deploys to any RPC URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from ledger.chain.accounts import KeyLoadError, dev_account, load_keystore, require_dev_chain, write_keystore
from ledger.chain.anvil import rpc_call, start_anvil
from ledger.chain.client import ChainRevert, ChainUnavailable, Deployment, call_and_send, connect
from ledger.chain.deploy import deploy
from ledger.chain.manifest import Manifest
from ledger.contracts import abi_hash
from ledger.roles import Role


def test_anvil_starts_on_a_free_port_and_stops_cleanly() -> None:
    node = start_anvil()
    assert rpc_call(node.rpc_url, "eth_chainId") == hex(31337)
    node.stop()
    assert node.process.poll() is not None
    with pytest.raises(ChainUnavailable):
        connect(node.rpc_url, timeout=1)


def test_chain_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    with start_anvil(state_file=state) as node:
        manifest = deploy(connect(node.rpc_url), dev_account(0), dev_account(1).address)
    assert state.exists()
    with start_anvil(state_file=state) as node:
        w3 = connect(node.rpc_url)
        Deployment(w3, manifest).check_chain()
        ledger = Deployment(w3, manifest).ledger
        assert ledger.functions.isAnchorer(dev_account(1).address).call() is True


def test_deploy_writes_a_manifest_whose_addresses_answer(deployment: Deployment, tmp_path: Path) -> None:
    m = deployment.manifest
    path = m.save(tmp_path / "deployment.json")
    loaded = Manifest.load(path)
    assert loaded == m
    assert m.chain_id == 31337
    assert m.abi_hash == abi_hash()
    assert m.deployment_block >= 1
    deployment.check_chain()
    registry, ledger = deployment.registry, deployment.ledger
    assert ledger.functions.registry().call() == Web3.to_checksum_address(m.registry)
    assert registry.functions.roleListener().call() == Web3.to_checksum_address(m.ledger)
    now = deployment.now()
    assert registry.functions.hasRoleAt(m.registrar, int(Role.REGISTRAR), now).call() is True
    assert registry.functions.hasRoleAt(m.anchorer, int(Role.ANCHORER), now).call() is True
    # The deployment block is the first block holding our contracts: nothing before it.
    assert deployment.w3.eth.get_code(Web3.to_checksum_address(m.registry), m.deployment_block - 1) == b""


def test_anchoring_reverts_are_reported_with_the_contracts_facts(deployment: Deployment) -> None:
    ledger = deployment.ledger
    anchorer = dev_account(1)
    call_and_send(deployment.w3, anchorer, ledger.functions.anchorBatch(0, b"\x01" * 32, b"\x00" * 32, 1))
    with pytest.raises(ChainRevert) as caught:
        call_and_send(deployment.w3, anchorer, ledger.functions.anchorBatch(1, b"\x02" * 32, b"\x09" * 32, 1))
    assert caught.value.error == "WrongPredecessor"
    assert caught.value.args_ == (1, "0x" + "01" * 32, "0x" + "09" * 32)
    with pytest.raises(ChainRevert) as caught:
        call_and_send(deployment.w3, dev_account(5), ledger.functions.anchorBatch(1, b"\x02" * 32, b"\x01" * 32, 1))
    assert caught.value.error == "NotAnchorer"


def test_manifest_for_another_chain_is_detected(deployment: Deployment) -> None:
    other = Manifest(**{**deployment.manifest.__dict__, "chain_id": 1})
    with pytest.raises(ChainUnavailable, match="manifest is for chain 1"):
        Deployment(deployment.w3, other).check_chain()


def test_well_known_dev_keys_are_refused_off_the_dev_chain() -> None:
    with start_anvil(chain_id=777) as node, pytest.raises(KeyLoadError, match="refused on chain 777"):
        require_dev_chain(connect(node.rpc_url))


def test_a_manifest_claiming_the_dev_chain_does_not_unlock_dev_keys(deployment: Deployment) -> None:
    """An operator points a node at chain 777 with a manifest that says 31337: the demo's
    well-known registrar key is still refused, because the chain connected is asked."""
    from types import SimpleNamespace

    from ledger.demo import admit_demo_participants

    with start_anvil(chain_id=777) as node:
        lying = Deployment(connect(node.rpc_url), deployment.manifest)
        assert lying.manifest.chain_id == 31337
        with pytest.raises(KeyLoadError, match="refused on chain 777"):
            admit_demo_participants(SimpleNamespace(deployment=lying))  # type: ignore[arg-type]


def test_keystores_round_trip_and_reject_a_wrong_password(tmp_path: Path) -> None:
    account = dev_account(3)
    path = write_keystore(account, tmp_path / "k.json", "correct horse", kdf_iterations=2)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keystore(path, "correct horse").address == account.address
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_keystore(path, "wrong")
    with pytest.raises(KeyLoadError, match="empty password"):
        write_keystore(account, tmp_path / "k2.json", "")


def test_local_secrets_are_private(ledger_env: object, tmp_path: Path) -> None:
    """Another local user must not read the data key or the demo credentials: both are
    created 0600, whichever database the ledger uses."""
    from ledger.private import write_private

    assert (tmp_path / "data.key").stat().st_mode & 0o777 == 0o600
    write_private(tmp_path / "demo.json", "{}")
    assert (tmp_path / "demo.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.sqlite_itself("the files of a SQLite database (and its WAL) in the home folder")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_sqlite_database_is_private(ledger_env: object, tmp_path: Path) -> None:
    """Another local user must not read the SQLite database (with its WAL): it is created
    0600; an older 0644 database is tightened."""
    from ledger.private import ensure_private
    from ledger.store.db import make_engine

    for name in ("ledger.db", "ledger.db-wal"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    old = tmp_path / "old.db"
    old.write_bytes(b"")
    old.chmod(0o644)
    make_engine(f"sqlite:///{old}").dispose()
    assert old.stat().st_mode & 0o777 == 0o600
    ensure_private(old)
    assert old.stat().st_mode & 0o777 == 0o600


def test_an_anchoring_worker_with_the_dev_key_refuses_to_anchor_on_another_chain(
    deployment: Deployment, database_url: str, tmp_path: Path
) -> None:
    """The worker can be made while its chain is down (it backs off), but every pass first
    asks the chain connected whether it is a development chain."""
    from ledger.config import Settings
    from ledger.core import Ledger

    with start_anvil(chain_id=777) as node:
        settings = Settings(home=tmp_path, rpc_url=node.rpc_url, database_url=database_url)
        ledger = Ledger.open(settings, manifest=deployment.manifest)
        try:
            worker = ledger.anchoring_worker()
            with pytest.raises(KeyLoadError, match="refused on chain 777"):
                worker.step()
        finally:
            ledger.close()
