"""Attestations recorded directly at the contract (not in a batch) are part of the public
ledger too: every node mirrors them, each checked against the chain's record of it, and
a node lacking one is not complete.

Before this, mirroring copied batches only: a shipment recorded directly at node A never
reached node B, and B's watermark still said "complete" — so a directly recorded
finding or watch-list entry could be missing from B's verdicts without any sign.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, select

from ledger.chain.accounts import dev_account
from ledger.core import Ledger
from ledger.mirror import mirror
from ledger.peers import ArchivePeer, Peer, PeerUnavailable, write_archive
from ledger.reasons import Reason
from ledger.store.models import AttestationRefRow, AttestationRow
from ledger.verify import Verdict

from .conftest import ReliabilityRecorder
from .scenario import Story
from .test_api import Server
from .test_federation import Relay, node_a, node_b, peer, second_database_url  # noqa: F401 - fixtures


def _shipment_recorded_directly(a: Ledger) -> str:
    """A clean export at node A whose shipment is recorded directly, the rest batched."""
    story = Story(a)
    ids = story.clean_export()
    w3 = a.deployment.w3
    w3.provider.make_request("evm_increaseTime", [30])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # the chain's clock past the signing times
    a.anchor_direct(ids["shipment"], dev_account(1))
    story.anchor()
    return ids["shipment"]


class BatchesOnly(Relay):
    """A relay that serves batches but withholds direct records."""

    label = "batches-only"

    def direct(self, uid: str) -> object:
        raise PeerUnavailable(f"{self.name}: withholds direct record {uid}")


class SwappingPeer(BatchesOnly):
    """A relay that answers a direct record with another attestation of the same signer."""

    label = "swapping"

    def __init__(self, inner: Peer, other: object) -> None:
        super().__init__(inner)
        self.other = other

    def direct(self, uid: str) -> object:
        return copy.deepcopy(self.other)

    def for_worker(self) -> SwappingPeer:
        return SwappingPeer(self.inner.for_worker(), self.other)


def test_a_directly_recorded_shipment_reaches_the_other_node_and_verifies_there(
    node_a: tuple[Ledger, Server],  # noqa: F811 - the fixture imported above
    node_b: tuple[Ledger, Server],  # noqa: F811
    reliability: ReliabilityRecorder,
) -> None:
    a, a_server = node_a
    b, _ = node_b
    shipment = _shipment_recorded_directly(a)
    assert a.verify_shipment(shipment).verdict is Verdict.VERIFIED

    partial = mirror(b, [BatchesOnly(peer(a_server))])
    assert partial.gaps == [] and partial.direct_missing == [shipment] and not partial.complete
    watermark = b.completeness.watermark(b.chain_view.snapshot(max_age=0))
    assert not watermark.complete and watermark.direct_missing == (shipment,)
    assert shipment in watermark.describe()
    bundle = a.export_bundle(shipment)
    incomplete = b.verify_bundle(bundle)
    assert incomplete.verdict is Verdict.UNVERIFIABLE and Reason.EVIDENCE_INCOMPLETE in incomplete.codes

    filled = mirror(b, [BatchesOnly(peer(a_server)), peer(a_server)])
    assert filled.direct_stored == 1 and filled.complete
    assert {p.what for p in filled.problems} == {"UNREACHABLE"}
    assert b.completeness.watermark(b.chain_view.snapshot(max_age=0)).complete
    at_b = b.verify_shipment(shipment)  # by id, from B's own copy
    assert at_b.verdict is Verdict.VERIFIED, at_b.to_json()
    assert b.get_attestation(shipment) is not None
    reliability.record(
        "input",
        "peer withholding a directly recorded attestation",
        1,
        "node not complete and the bundle UNVERIFIABLE until an honest peer gives it; then VERIFIED by id at B",
    )


def test_a_peer_answering_a_direct_record_with_another_attestation_is_refused(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
) -> None:
    a, a_server = node_a
    b, _ = node_b
    shipment = _shipment_recorded_directly(a)
    honest = peer(a_server)
    genuine = cast("dict[str, Any]", honest.direct(shipment))
    other_record = cast("dict[str, Any]", honest.batch(0, 1))["records"][0]  # validly signed, but not that record
    swapped = {**genuine, "records": [other_record]}
    report = mirror(b, [SwappingPeer(honest, swapped)])
    assert report.direct_missing == [shipment] and report.direct_stored == 0
    forged = [p for p in report.problems if p.uid == shipment]
    assert [p.what for p in forged] == ["FORGED"] and f"not {shipment}" in forged[0].detail
    assert b.get_attestation(shipment) is None


def test_a_deleted_direct_record_makes_the_node_incomplete(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    reliability: ReliabilityRecorder,
) -> None:
    """A database administrator at B deletes the mirrored direct record."""
    a, a_server = node_a
    b, _ = node_b
    shipment = _shipment_recorded_directly(a)
    assert mirror(b, [peer(a_server)]).complete
    with b.sessions.begin() as session:
        session.execute(delete(AttestationRefRow).where(AttestationRefRow.uid == shipment))
        session.execute(delete(AttestationRow).where(AttestationRow.uid == shipment))
    watermark = b.completeness.watermark(b.chain_view.snapshot(max_age=0))
    assert not watermark.complete and watermark.direct_missing == (shipment,)
    reliability.record(
        "access",
        "database administrator deleting a mirrored direct record",
        1,
        "the watermark names it missing; the node is not complete",
    )


def test_an_archive_carries_direct_records(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    a, _ = node_a
    b, _ = node_b
    shipment = _shipment_recorded_directly(a)
    archive = tmp_path / "ledger.archive"
    batches, direct = write_archive(a, archive)
    assert batches >= 1 and direct == 1
    report = mirror(b, [ArchivePeer(archive)], jobs=2)
    assert report.complete and report.direct_stored == 1
    assert b.verify_shipment(shipment).verdict is Verdict.VERIFIED


def test_a_record_held_unbatched_that_another_node_recorded_directly_is_marked_direct_not_anchored_again(
    node_a: tuple[Ledger, Server],  # noqa: F811
    node_b: tuple[Ledger, Server],  # noqa: F811
) -> None:
    """A rights holder sends the same signed watch-list entry to both administrations; A
    records it directly at the contract before B's anchoring worker batches it. B's
    mirror marks B's own copy as directly recorded (with A's transaction), so B neither
    anchors it a second time nor calls it unanchored."""
    a, a_server = node_a
    b, _ = node_b
    story = Story(a)
    entry = story.watch(["8413"])
    b.ingest(story.last)
    w3 = a.deployment.w3
    w3.provider.make_request("evm_increaseTime", [30])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # the chain's clock past the signing time
    tx_hash = a.anchor_direct(entry, dev_account(1))
    Story(a).anchor()  # a few blocks: the direct record is confirmed
    report = mirror(b, [peer(a_server)])
    assert report.complete and report.direct_stored == 0  # held already: nothing fetched
    with b.sessions() as session:
        row = session.get(AttestationRow, session.scalar(select(AttestationRow.id).where(AttestationRow.uid == entry)))
        assert row is not None and row.direct_tx == tx_hash and row.batch_id is None
    Story(b).anchor()  # B's anchoring worker runs: the entry is not sealed into a batch
    assert b.counts()["batched"] == 0
    assert b.anchor_of(entry).status == "direct" and b.anchor_of(entry).tx_hash == tx_hash
