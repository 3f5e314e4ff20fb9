"""Review 5 finding on LicenceOutputs proving a stored revocation's batch membership
(ledger/licence_output.py `_anchor_block`). A plain failing test."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.completeness import members_rebuilding
from ledger.core import Ledger

from .scenario import Story
from .test_verification_withdrawn_watch import anchor_in_batches


def test_revocations_anchored_in_one_batch_do_not_each_rebuild_it_at_every_block(
    ledger_env: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`LicenceOutputs.revoked` proves each stored revocation's batch membership by
    reading every member of its batch and rebuilding the root (`members_rebuilding`),
    once per revocation, with nothing kept ("rare"); `output` recomputes whenever the
    chain head moves (its cache key holds `snapshot.head`), i.e. at every block. Anyone
    who may produce makes N productions naming a licence (claims count under it) and
    revokes them, all anchored in ordinary batches: every verification of a shipment
    under that licence then rebuilds a batch N times per block (a 4,096-record batch
    took 63 ms here: 1,000 revocations are a minute per verification, per block, in
    every thread that races to recompute). Scaled down: 20 revocations in one batch
    must not cost 20 rebuilds of that batch."""
    ledger = ledger_env
    story = Story(ledger)
    licence = story.licence([story.asset()], quantityCap=100_000)
    made = story.produce([licence], 1000, lot="LOT-S")
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000, lot="LOT-S")], 1000)
    claims = [story.produce([licence], 1, lot=f"LOT-C{i}") for i in range(20)]
    for claim in claims:
        story.revoke(claim, "maker")
    anchor_in_batches(ledger)
    calls: list[int] = []
    rebuilding = members_rebuilding

    def counted(session: Any, batch_id: int, root: str) -> Any:
        calls.append(batch_id)
        return rebuilding(session, batch_id, root)

    monkeypatch.setattr("ledger.licence_output.members_rebuilding", counted)
    ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    ledger.verify_shipment(shipment)
    assert calls, "the stored revocations were proven through their batch"
    assert len(calls) <= len(set(calls)), f"{len(calls)} rebuilds of {len(set(calls))} batch(es) in one verification"
