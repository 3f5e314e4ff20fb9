"""Anchoring: every acknowledged attestation ends up in exactly one anchored batch,
through crashes, kills, outages, reorganisations and competing workers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from web3 import Web3

from ledger.anchoring import ANCHORED
from ledger.chain.anvil import start_anvil
from ledger.chain.client import Deployment
from ledger.core import Ledger
from ledger.hashing import parse_hex
from ledger.merkle import verify_proof
from ledger.store.models import AttestationRow, BatchRow

from .conftest import REPO, ReliabilityRecorder
from .scenario import actor, every_kind, productions


def mine(w3: Web3, blocks: int = 1) -> None:
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def assert_exactly_once(ledger: Ledger) -> None:
    """Every stored attestation is in one batch; every batch is anchored once, in
    sequence, on chain, with the root the store rebuilds."""
    chain = ledger.deployment.ledger
    with ledger.sessions() as session:
        loose = session.scalar(
            select(func.count(AttestationRow.id)).where(
                AttestationRow.batch_id.is_(None), AttestationRow.direct_tx.is_(None)
            )
        )
        direct = session.scalar(select(func.count(AttestationRow.id)).where(AttestationRow.direct_tx.isnot(None)))
        batches = session.scalars(select(BatchRow).order_by(BatchRow.chain_index)).all()
        total = session.scalar(select(func.count(AttestationRow.id)))
    assert loose == 0, "an acknowledged attestation was left out of every batch"
    assert [b.chain_index for b in batches] == list(range(len(batches))), "batch sequence has a gap"
    assert all(b.status == ANCHORED for b in batches)
    assert sum(b.count for b in batches) + direct == total
    events = chain.events.BatchAnchored().get_logs(from_block=ledger.deployment.manifest.deployment_block)
    assert len(events) == len(batches), "a batch was anchored twice, or a chain batch is unknown to the store"
    previous = "0x" + "00" * 32
    for b in batches:
        assert "0x" + bytes(chain.functions.batchRoot(b.chain_index).call()).hex() == b.root
        assert b.previous_root == previous
        previous = b.root
        ledger._batch_tree(b.id, b.root)  # the stored rows rebuild the anchored root


def all_uids(ledger: Ledger) -> list[str]:
    with ledger.sessions() as session:
        return list(session.scalars(select(AttestationRow.uid).order_by(AttestationRow.id)))


def test_every_kind_is_anchored_once_with_proofs_that_the_contract_and_the_js_library_accept(
    ledger_env: Ledger,
) -> None:
    ledger = ledger_env
    for submission in every_kind(ledger):
        ledger.ingest(submission)
    worker = ledger.anchoring_worker(confirmations=2, max_batch=4)
    worker.drain(mine=lambda: mine(ledger.deployment.w3))
    assert_exactly_once(ledger)
    checks = []
    for uid in all_uids(ledger):
        anchor = ledger.anchor_of(uid)
        if anchor.status == "direct":  # revocations are recorded directly, visible to any verifier
            record = ledger.deployment.ledger.functions.getRecord(parse_hex(uid, 32, "uid")).call()
            assert int(record[0], 16) != 0
            continue
        assert anchor.status == "anchored" and anchor.tx_hash and anchor.block_number
        proof = [parse_hex(p, 32, "proof") for p in anchor.proof]
        assert verify_proof(parse_hex(anchor.root or "", 32, "root"), parse_hex(uid, 32, "uid"), proof)
        assert ledger.deployment.ledger.functions.verifyInclusion(
            parse_hex(uid, 32, "uid"), proof, anchor.batch_index
        ).call()
        checks.append({"root": anchor.root, "uid": uid, "proof": list(anchor.proof)})
    js = subprocess.run(
        ["node", "tests/js/verify_proofs.js"],
        input=json.dumps(checks),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert json.loads(js.stdout) == [True] * len(checks)


def test_nothing_counts_as_anchored_before_the_confirmations(ledger_env: Ledger) -> None:
    ledger = ledger_env
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
    worker = ledger.anchoring_worker(confirmations=3)
    worker.step()  # sealed and sent; mined in one block by anvil
    assert ledger.anchor_of(all_uids(ledger)[0]).status == "sent"
    mine(ledger.deployment.w3)
    worker.step()
    assert ledger.anchor_of(all_uids(ledger)[0]).status == "sent"
    mine(ledger.deployment.w3)
    worker.step()
    assert ledger.anchor_of(all_uids(ledger)[0]).status == "anchored"


class Crash(Exception):
    pass


@pytest.mark.parametrize("point", ["sealed", "persisted", "broadcast", "included", "anchored"])
def test_a_worker_that_dies_at_any_step_is_resumed_and_anchors_exactly_once(
    ledger_env: Ledger, point: str, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    ledger.ingest_many(productions(ledger, 20))  # type: ignore[arg-type]

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    doomed = ledger.anchoring_worker(confirmations=1, max_batch=8, lease_seconds=0.2)
    doomed.checkpoint = crash
    with pytest.raises(Crash):
        for _ in range(10):
            doomed.step()
    time.sleep(0.3)  # the dead worker's lease runs out
    ledger.ingest_many(productions(ledger, 5, prefix="LATE"))  # type: ignore[arg-type]
    successor = ledger.anchoring_worker(confirmations=1, max_batch=8)
    successor.drain(mine=lambda: mine(ledger.deployment.w3))
    assert_exactly_once(ledger)
    reliability.record(
        "fault",
        f"anchoring worker crashes at step {point!r}, successor takes over",
        1,
        "every attestation anchored exactly once, batch sequence gap-free",
    )


def test_two_workers_at_once_only_one_anchors(ledger_env: Ledger, reliability: ReliabilityRecorder) -> None:
    ledger = ledger_env
    ledger.ingest_many(productions(ledger, 6))  # type: ignore[arg-type]
    first = ledger.anchoring_worker(confirmations=1, max_batch=2)
    second = ledger.anchoring_worker(confirmations=1, max_batch=2)
    assert first.step().leader
    report = second.step()
    assert not report.leader and report.sealed == 0 and report.sent == 0
    first.drain()
    assert_exactly_once(ledger)
    reliability.record(
        "fault",
        "two anchoring workers started at once",
        1,
        "one holds the lease and anchors; the other seals and sends nothing",
    )


def test_a_reorganised_anchor_is_sent_again_and_nothing_unanchored_is_reported_anchored(
    ledger_env: Ledger, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    w3 = ledger.deployment.w3
    ledger.ingest_many(productions(ledger, 4))  # type: ignore[arg-type]
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    worker = ledger.anchoring_worker(confirmations=3)
    worker.step()
    uid = all_uids(ledger)[0]
    with ledger.sessions() as session:
        first_tx = session.scalars(select(BatchRow.tx_hash)).one()
    assert ledger.deployment.ledger.functions.batchRoot(0).call() != bytes(32)
    # The chain drops the block with our anchoring transaction.
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    assert ledger.deployment.ledger.functions.batchRoot(0).call() == bytes(32)
    mine(w3, 3)
    worker.step()
    assert ledger.anchor_of(uid).status != "anchored"
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    with ledger.sessions() as session:
        batch = session.scalars(select(BatchRow)).one()
    assert batch.attempts == 2
    assert batch.tx_hash != first_tx or ledger.anchor_of(uid).block_number is not None
    reliability.record(
        "fault",
        "chain reorganisation (evm_snapshot/evm_revert) drops the anchoring transaction",
        1,
        "not reported anchored meanwhile; re-sent (attempts == 2) and anchored once",
    )


def test_anchoring_backs_off_during_a_chain_outage_and_resumes(
    deployment: Deployment, tmp_path: Path, database_url: str, reliability: ReliabilityRecorder
) -> None:
    """A chain node of its own, stopped and restarted with its state."""
    from ledger.chain.accounts import dev_account
    from ledger.chain.client import call_and_send, connect
    from ledger.chain.deploy import FOREVER, deploy
    from ledger.config import Settings
    from ledger.roles import Role

    state = tmp_path / "chain.json"
    node = start_anvil(state_file=state)
    port = node.port
    try:
        w3 = connect(node.rpc_url)
        manifest = deploy(w3, dev_account(0), dev_account(1).address)
        maker = actor("maker")
        call_and_send(
            w3,
            dev_account(0),
            Deployment(w3, manifest).registry.functions.admit(
                maker.address, b"\x01" * 32, int(Role.MANUFACTURER), 0, FOREVER
            ),
        )
        settings = Settings(
            home=tmp_path,
            database_url=database_url,
            rpc_url=node.rpc_url,
            confirmations=1,
            batch_max_size=8,
            batch_max_age_seconds=0.0,
        )
        ledger = Ledger.open(settings, manifest=manifest)
        ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
        node.stop()  # the chain goes away (state written on SIGTERM)
        # Ingest keeps accepting on the indexed registry history.
        accepted = ledger.ingest_many(productions(ledger, 3, prefix="DURING"))  # type: ignore[arg-type]
        assert all(type(r).__name__ == "Accepted" for r in accepted)
        worker = ledger.anchoring_worker(confirmations=1)
        with pytest.raises(Exception):  # noqa: B017 - any transport error: the worker loop backs off
            worker.step()
        node = start_anvil(state_file=state, port=port)
        worker.drain(mine=lambda: mine(ledger.deployment.w3))
        assert_exactly_once(ledger)
        assert ledger.counts()["anchored"] == 6
        ledger.close()
    finally:
        node.stop()
    reliability.record(
        "fault",
        "chain node stopped while ingest continues, then restarted",
        1,
        "ingest kept accepting; the worker backed off and anchored all 6 once the node returned",
    )


def test_direct_anchoring_records_the_attestation_on_chain_once(ledger_env: Ledger) -> None:
    ledger = ledger_env
    submission = productions(ledger, 1)[0]
    uid = ledger.ingest(submission).uid
    time.sleep(1.1)
    mine(ledger.deployment.w3)  # chain time reaches the signing time
    tx = ledger.anchor_direct(uid, actor("outsider"))
    assert ledger.anchor_direct(uid, actor("outsider")) == tx  # idempotent: found, not re-sent
    record = ledger.deployment.ledger.functions.getRecord(parse_hex(uid, 32, "uid")).call()
    assert record[0] == actor("maker").address
    assert ledger.anchor_of(uid).status == "direct"
    assert not ledger.anchoring_worker(confirmations=1).pending_work()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigkill_of_the_worker_process_at_random_points_loses_nothing(
    ledger_env: Ledger, tmp_path: Path, reliability: ReliabilityRecorder
) -> None:
    ledger = ledger_env
    manifest_path = ledger.deployment.manifest.save(tmp_path / "deployment.json")
    env = {
        **os.environ,
        "PROVENANCE_HOME": str(tmp_path),
        "PROVENANCE_MANIFEST": str(manifest_path),
        "PROVENANCE_DATABASE_URL": ledger.settings.resolved_database_url,
        "PROVENANCE_RPC_URL": ledger.settings.resolved_rpc_url,
        "PROVENANCE_CONFIRMATIONS": "1",
        "PROVENANCE_BATCH_MAX_SIZE": "7",
        "PROVENANCE_BATCH_MAX_AGE": "0",
    }
    rng = random.Random(42)
    kills = 0
    for round_ in range(6):
        ledger.ingest_many(productions(ledger, 15, prefix=f"R{round_}"))  # type: ignore[arg-type]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "worker", "--interval", "0.05"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
    assert kills == 6
    time.sleep(15.5)  # the last killed worker's lease (15 s) runs out
    ledger.anchoring_worker(confirmations=1, max_batch=7).drain(timeout=120)
    assert_exactly_once(ledger)
    assert ledger.counts() == {"attestations": 90, "batched": 90, "anchored": 90}
    reliability.record(
        "fault",
        "anchoring worker process SIGKILLed at random points while ingest continues",
        kills,
        "all 90 attestations anchored exactly once after restart",
    )
