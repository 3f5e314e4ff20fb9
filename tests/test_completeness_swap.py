"""The node's own database administrator hides a watch-list entry and covers the hole.

Deleting the anchored watch-list row alone lowers the watermark (tests/test_federation.py).
Here the administrator also adds a forged record under another batch, so that the store
holds as many batched records in total as before. A running node must still see that
the watch list's batch no longer holds what the chain anchors: the verdict is never
VERIFIED, and both batches are named.
"""

from __future__ import annotations

from sqlalchemy import text

from ledger.core import Ledger
from ledger.reasons import Reason
from ledger.store.models import AttestationRow
from ledger.verify import Verdict

from .scenario import Story
from .test_api import Server
from .test_federation import anchor, node_a  # noqa: F401 - fixture


def _batch_of(ledger: Ledger, uid: str) -> tuple[int, int]:
    with ledger.engine.begin() as conn:
        row = conn.execute(
            text("SELECT b.id, b.chain_index FROM batches b JOIN attestations a ON a.batch_id = b.id WHERE a.uid = :u"),
            {"u": uid},
        ).one()
    return int(row[0]), int(row[1])


def test_a_deleted_row_covered_by_a_forged_row_in_another_batch_still_blocks_verified(
    node_a: tuple[Ledger, Server],  # noqa: F811 - the fixture imported above
) -> None:
    ledger, _server = node_a
    story = Story(ledger)
    watch = story.watch(["8413"])
    anchor(ledger)  # the watch-list entry in a batch of its own
    made = story.produce([])
    shipment = story.ship([story.transfer([made], "maker", "exporter", 1000)], 1000)
    anchor(ledger)
    flagged = ledger.verify_shipment(shipment)
    assert flagged.verdict is Verdict.FLAGGED and Reason.WATCHLIST_HIT in flagged.codes
    _watch_batch_id, watch_batch = _batch_of(ledger, watch)
    other_batch_id, other_batch = _batch_of(ledger, shipment)
    assert watch_batch != other_batch

    columns = [c.name for c in AttestationRow.__table__.columns if c.name not in ("id", "uid", "batch_id")]
    listed = ", ".join(columns)
    with ledger.engine.begin() as conn:
        total_before = conn.execute(text("SELECT count(*) FROM attestations WHERE batch_id IS NOT NULL")).scalar_one()
        conn.execute(text("DELETE FROM watchlist_classes WHERE uid = :u"), {"u": watch})
        conn.execute(text("DELETE FROM attestations WHERE uid = :u"), {"u": watch})
        conn.execute(
            text(
                f"INSERT INTO attestations (uid, batch_id, {listed}) "  # noqa: S608 - names from the model
                f"SELECT :forged, :batch, {listed} FROM attestations WHERE uid = :model"
            ),
            {"forged": "0x" + "ab" * 32, "batch": other_batch_id, "model": made},
        )
        total_after = conn.execute(text("SELECT count(*) FROM attestations WHERE batch_id IS NOT NULL")).scalar_one()
    assert total_after == total_before, "the administrator kept the total of batched records"

    Story(ledger).anchor()  # a new block: the earlier verdict is not reused
    result = ledger.verify_shipment(shipment)
    assert result.verdict is Verdict.UNVERIFIABLE, result.to_json()
    assert Reason.EVIDENCE_INCOMPLETE in result.codes
    gaps = result.to_json()["completeness"]["gaps"]
    assert watch_batch in gaps and other_batch in gaps, gaps
