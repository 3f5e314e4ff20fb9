"""The node's database administrator hides a sibling production from a licence's count by
deleting only its reference rows (the attestation row, its batch and its root stay).

The licence view finds a licence's productions through `attestation_refs`; the
completeness check counts attestation rows and rebuilds batch roots from their UIDs,
neither of which the deletion changes. A fresh node must still not call a shipment
whose licence is over its cap VERIFIED: the references are part of what was signed, so
the production no longer derives its UID (`ledger/reference_index.py`).
"""

from __future__ import annotations

from sqlalchemy import text

from ledger.core import Ledger
from ledger.verify import Verdict

from .scenario import Story


def test_deleting_a_sibling_productions_reference_rows_does_not_lower_the_licence_count(ledger_env: Ledger) -> None:
    story = Story(ledger_env)
    asset = story.asset()
    licence = story.licence([asset], quantityCap=1500)
    made = story.produce([licence], quantity=1000)
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    sibling = story.produce([licence], quantity=1000, lot="LOT-2")  # 2000 made under a cap of 1500
    story.anchor()
    assert ledger_env.verify_shipment(shipment).verdict is Verdict.FLAGGED
    with ledger_env.engine.begin() as conn:
        conn.execute(text("DELETE FROM attestation_refs WHERE uid = :u"), {"u": sibling})
    fresh = Ledger.open(ledger_env.settings, manifest=ledger_env.deployment.manifest)
    try:
        result = fresh.verify_shipment(shipment)
        assert result.verdict is not Verdict.VERIFIED
        assert (
            f"Production {sibling} as stored (with 0 reference rows) derives"
            in result.to_json()["completeness"]["indexProblems"][0]
        )
    finally:
        fresh.close()


def test_deleting_reference_rows_after_a_process_checked_them_shows_at_its_next_measurement(
    ledger_env: Ledger,
) -> None:
    """The same deletion, made while a node is running: the records were checked already,
    so the count of reference rows is what gives it away. (The node measures at every
    verification here, not every 5 s.)"""
    node = Ledger.open(ledger_env.settings.replace(completeness_interval=0.0), manifest=ledger_env.deployment.manifest)
    try:
        story = Story(node)
        asset = story.asset()
        licence = story.licence([asset], quantityCap=1500)
        made = story.produce([licence], quantity=1000)
        shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
        sibling = story.produce([licence], quantity=1000, lot="LOT-2")
        story.anchor()
        assert node.verify_shipment(shipment).verdict is Verdict.FLAGGED
        with node.engine.begin() as conn:
            conn.execute(text("DELETE FROM attestation_refs WHERE uid = :u"), {"u": sibling})
        Story(node).anchor()  # a new block: the earlier verdict is not reused
        result = node.verify_shipment(shipment)
        assert result.verdict is not Verdict.VERIFIED
        assert result.to_json()["completeness"]["indexProblems"] == [
            "the reference index holds 2 rows of productions and licences; their records hold 3"
        ]
    finally:
        node.close()
