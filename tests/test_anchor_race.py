"""Competing anchorers: two nodes, each with its own database and anchoring account,
anchor into the one batch sequence of one ledger contract at the same time.

The attacker here is no one in particular: it is the ordinary race of two customs
administrations sealing batches from the same chain tip. What could go wrong is a fork
(two roots claimed for one index, or a batch linked to a root that is not its
predecessor), a stall (a worker that keeps resending a batch whose index is taken), or a
lost record (one that never reaches the chain). The test makes the race happen for
certain (both nodes seal index N before either transaction is mined), then lets both
workers run freely against a chain mining every 50 ms until both have drained.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import select

from ledger.anchoring import AnchoringWorker
from ledger.core import Ledger
from ledger.mirror import mirror
from ledger.store.models import BatchRow

from .conftest import ReliabilityRecorder
from .scenario import Story
from .test_api import Server
from .test_federation import node_a, node_b, peer, second_database_url  # noqa: F401 - fixtures

RECORDS_PER_NODE = 14
BATCH_SIZE = 2  # many small batches: many indices to compete for


def _records(node: Ledger, count: int) -> list[str]:
    story = Story(node)
    return [story.asset() for _ in range(count)]


def _worker(node: Ledger) -> AnchoringWorker:
    worker = node.anchoring_worker(confirmations=1, max_age=0.0)
    worker.max_batch = BATCH_SIZE
    return worker


def _mine(node: Ledger) -> None:
    node.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_two_nodes_anchoring_at_once_never_fork_stall_or_lose_a_record(
    node_a: tuple[Ledger, Server],  # noqa: F811 - the fixture imported above
    node_b: tuple[Ledger, Server],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    reliability: ReliabilityRecorder,
) -> None:
    a, server_a = node_a
    b, server_b = node_b
    w3 = a.deployment.w3
    contract = a.deployment.ledger
    mine_lock = threading.Lock()
    uids = {"a": _records(a, RECORDS_PER_NODE), "b": _records(b, RECORDS_PER_NODE)}
    worker_a, worker_b = _worker(a), _worker(b)
    caplog.set_level(logging.INFO, logger="ledger.anchoring")

    # The certain race: with mining paused, both seal the same next index and send.
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        worker_a.step()
        worker_b.step()
        with a.sessions() as session_a, b.sessions() as session_b:
            sent_a = session_a.scalars(select(BatchRow.chain_index).where(BatchRow.tx_hash.is_not(None))).all()
            sent_b = session_b.scalars(select(BatchRow.chain_index).where(BatchRow.tx_hash.is_not(None))).all()
        assert sent_a and sent_b and min(sent_a) == min(sent_b), (
            f"both nodes must have sent a root for the same index before mining (a: {sent_a}, b: {sent_b})"
        )
        contested = min(sent_a)

        # Then both run freely while the chain mines a block every 50 ms.
        stop = threading.Event()

        def miner() -> None:
            while not stop.is_set():
                with mine_lock:
                    _mine(a)
                stop.wait(0.05)

        threads = [
            threading.Thread(target=miner, daemon=True),
            threading.Thread(target=worker_a.run, args=(stop,), kwargs={"interval": 0.02}, daemon=True),
            threading.Thread(target=worker_b.run, args=(stop,), kwargs={"interval": 0.02}, daemon=True),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 180
        try:
            while time.monotonic() < deadline:
                done = all(
                    node.anchor_of(uid).status == "anchored" for node, key in ((a, "a"), (b, "b")) for uid in uids[key]
                )
                if done:
                    break
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    assert done, "a worker stalled: not every record of both nodes was anchored within 180 s"

    # The race was real: one side found its index taken and moved its batches after the tip.
    resequenced = [r for r in caplog.records if "resequencing" in r.getMessage()]
    assert resequenced, "no worker met a taken index: the race did not happen"

    # No fork: one root per index, each linked to its predecessor, every record proven on chain.
    logs = contract.events.BatchAnchored().get_logs(from_block=0)
    by_index: dict[int, list[bytes]] = {}
    for entry in logs:
        by_index.setdefault(int(entry["args"]["index"]), []).append(bytes(entry["args"]["root"]))
    assert all(len(roots) == 1 for roots in by_index.values()), f"an index was anchored twice: {by_index}"
    ordered = sorted(by_index)
    assert ordered == list(range(ordered[0], ordered[0] + len(ordered))), f"gap in the batch sequence: {ordered}"
    previous = {int(e["args"]["index"]): bytes(e["args"]["previousRoot"]) for e in logs}
    for index in ordered[1:]:
        assert previous[index] == by_index[index - 1][0], f"batch {index} is not linked to batch {index - 1}"
    assert contested in by_index
    for node, key in ((a, "a"), (b, "b")):
        for uid in uids[key]:
            ref = node.anchor_of(uid)
            assert ref.batch_index is not None
            proof = [bytes.fromhex(p[2:]) for p in ref.proof]
            assert contract.functions.verifyInclusion(bytes.fromhex(uid[2:]), proof, ref.batch_index).call(), (
                f"{uid} of node {key} is not provably in batch {ref.batch_index}"
            )

    # Each node catches up with the other's batches and is complete through the last one.
    for node, other in ((a, server_b), (b, server_a)):
        report = mirror(node, [peer(other)])
        assert not report.gaps, report.problems
        watermark = node.completeness.watermark(node.chain_view.snapshot(max_age=0))
        assert watermark.through == ordered[-1], watermark.describe()

    reliability.record(
        "fault",
        "two anchoring workers (two databases, two accounts) race for the same batch index on one contract",
        2 * RECORDS_PER_NODE,
        f"{len(resequenced)} resequencing(s); {len(ordered)} batches, one root each, hash-linked; "
        "every record provable on chain; each node complete after mirroring the other",
        kind="concurrent requests",
    )
