"""Anchoring: every acknowledged attestation ends up in exactly one anchored batch,
through crashes, kills, outages, reorganisations and competing workers."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, update
from web3 import Web3

from ledger.anchoring import ANCHORED
from ledger.chain.anvil import start_anvil
from ledger.chain.client import Deployment
from ledger.core import Ledger
from ledger.hashing import parse_hex
from ledger.merkle import verify_proof
from ledger.store.models import AttestationRow, BatchRow, WorkerLeaseRow

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
        direct = int(
            session.scalar(select(func.count(AttestationRow.id)).where(AttestationRow.direct_tx.isnot(None))) or 0
        )
        batches = session.scalars(select(BatchRow).order_by(BatchRow.chain_index)).all()
        total = int(session.scalar(select(func.count(AttestationRow.id))) or 0)
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
        kind="test hook",
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
        kind="sequential",
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
    dropped_block = w3.eth.get_transaction_receipt(ledger.anchor_of(uid).tx_hash)["blockNumber"]  # type: ignore[arg-type]
    assert ledger.deployment.ledger.functions.batchRoot(0).call() != bytes(32)
    # The chain drops the block with our anchoring transaction (before its 3 confirmations).
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    assert ledger.deployment.ledger.functions.batchRoot(0).call() == bytes(32)
    assert w3.eth.block_number < dropped_block
    mine(w3, 3)
    worker.step()
    assert ledger.anchor_of(uid).status != "anchored"
    worker.drain(mine=lambda: mine(w3))
    assert_exactly_once(ledger)
    with ledger.sessions() as session:
        batch = session.scalars(select(BatchRow)).one()
    assert batch.attempts == 2
    # Anchored in a block mined after the reorganisation, which is canonical now.
    anchor = ledger.anchor_of(uid)
    receipt = w3.eth.get_transaction_receipt(anchor.tx_hash)  # type: ignore[arg-type]
    assert anchor.status == "anchored" and anchor.block_number == receipt["blockNumber"]
    assert w3.eth.get_block(receipt["blockNumber"])["hash"] == receipt["blockHash"]
    assert batch.block_hash == "0x" + bytes(receipt["blockHash"]).hex()
    reliability.record(
        "fault",
        "chain reorganisation (evm_snapshot/evm_revert) drops the anchoring transaction before its confirmations",
        1,
        "not reported anchored meanwhile; re-sent (attempts == 2) and anchored once, in a canonical block",
        kind="chain reorganisation",
    )


def test_anchoring_backs_off_during_a_chain_outage_and_resumes(
    tmp_path: Path, database_url: str, reliability: ReliabilityRecorder, caplog: pytest.LogCaptureFixture
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
        # The worker exists before the outage (constructing one needs the chain: it checks
        # the chain id, so `provenance worker` cannot start while the node is down).
        worker = ledger.anchoring_worker(confirmations=1)
        node.stop()  # the chain goes away (state written on SIGTERM)
        # Ingest keeps accepting on the indexed registry history.
        accepted = ledger.ingest_many(productions(ledger, 3, prefix="DURING"))  # type: ignore[arg-type]
        assert all(type(r).__name__ == "Accepted" for r in accepted)
        with pytest.raises(requests.exceptions.ConnectionError):
            worker.step()
        # The worker loop itself: it backs off (doubling its wait) while the node is away...
        stop = threading.Event()
        loop = threading.Thread(
            target=worker.run, args=(stop,), kwargs={"interval": 0.1, "max_backoff": 0.8}, daemon=True
        )
        with caplog.at_level(logging.WARNING, logger="ledger.anchoring"):
            loop.start()
            try:
                deadline = time.monotonic() + 60
                while len(failures := [r.getMessage() for r in caplog.records if "step failed" in r.getMessage()]) < 5:
                    assert time.monotonic() < deadline, failures
                    time.sleep(0.05)
                # ...and anchors everything once the node is back (the same loop, not a new worker).
                node = start_anvil(state_file=state, port=port)
                while ledger.counts()["anchored"] < 6:
                    assert time.monotonic() < deadline + 60, ledger.counts()
                    time.sleep(0.1)
            finally:
                stop.set()
                loop.join(timeout=30)
        waits = [float(m.split("retrying in ")[1].split("s)")[0]) for m in failures[:5]]
        assert waits == [0.1, 0.2, 0.4, 0.8, 0.8], failures
        assert_exactly_once(ledger)
        assert ledger.counts()["anchored"] == 6
        ledger.close()
    finally:
        node.stop()
    reliability.record(
        "fault",
        "chain node stopped while ingest continues, then restarted",
        1,
        "ingest kept accepting (3 more accepted while the node was down); the running worker backed off "
        "(waits 0.1, 0.2, 0.4, 0.8, 0.8 s) and anchored all 6 once the node returned",
        kind="chain outage",
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


@pytest.mark.long
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
    unfinished: list[tuple[int, int]] = []  # per kill: (open batches, unbatched attestations)
    for round_ in range(6):
        ledger.ingest_many(productions(ledger, 15, prefix=f"R{round_}"))  # type: ignore[arg-type]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "worker", "--interval", "0.05"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Kill it at a random point after it took the lease (before that it does nothing).
        deadline = time.monotonic() + 60
        while not holds_lease(ledger, proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "the worker never took the lease"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        unfinished.append(open_work(ledger))
        if round_ < 5:  # the next worker must not wait 15 s for the dead one's lease; the last one does
            with ledger.sessions.begin() as session:
                session.execute(update(WorkerLeaseRow).values(expires_at=0.0))
    assert kills == 6
    hit = sum(1 for batches, loose in unfinished if batches or loose)
    assert hit >= 3, f"too few kills hit unfinished work: {unfinished}"
    time.sleep(15.5)  # the last killed worker's lease (15 s) runs out
    ledger.anchoring_worker(confirmations=1, max_batch=7).drain(timeout=120)
    assert_exactly_once(ledger)
    assert ledger.counts() == {"attestations": 90, "batched": 90, "anchored": 90}
    reliability.record(
        "fault",
        "anchoring worker process SIGKILLed at random points while it held the lease",
        kills,
        f"{hit} of {kills} kills hit unfinished work (open batches, unbatched attestations per kill: "
        f"{unfinished}); all 90 attestations anchored exactly once after restart",
        kind="process kill",
    )


def holds_lease(ledger: Ledger, pid: int) -> bool:
    with ledger.sessions() as session:
        lease = session.get(WorkerLeaseRow, "anchoring")
    return lease is not None and f":{pid}:" in lease.holder and lease.expires_at > time.time()


def open_work(ledger: Ledger) -> tuple[int, int]:
    """(batches not yet anchored, attestations in no batch) as the store has them."""
    with ledger.sessions() as session:
        batches = session.scalar(select(func.count(BatchRow.id)).where(BatchRow.status != ANCHORED)) or 0
        loose = (
            session.scalar(
                select(func.count(AttestationRow.id)).where(
                    AttestationRow.batch_id.is_(None), AttestationRow.direct_tx.is_(None)
                )
            )
            or 0
        )
    return int(batches), int(loose)
