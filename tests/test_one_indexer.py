"""The store's indexed copy of the registry (what the auditor's replay compares with the
chain) is kept by one process per node: the anchoring worker holding the lease. Before,
nothing in a running node indexed at all, and every replay of a node's store reported
each participant's registry history as altered."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from ledger.core import Ledger
from ledger.store.models import ChainEventRow, RoleCheckpointRow

from .scenario import productions


def _indexed(ledger: Ledger) -> tuple[int, int]:
    with ledger.sessions() as session:
        events = session.scalar(select(func.count()).select_from(ChainEventRow)) or 0
        checkpoints = session.scalar(select(func.count()).select_from(RoleCheckpointRow)) or 0
    return events, checkpoints


def test_only_the_lease_holder_indexes_and_it_indexes_every_registry_change(ledger_env: Ledger) -> None:
    ledger = ledger_env
    assert _indexed(ledger) == (0, 0)
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]
    follower = ledger.anchoring_worker(confirmations=1)
    leader = ledger.anchoring_worker(confirmations=1)
    assert leader.step().leader
    assert not follower.step().leader
    events, checkpoints = _indexed(ledger)
    assert checkpoints > 0 and events >= checkpoints
    # Every account the chain's registry history names has its history in the store.
    snapshot = ledger.chain_view.snapshot(max_age=0)
    on_chain = set(snapshot.confirmed.checkpoints) | set(snapshot.tail.checkpoints)
    with ledger.sessions() as session:
        stored = set(session.scalars(select(RoleCheckpointRow.account)))
    assert on_chain and on_chain <= stored


def test_a_failing_index_never_holds_up_anchoring(ledger_env: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    ledger = ledger_env
    ledger.ingest_many(productions(ledger, 3))  # type: ignore[arg-type]

    def broken() -> None:
        raise ConnectionError("the RPC endpoint refused the log query")

    worker = ledger.anchoring_worker(confirmations=1, max_age=0.0, index=broken)
    w3 = ledger.deployment.w3
    with caplog.at_level(logging.WARNING, logger="ledger.anchoring"):
        worker.drain(mine=lambda: w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
    assert not worker.pending_work()
    assert "indexing the chain's events failed" in caplog.text
    assert _indexed(ledger) == (0, 0)
