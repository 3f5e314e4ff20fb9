"""A watch-list entry its rights holder withdrew: told as stories on a real chain, on
SQLite and PostgreSQL. The revocation is anchored in a batch (as every revocation is once
older than the window for recording it directly), so only the store's copy of it says
the entry was withdrawn: the chain holds no direct revocation."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert

from ledger.core import Ledger
from ledger.ingest import Rejected, attestation_row, ref_rows
from ledger.kinds import Kind
from ledger.reasons import Reason
from ledger.store.models import AttestationRefRow, AttestationRow
from ledger.verify import Verdict
from ledger.verify.evidence import evidence_from_store

from .scenario import Story


def anchor_in_batches(ledger: Ledger) -> None:
    """Anchor everything stored, revocations too, in batches (none recorded directly)."""
    w3 = ledger.deployment.w3
    worker = ledger.anchoring_worker(confirmations=1, max_age=0.0, direct_revocation_window=0.0)
    worker.drain(mine=lambda: w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def watched_unlicensed_shipment(story: Story) -> tuple[str, str]:
    """A rights holder's watch-list entry for 8413 and an unlicensed shipment it flags."""
    watch = story.watch(["8413"])
    made = story.produce([])  # no licence: the entry flags the shipment
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    anchor_in_batches(story.ledger)
    return watch, shipment


def test_a_watch_list_entry_its_rights_holder_revoked_no_longer_flags_the_shipment(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    watch, shipment = watched_unlicensed_shipment(story)
    bundle = ledger_env.export_bundle(shipment)
    assert ledger_env.verify_shipment(shipment).codes == {Reason.WATCHLIST_HIT}
    withdrawal = story.revoke(watch, "rights_holder")
    # Stored but not yet on chain: it cannot lift the flag (fail closed).
    result = ledger_env.verify_shipment(shipment)
    assert (result.verdict, result.codes) == (Verdict.FLAGGED, {Reason.WATCHLIST_HIT}), result.to_json()
    anchor_in_batches(ledger_env)
    assert watch not in ledger_env.chain_view.snapshot(max_age=0).revoked_uids()  # in a batch, not direct
    result = ledger_env.verify_shipment(shipment)
    assert (result.verdict, result.codes) == (Verdict.VERIFIED, set()), result.to_json()
    assert withdrawal in evidence_from_store(ledger_env, shipment).records
    # A bundle verified at the node reads the same watch list and revocations.
    presented = ledger_env.verify_bundle(bundle)
    assert (presented.verdict, presented.codes) == (Verdict.VERIFIED, set()), presented.to_json()


def test_a_revocation_of_a_watch_list_entry_by_anyone_but_its_author_does_not_withdraw_it(
    ledger_env: Ledger,
) -> None:
    """The exporter it flags signs a revocation of the rights holder's entry. Ingest
    refuses it; the node's database administrator slips it into the store anyway, and the
    node anchors it. The verdict trusts the chain, not the store: the entry still flags."""
    story = Story(ledger_env)
    watch, shipment = watched_unlicensed_shipment(story)
    bundle = ledger_env.export_bundle(shipment)
    uid = story.sign("exporter", Kind.REVOCATION, {"reason": "withdrawn"}, "revocation", [watch], ingest=False)
    with pytest.raises(Rejected) as refused:
        ledger_env.ingest(story.last)
    assert refused.value.reason is Reason.NOT_ENTITLED
    item = ledger_env.ingestor.prepare(story.last)
    with ledger_env.engine.begin() as conn:
        conn.execute(insert(AttestationRow), [attestation_row(item, uid, ledger_env.domain, time.time(), None)])
        conn.execute(insert(AttestationRefRow), ref_rows(item, uid))
    anchor_in_batches(ledger_env)
    # The revocation is read as evidence (signed, anchored): only its signer disqualifies it.
    assert uid in evidence_from_store(ledger_env, shipment).records
    result = ledger_env.verify_shipment(shipment)
    assert (result.verdict, result.codes) == (Verdict.FLAGGED, {Reason.WATCHLIST_HIT}), result.to_json()
    presented = ledger_env.verify_bundle(bundle)
    assert (presented.verdict, presented.codes) == (Verdict.FLAGGED, {Reason.WATCHLIST_HIT}), presented.to_json()
