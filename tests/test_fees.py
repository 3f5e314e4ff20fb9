"""Fees, stuck and dropped transactions, crashes with transactions pending, fee spikes,
finality tags and reorganisations deeper than the policy — on anvil with automine off,
raised base fees and dropped transactions (its own controls), never a mock.

Each story names the fault and asserts what must hold: every attestation anchored
exactly once (one `BatchAnchored` per batch, the account's nonce advanced once per
batch), nothing sent above the fee ceiling, alarms visible in `/readyz`, the log and
`/metrics`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web3 import Web3

from api.app import create_app
from ledger.alarms import DEEP_REORG, FEE_CEILING, active_alarms, clear_alarm
from ledger.anchoring import ANCHORED, SENT
from ledger.audit import replay, store_source
from ledger.chain.accounts import dev_account
from ledger.chain.client import call_and_send
from ledger.chain.deploy import FOREVER
from ledger.chain.fees import GWEI, FeeCeilingExceeded, FeePolicy, Fees
from ledger.config import Settings
from ledger.core import Ledger
from ledger.roles import Role
from ledger.store.models import BatchRow

from .conftest import REPO
from .scenario import actor, productions
from .test_anchoring import assert_exactly_once, mine

pytestmark = pytest.mark.chain


def rpc(w3: Web3, method: str, *params: Any) -> Any:  # Any: JSON-RPC parameters and result
    answer = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in answer, answer
    return answer.get("result")


def pool(w3: Web3) -> dict[str, dict[str, Any]]:
    """anvil's pending transactions, by sender (lowercase) and nonce."""
    content = rpc(w3, "txpool_content")["pending"]
    return {sender.lower(): txs for sender, txs in content.items()}


class Clock:
    def __init__(self) -> None:
        self.now = time.time() + 1  # ahead of the rows ingested in the test: they are due

    def __call__(self) -> float:
        return self.now


def only_batch(ledger: Ledger) -> BatchRow:
    with ledger.sessions() as session:
        return session.scalars(select(BatchRow)).one()


def nonce(w3: Web3, address: str) -> int:
    return int(w3.eth.get_transaction_count(address, "latest"))  # type: ignore[arg-type]


# ------------------------------------------------------------------------ the policy


def test_fee_quotes_follow_the_base_fee_bump_replacements_and_refuse_above_the_ceiling() -> None:
    policy = FeePolicy(max_fee_wei=100 * GWEI, priority_fee_wei=2 * GWEI, bump_percent=20)
    assert policy.quote(10 * GWEI) == Fees(max_fee=22 * GWEI, tip=2 * GWEI)
    # Capped at the ceiling while base fee + tip still fits under it.
    assert policy.quote(60 * GWEI) == Fees(max_fee=100 * GWEI, tip=2 * GWEI)
    bumped = policy.quote(10 * GWEI, previous=Fees(22 * GWEI, 2 * GWEI))
    assert bumped.max_fee >= 22 * GWEI * 1.2 and bumped.tip >= 2 * GWEI * 1.2
    with pytest.raises(FeeCeilingExceeded) as spike:
        policy.quote(99 * GWEI)  # 99 + 2 > 100: not includable under the ceiling
    assert spike.value.base_fee == 99 * GWEI and spike.value.ceiling == 100 * GWEI
    assert "PROVENANCE_MAX_FEE_GWEI" in str(spike.value)
    with pytest.raises(FeeCeilingExceeded):  # a replacement that would have to exceed it
        policy.quote(10 * GWEI, previous=Fees(90 * GWEI, 2 * GWEI))
    with pytest.raises(ValueError, match="10 %"):
        FeePolicy(bump_percent=5)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PROVENANCE_MAX_FEE_GWEI", "0", "must be positive"),
        ("PROVENANCE_MAX_FEE_GWEI", "lots", "must be a number"),
        ("PROVENANCE_PRIORITY_FEE_GWEI", "-1", "must not be negative"),
        ("PROVENANCE_PRIORITY_FEE_GWEI", "900", "must not exceed"),
        ("PROVENANCE_FEE_BUMP_PERCENT", "5", "at least 10"),
        ("PROVENANCE_TX_STUCK_SECONDS", "0", "must be positive"),
        ("PROVENANCE_CONFIRMATION_MODE", "latest", "depth, safe or finalized"),
        ("PROVENANCE_RPC_URLS", "http://a:8545,ftp://b", "not an http"),
    ],
)
def test_bad_fee_and_finality_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message) as refused:
        Settings()
    assert variable in str(refused.value)


def test_the_settings_become_the_workers_fee_policy(ledger_env: Ledger) -> None:
    worker = ledger_env.anchoring_worker()
    assert worker.fees == FeePolicy.from_settings(ledger_env.settings)
    assert worker.fees.max_fee_wei == 500 * GWEI and worker.fees.priority_fee_wei == GWEI


# ------------------------------------------------------------------- fault stories


def test_a_stuck_anchor_is_replaced_under_the_same_nonce_with_raised_fees_and_anchored_once(
    ledger_env: Ledger,
) -> None:
    """Fault: the chain does not mine (automine off). The worker must not send a second
    transaction under a new nonce (two anchors racing); it replaces its own."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    clock = Clock()
    worker = ledger.anchoring_worker(confirmations=1, clock=clock, fees=FeePolicy(stuck_after=30.0))
    anchorer = worker.account.address
    start_nonce = nonce(w3, anchorer)
    ledger.ingest_many(productions(ledger, 5))  # type: ignore[arg-type]
    rpc(w3, "evm_setAutomine", False)
    worker.step()
    first = only_batch(ledger)
    assert first.status == SENT and first.nonce == start_nonce
    assert list(pool(w3)[anchorer.lower()]) == [str(start_nonce)]
    clock.now += 10  # not stuck yet: nothing happens
    assert worker.step().resent == 0 and only_batch(ledger).tx_hash == first.tx_hash
    clock.now += 25  # now 35 s unmined: replaced
    assert worker.step().resent == 1
    second = only_batch(ledger)
    assert second.nonce == first.nonce and second.tx_hash != first.tx_hash
    assert second.max_fee >= first.max_fee * 1.2 and second.tip >= first.tip * 1.2  # type: ignore[operator]
    waiting = pool(w3)[anchorer.lower()]
    assert list(waiting) == [str(start_nonce)], "one transaction per nonce in the pool: replaced, not added"
    assert waiting[str(start_nonce)]["hash"] == second.tx_hash
    mine(w3)
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert nonce(w3, anchorer) == start_nonce + 1, "exactly one anchoring transaction was mined"
    receipt = w3.eth.get_transaction_receipt(only_batch(ledger).tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1 and "0x" + bytes(receipt["transactionHash"]).hex() == second.tx_hash


def test_a_dropped_anchor_is_sent_again_under_its_nonce_and_anchored_once(ledger_env: Ledger) -> None:
    """Fault: the node forgets the transaction (anvil_dropTransaction)."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    worker = ledger.anchoring_worker(confirmations=1)
    anchorer = worker.account.address
    start_nonce = nonce(w3, anchorer)
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
    rpc(w3, "evm_setAutomine", False)
    worker.step()
    dropped = only_batch(ledger)
    rpc(w3, "anvil_dropTransaction", dropped.tx_hash)
    assert anchorer.lower() not in pool(w3)
    worker.step()  # notices: neither mined nor known
    worker.step()  # sends again
    again = only_batch(ledger)
    assert again.attempts == 2 and again.nonce == dropped.nonce
    assert list(pool(w3)[anchorer.lower()]) == [str(start_nonce)]
    rpc(w3, "anvil_dropAllTransactions")  # and once more, everything
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert nonce(w3, anchorer) == start_nonce + 1


class Crash(Exception):
    pass


def test_a_worker_killed_with_its_transaction_pending_recovers_the_nonce_and_never_duplicates(
    ledger_env: Ledger,
) -> None:
    """Fault: the worker dies right after broadcasting; the chain does not mine. Its
    successor must find the pending transaction's nonce in the store and replace it
    there — not send the batch again under the next nonce."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    clock = Clock()
    ledger.ingest_many(productions(ledger, 4))  # type: ignore[arg-type]
    rpc(w3, "evm_setAutomine", False)

    def die(point: str) -> None:
        if point == "broadcast":
            raise Crash(point)

    doomed = ledger.anchoring_worker(confirmations=1, clock=clock, lease_seconds=5, checkpoint=die)
    anchorer = doomed.account.address
    start_nonce = nonce(w3, anchorer)
    with pytest.raises(Crash):
        doomed.step()
    pending = only_batch(ledger)
    assert pending.status == SENT and pending.nonce == start_nonce
    clock.now += 60  # the dead worker's lease runs out; its transaction has waited a minute
    successor = ledger.anchoring_worker(confirmations=1, clock=clock)
    assert successor.step().resent == 1
    replaced = only_batch(ledger)
    assert replaced.nonce == start_nonce and replaced.tx_hash != pending.tx_hash
    assert list(pool(w3)[anchorer.lower()]) == [str(start_nonce)]
    successor.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert nonce(w3, anchorer) == start_nonce + 1


def test_a_fee_spike_above_the_ceiling_pauses_anchoring_with_an_alarm_and_it_resumes(
    ledger_env: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: the base fee jumps to 200 gwei, the ceiling is 50 gwei. Nothing may be sent
    (no transaction paying above the ceiling, none left to rot in the pool); /readyz,
    the log and /metrics say why; once fees fall, anchoring resumes, once."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    worker = ledger.anchoring_worker(confirmations=1, fees=FeePolicy(max_fee_wei=50 * GWEI))
    anchorer = worker.account.address
    start_nonce = nonce(w3, anchorer)
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
    rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(200 * GWEI))
    mine(w3)
    with caplog.at_level(logging.ERROR, logger="ledger.alarms"):
        report = worker.step()
    assert report.sealed == 1 and report.sent == 0
    assert nonce(w3, anchorer) == start_nonce and anchorer.lower() not in pool(w3)
    assert only_batch(ledger).tx_hash is None
    alarm = active_alarms(ledger.sessions)[FEE_CEILING]
    assert "batch 0" in alarm and "200.000 gwei" in alarm and "50.000 gwei" in alarm
    assert any("ALARM fee_ceiling" in r.getMessage() for r in caplog.records)
    with TestClient(create_app(ledger.settings, ledger)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["alarm_names"] == [FEE_CEILING] and "200.000 gwei" in ready.json()["alarms"]
        assert 'provenance_chain_alarm{alarm="fee_ceiling"} 1.0' in client.get("/metrics").text
    # Fees fall back (the base fee decays; here: set directly).
    rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    mine(w3)
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert nonce(w3, anchorer) == start_nonce + 1
    assert FEE_CEILING not in active_alarms(ledger.sessions)
    with TestClient(create_app(ledger.settings, ledger)) as client:
        assert client.get("/readyz").status_code == 200
        assert 'provenance_chain_alarm{alarm="fee_ceiling"} 0.0' in client.get("/metrics").text


def test_a_stuck_anchor_that_cannot_be_bumped_under_the_ceiling_waits_and_is_anchored_once(
    ledger_env: Ledger,
) -> None:
    """Fault: stuck, and raising the fee would cross the ceiling. The transaction keeps
    waiting under its nonce (alarm raised); it is mined later, exactly once."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    clock = Clock()
    ceiling = FeePolicy(max_fee_wei=3 * GWEI, priority_fee_wei=GWEI, stuck_after=5.0)
    worker = ledger.anchoring_worker(confirmations=1, clock=clock, fees=ceiling)
    ledger.ingest_many(productions(ledger, 2))  # type: ignore[arg-type]
    rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    mine(w3)
    rpc(w3, "evm_setAutomine", False)
    worker.step()
    first = only_batch(ledger)
    assert first.max_fee == 3 * GWEI  # 2 x base + tip, capped at the ceiling
    clock.now += 10
    assert worker.step().resent == 0
    assert only_batch(ledger).tx_hash == first.tx_hash
    assert "anchoring paused at batch 0" in active_alarms(ledger.sessions)[FEE_CEILING]
    mine(w3)
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert only_batch(ledger).tx_hash == first.tx_hash


def test_send_transaction_replaces_a_stuck_registry_call_under_the_same_nonce(ledger_env: Ledger) -> None:
    """Every transaction the node sends (not only anchors) is priced and replaced alike."""
    w3 = ledger_env.deployment.w3
    registrar = dev_account(0)
    start_nonce = nonce(w3, registrar.address)
    rpc(w3, "evm_setAutomine", False)
    seen: list[int] = []

    def mine_after_a_replacement() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = pool(w3).get(registrar.address.lower(), {})
            if waiting:
                seen.append(int(next(iter(waiting.values()))["maxFeePerGas"], 16))
            if len(set(seen)) >= 2:
                break
            time.sleep(0.05)
        mine(w3)

    miner = threading.Thread(target=mine_after_a_replacement)
    miner.start()
    receipt = call_and_send(
        w3,
        registrar,
        ledger_env.deployment.registry.functions.admit(
            dev_account(9).address, Web3.keccak(text="late carrier"), int(Role.CARRIER), 0, FOREVER
        ),
        fees=FeePolicy(stuck_after=0.3),
    )
    miner.join()
    assert receipt["status"] == 1
    assert len(set(seen)) >= 2 and seen[-1] > seen[0], "the fee was raised while waiting"
    assert nonce(w3, registrar.address) == start_nonce + 1
    assert int(w3.eth.get_transaction(receipt["transactionHash"])["maxFeePerGas"]) == seen[-1]


# ----------------------------------------------------------------- finality, reorgs


def test_finality_by_the_chains_finalized_tag(ledger_env: Ledger) -> None:
    """With PROVENANCE_CONFIRMATION_MODE=finalized a batch is anchored only once the
    chain's `finalized` block has reached it (anvil: head minus two epochs of 32)."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    worker = ledger.anchoring_worker(confirmations=1, confirmation_mode="finalized")
    ledger.ingest_many(productions(ledger, 2))  # type: ignore[arg-type]
    worker.step()
    block = w3.eth.get_transaction_receipt(only_batch(ledger).tx_hash)["blockNumber"]  # type: ignore[arg-type]
    worker.step()
    assert only_batch(ledger).status == SENT  # one block deep, but not final by the tag
    while int(w3.eth.get_block("finalized")["number"]) < block:
        mine(w3)
        if int(w3.eth.get_block("finalized")["number"]) < block:
            worker.step()
            assert only_batch(ledger).status == SENT
    worker.step()
    assert only_batch(ledger).status == ANCHORED


def anchored_after_a_snapshot(ledger: Ledger) -> tuple[str, Any]:
    """Three productions anchored (2 confirmations) after an `evm_snapshot` taken before
    them: the snapshot to revert to and the anchoring worker."""
    w3 = ledger.deployment.w3
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
    snapshot = rpc(w3, "evm_snapshot")
    worker = ledger.anchoring_worker(confirmations=2, recheck_every=0.0)
    worker.drain(mine=lambda: mine(w3))
    return snapshot, worker


def test_a_reorganisation_deeper_than_the_policy_raises_an_alarm_and_a_replay_discrepancy(
    ledger_env: Ledger,
) -> None:
    """Fault: a batch anchored and final under the policy disappears (evm_snapshot ->
    anchor -> confirm -> evm_revert -> a different history). The worker, /readyz and the
    auditor's replay must all say so; the batch is anchored again, once."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    snapshot, worker = anchored_after_a_snapshot(ledger)
    anchored = only_batch(ledger)
    assert anchored.status == ANCHORED
    records = list(store_source(ledger))
    first_report, state = replay(ledger.deployment, iter(records))
    assert first_report.clean
    with TestClient(create_app(ledger.settings, ledger)) as client:
        ledger.chain_view.snapshot(max_age=0)  # the view caches batch 0 as confirmed
        assert client.get("/readyz").status_code == 200
        # A different history: the block with the anchor is gone, other blocks replace it.
        rpc(w3, "evm_revert", snapshot)
        mine(w3, 4)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and DEEP_REORG in ready.json()["alarm_names"]
    audit, state = replay(ledger.deployment, iter(records), state=state)
    kinds = [d.kind for d in audit.discrepancies]
    assert "REORGANISED" in kinds
    reorganised = next(d for d in audit.discrepancies if d.kind == "REORGANISED")
    assert reorganised.batch == 0 and reorganised.evidence["replayed"] == anchored.root
    assert int(reorganised.evidence["onChain"], 16) == 0
    report = worker.step()
    assert report.reorganised == 1
    assert only_batch(ledger).status != ANCHORED, "a batch gone from the chain is not reported anchored"
    alarm = active_alarms(ledger.sessions)[DEEP_REORG]
    assert "batch 0" in alarm
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert DEEP_REORG in active_alarms(ledger.sessions), "stands until an operator clears it"
    assert clear_alarm(ledger.sessions, DEEP_REORG)
    again, _ = replay(ledger.deployment, iter(records), state=state)
    assert again.clean


def test_a_replay_resumed_after_a_reorganisation_holds_the_registry_history_of_the_chain_as_it_is(
    ledger_env: Ledger,
) -> None:
    """Fault: a reorganisation drops a batch and, after it, a suspension an earlier replay
    had read (evm_snapshot -> anchor, suspend -> replay -> evm_revert). The replay resumed
    from that checkpoint reads those blocks again: its registry history is the chain's as
    it is now (the dropped suspension gone, nothing counted twice), as a replay from
    scratch reads it."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    snapshot, _worker = anchored_after_a_snapshot(ledger)
    importer = actor("importer").address
    call_and_send(w3, dev_account(0), ledger.deployment.registry.functions.suspend(importer, b"r" * 32))
    records = list(store_source(ledger))
    _first, state = replay(ledger.deployment, iter(records))
    assert state.history[importer.lower()][-1].suspended
    rpc(w3, "evm_revert", snapshot)
    mine(w3, 4)
    resumed, state = replay(ledger.deployment, iter(records), state=state)
    assert "REORGANISED" in [d.kind for d in resumed.discrepancies]
    _fresh, scratch = replay(ledger.deployment, iter(records))
    assert state.history == scratch.history and state.history_blocks == scratch.history_blocks
    assert not state.history[importer.lower()][-1].suspended


def test_a_worker_process_sigkilled_with_its_transaction_pending_is_succeeded_without_a_duplicate(
    ledger_env: Ledger, tmp_path: Path
) -> None:
    """Fault: the real worker process (`provenance worker`) is SIGKILLed while its
    anchoring transaction waits in the pool of a chain that does not mine."""
    ledger = ledger_env
    w3 = ledger.deployment.w3
    manifest_path = ledger.deployment.manifest.save(tmp_path / "deployment.json")
    env = {
        **os.environ,
        "PROVENANCE_HOME": str(tmp_path),
        "PROVENANCE_MANIFEST": str(manifest_path),
        "PROVENANCE_DATABASE_URL": ledger.settings.resolved_database_url,
        "PROVENANCE_RPC_URL": ledger.settings.resolved_rpc_url,
        "PROVENANCE_CONFIRMATIONS": "1",
        "PROVENANCE_BATCH_MAX_AGE": "0",
        "PROVENANCE_TX_STUCK_SECONDS": "600",
    }
    anchorer = dev_account(1).address
    start_nonce = nonce(w3, anchorer)
    ledger.ingest_many(productions(ledger, 5))  # type: ignore[arg-type]
    rpc(w3, "evm_setAutomine", False)
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "worker", "--interval", "0.05"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a hang guard: the CLI's start-up took over 30 s at load 11
        while anchorer.lower() not in pool(w3):
            assert time.monotonic() < deadline, "the worker process sent nothing"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    pending = only_batch(ledger)
    assert pending.status == SENT and pending.nonce == start_nonce
    clock = Clock()
    clock.now += 60  # its lease (15 s) has run out, its transaction waited a minute
    successor = ledger.anchoring_worker(confirmations=1, clock=clock)
    assert successor.step().resent == 1
    assert only_batch(ledger).nonce == start_nonce
    assert list(pool(w3)[anchorer.lower()]) == [str(start_nonce)]
    successor.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    assert nonce(w3, anchorer) == start_nonce + 1
