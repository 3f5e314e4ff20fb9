"""The end-to-end stories against a second, independent EVM implementation: Hardhat's
own node (`hardhat node`, chain id 31337, EDR), not anvil. Deploy, admit, sign, anchor,
verify by id and by bundle (at the node), replay; and the fee and stuck-transaction
stories, through the standard JSON-RPC plus Hardhat's own `hardhat_*` controls.
The system depends on Ethereum's JSON-RPC, not on one client's quirks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select
from web3 import Web3

from ledger.alarms import FEE_CEILING, active_alarms
from ledger.anchoring import SENT
from ledger.audit import replay, store_source
from ledger.chain.anvil import free_port
from ledger.chain.client import connect
from ledger.chain.fees import GWEI, FeePolicy
from ledger.core import Ledger
from ledger.store.models import BatchRow
from ledger.verify import CheckStatus, Verdict

from .conftest import REPO
from .scenario import Story, productions
from .test_anchoring import assert_exactly_once, mine
from .test_fees import Clock, nonce, only_batch, rpc

pytestmark = pytest.mark.chain

HARDHAT = REPO / "node_modules" / ".bin" / "hardhat"


@pytest.fixture(scope="module")
def hardhat_node() -> Iterator[str]:
    """`hardhat node` on a free port (one per module; each test reverts to a snapshot)."""
    port = free_port()
    process = subprocess.Popen(
        ["node", str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion"}, timeout=2)
            version = answer.json()["result"]
            break
        except (requests.RequestException, KeyError, ValueError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("hardhat node did not start") from None
            time.sleep(0.2)
    assert "hardhat" in version.lower() or "edr" in version.lower(), version  # not anvil
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture
def w3(hardhat_node: str) -> Iterator[Web3]:
    """Overrides conftest's anvil connection: the same fixtures (deployment, ledger_env)
    now run on Hardhat's node."""
    connection = connect(hardhat_node)
    snapshot = rpc(connection, "evm_snapshot")
    yield connection
    rpc(connection, "evm_setAutomine", True)
    rpc(connection, "evm_revert", snapshot)


def test_deploy_admit_sign_anchor_verify_by_id_and_bundle_and_replay_on_hardhat(ledger_env: Ledger) -> None:
    ledger = ledger_env
    assert ledger.deployment.w3.eth.chain_id == 31337
    story = Story(ledger)
    ids = story.clean_export()
    story.anchor()
    result = ledger.verify_shipment(ids["shipment"])
    assert result.verdict is Verdict.VERIFIED, result.to_json()
    assert all(c.status is CheckStatus.VALID for c in result.checks)
    bundle = ledger.export_bundle(ids["shipment"])
    at_node = ledger.verify_bundle(bundle)
    assert at_node.verdict is Verdict.VERIFIED, at_node.to_json()
    report, _ = replay(ledger.deployment, store_source(ledger))
    assert report.clean, [d.to_json() for d in report.discrepancies]
    assert report.batches and all(b["status"] == "ok" for b in report.batches)
    # Anchors are EIP-1559 transactions priced by the policy.
    tx = ledger.deployment.w3.eth.get_transaction(only_batch_tx(ledger))
    assert tx["type"] == 2 and tx["maxPriorityFeePerGas"] == GWEI


def only_batch_tx(ledger: Ledger) -> Any:  # Any: the stored hex string, passed on to web3 as its hash
    with ledger.sessions() as session:
        return session.scalars(select(BatchRow.tx_hash).order_by(BatchRow.chain_index)).first()


def test_a_stuck_anchor_is_replaced_under_its_nonce_on_hardhat(ledger_env: Ledger) -> None:
    ledger = ledger_env
    w3 = ledger.deployment.w3
    clock = Clock()
    worker = ledger.anchoring_worker(confirmations=1, clock=clock)
    start = nonce(w3, worker.account.address)
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
    rpc(w3, "evm_setAutomine", False)
    worker.step()
    first = only_batch(ledger)
    assert first.status == SENT and first.nonce == start
    clock.now += worker.fees.stuck_after + 1
    assert worker.step().resent == 1
    assert only_batch(ledger).nonce == start and only_batch(ledger).tx_hash != first.tx_hash
    rpc(w3, "hardhat_dropTransaction", only_batch(ledger).tx_hash)  # and then it is dropped
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert nonce(w3, worker.account.address) == start + 1


def test_a_fee_spike_pauses_anchoring_on_hardhat(ledger_env: Ledger) -> None:
    ledger = ledger_env
    w3 = ledger.deployment.w3
    worker = ledger.anchoring_worker(confirmations=1, fees=FeePolicy(max_fee_wei=50 * GWEI))
    ledger.ingest_many(productions(ledger, 2))  # type: ignore[arg-type]
    rpc(w3, "hardhat_setNextBlockBaseFeePerGas", hex(200 * GWEI))
    mine(w3)
    assert worker.step().sent == 0 and FEE_CEILING in active_alarms(ledger.sessions)
    rpc(w3, "hardhat_setNextBlockBaseFeePerGas", hex(GWEI))
    mine(w3)
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert FEE_CEILING not in active_alarms(ledger.sessions)
