"""Revocations that lift a flag count only once the chain holds them with the policy's
confirmations. A revocation makes its target fail (fail closed either way), but when
the revoked record is the one that caused a flag — the other shipment that drained a
lot, a customs finding — counting a revocation the chain does not hold would let the
revoker lift the flag at this border while the revoked record still stands elsewhere."""

from __future__ import annotations

import dataclasses

from sqlalchemy import text

from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.verify import Verdict, VerificationResult

from .scenario import Story, actor
from .test_verification_withdrawn_watch import anchor_in_batches, watched_unlicensed_shipment


def test_an_unanchored_revocation_of_the_other_shipment_does_not_lift_a_double_shipment(ledger_env: Ledger) -> None:
    """The exporter ships the same 1,000 pieces twice, to FR and to DE: the second is
    FLAGGED. It then signs a revocation of the FR shipment, accepted by this node but
    not yet anchored: the DE shipment stays FLAGGED until the chain holds it."""
    ledger = ledger_env
    story = Story(ledger)
    made = story.produce([story.licence([story.asset()])])
    moved = story.transfer([made], "maker", "exporter", 1000)
    to_fr = story.ship([moved], 1000, destination="FR")
    to_de = story.ship([moved], 1000, destination="DE")
    anchor_in_batches(ledger)
    flagged = ledger.verify_shipment(to_de)
    assert flagged.verdict is Verdict.FLAGGED, flagged.to_json()
    codes = flagged.codes
    story.revoke(to_fr, "exporter")
    ledger.chain_view.snapshot(max_age=0)
    ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    still = ledger.verify_shipment(to_de)
    assert still.verdict is Verdict.FLAGGED and still.codes == codes, still.to_json()
    anchor_in_batches(ledger)
    lifted = ledger.verify_shipment(to_de)
    assert lifted.verdict is Verdict.VERIFIED, lifted.to_json()
    assert ledger.verify_shipment(to_fr).codes == {Reason.REVOKED}


def test_an_unanchored_revocation_of_a_finding_does_not_lift_it(ledger_env: Ledger) -> None:
    """Customs recorded a finding against a lot; a revocation of it that the chain does
    not yet hold leaves the finding counted."""
    ledger = ledger_env
    story = Story(ledger)
    ids = story.clean_export()
    finding = story.finding(ids["made"], "COUNTERFEIT_SUSPECTED")
    anchor_in_batches(ledger)
    flagged = ledger.verify_shipment(ids["shipment"])
    assert flagged.verdict is not Verdict.VERIFIED, flagged.to_json()
    story.revoke(finding, "customs")
    ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    still = ledger.verify_shipment(ids["shipment"])
    assert still.verdict is flagged.verdict and still.codes == flagged.codes, still.to_json()
    anchor_in_batches(ledger)
    assert ledger.verify_shipment(ids["shipment"]).verdict is Verdict.VERIFIED


def test_a_direct_revocation_lifts_a_watch_list_flag_only_once_confirmed(ledger_env: Ledger) -> None:
    """The rights holder withdraws its entry; the node records the revocation directly at
    the contract. Under a policy asking 3 confirmations, the block holding it must be 3
    deep before the flag lifts: a shallower one could still be reorganised away."""
    ledger = ledger_env
    story = Story(ledger)
    watch, shipment = watched_unlicensed_shipment(story)
    strict = dataclasses.replace(ledger.policy, confirmations=3)
    assert ledger.verify_shipment(shipment, strict).codes == {Reason.WATCHLIST_HIT}
    story.revoke(watch, "rights_holder")
    w3 = ledger.deployment.w3
    worker = ledger.anchoring_worker(confirmations=1, max_age=0.0)  # a fresh revocation: recorded directly
    worker.drain(mine=lambda: w3.provider.make_request("evm_mine", []))  # type: ignore[arg-type]
    snapshot = ledger.chain_view.snapshot(max_age=0)
    assert watch in snapshot.revoked_uids()
    block = snapshot.revocation_block(watch, actor("rights_holder").address.lower())
    assert block is not None and snapshot.confirmations(block) < 3, "the test needs it under 3 confirmations"
    shallow = ledger.verify_shipment(shipment, strict)
    assert (shallow.verdict, shallow.codes) == (Verdict.FLAGGED, {Reason.WATCHLIST_HIT}), shallow.to_json()
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    deep = ledger.verify_shipment(shipment, strict)
    assert deep.verdict is Verdict.VERIFIED, deep.to_json()


def _cap_used_twice(ledger: Ledger) -> tuple[Story, str, str, VerificationResult]:
    """A licence capped at 1,000, two productions of 1,000 under it, and a shipment of the
    second lot, FLAGGED (LICENCE_QUANTITY) by the node's running view of the licence:
    (story, first production, shipment, its verdict)."""
    story = Story(ledger)
    licence = story.licence([story.asset()], quantityCap=1000)
    first = story.produce([licence], 1000, lot="LOT-A")
    second = story.produce([licence], 1000, lot="LOT-B")
    shipment = story.ship([story.transfer([second], "maker", "exporter", 1000, lot="LOT-B")], 1000)
    anchor_in_batches(ledger)
    assert ledger.licence_outputs is not None  # the node's running view decides the cap
    flagged = ledger.verify_shipment(shipment)
    assert flagged.verdict is Verdict.FLAGGED and Reason.LICENCE_QUANTITY in flagged.codes, flagged.to_json()
    return story, first, shipment, flagged


def test_an_unanchored_revocation_of_a_production_does_not_make_room_under_a_licence_cap(
    ledger_env: Ledger,
) -> None:
    """The licensee has used its whole cap of 1,000 and makes 1,000 more: a shipment of
    the second lot is FLAGGED (LICENCE_QUANTITY) by the node's running view of the
    licence. It then revokes the first production; until the chain holds that
    revocation the cap stays used."""
    ledger = ledger_env
    story, first, shipment, flagged = _cap_used_twice(ledger)
    story.revoke(first, "maker")
    ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    still = ledger.verify_shipment(shipment)
    assert still.verdict is Verdict.FLAGGED and still.codes == flagged.codes, still.to_json()
    anchor_in_batches(ledger)
    lifted = ledger.verify_shipment(shipment)
    assert lifted.verdict is Verdict.VERIFIED, lifted.to_json()


def test_a_revocation_a_database_administrator_files_under_an_anchored_batch_does_not_make_room(
    ledger_env: Ledger,
) -> None:
    """As above, but the node's database administrator moves the unanchored revocation
    into the anchored batch that holds the first production, so the store says the chain
    holds it. The batch no longer rebuilds its on-chain root: never VERIFIED."""
    ledger = ledger_env
    story, first, shipment, _flagged = _cap_used_twice(ledger)
    revocation = story.revoke(first, "maker")
    with ledger.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE attestations SET batch_id = (SELECT batch_id FROM attestations WHERE uid = :f) WHERE uid = :r"
            ),
            {"f": first, "r": revocation},
        )
    ledger.deployment.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    result = ledger.verify_shipment(shipment)
    assert result.verdict is not Verdict.VERIFIED, result.to_json()
